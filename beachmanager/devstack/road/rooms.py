"""Road's WebSocket rooms: join, relay, ping, eviction and cleanup (reference §2).

Transport-free: a connection is anything with ``send(text)`` and ``remote_addr``;
the WebSocket protocol feeds texts to :meth:`Rooms.receive` and calls
:meth:`Rooms.disconnect`.  A room is keyed by the *resolved* host session id, and a
disconnect leaves the room the peer actually joined (upstream used the raw path
id, so peers that came in by peer-session id lingered until the sweep).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from twisted.logger import Logger

from ...protocol import signaling as sig
from .settings import RoadSettings
from .store import RoadStore, StoreFull
from .viewer import ViewerTokenError, ViewerTokenUnavailable, ViewerVerifier


class Link(Protocol):
    remote_addr: str

    def send(self, text: str) -> None: ...


@dataclass
class Connection:
    """One WebSocket: its server-assigned peer id and the room it joined, if any."""

    link: Link
    path_id: str
    peer_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    room: str | None = None


@dataclass
class Member:
    conn: Connection
    role: str
    joined_at: int
    last_ping: float
    supported_transports: tuple[sig.Transport, ...]
    preferred_transport: sig.Transport | None
    #: What ``peer_joined`` announces: client metadata plus Road's overrides.
    announced: dict[str, str]
    #: What ``join_success`` lists: only Road's own keys.
    summary: dict[str, str]

    def info(self, metadata: dict[str, str], joined_at: int | None = None) -> sig.PeerInfo:
        return sig.PeerInfo(id=self.conn.peer_id, role=self.role,
                            joined_at=self.joined_at if joined_at is None else joined_at,
                            supported_transports=self.supported_transports,
                            preferred_transport=self.preferred_transport, metadata=metadata)


class Rooms:
    log = Logger()

    def __init__(self, store: RoadStore, settings: RoadSettings, clock, viewer: ViewerVerifier | None = None,
                 on_change: Callable[[], None] | None = None):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.viewer = viewer
        self.rooms: dict[str, dict[str, Member]] = {}
        self._on_change = on_change or (lambda: None)

    # -- entry points ---------------------------------------------------------------------
    def connect(self, link: Link, path_id: str) -> Connection:
        return Connection(link=link, path_id=path_id)

    def receive(self, conn: Connection, text: str | bytes, *, binary: bool = False) -> None:
        """One inbound message.  Binary frames skip peer-session resolution, as upstream."""
        try:
            msg = sig.decode_client(text)
        except sig.SignalingError as e:
            conn.link.send(sig.encode_server(sig.ErrorMessage(f"Invalid message format: {e}")))
            return
        try:
            self._dispatch(conn, msg, binary)
        except Exception:  # upstream answers a store failure with "Internal error"
            self.log.failure("failed to handle {kind}", kind=type(msg).__name__)
            self._send(conn, sig.JoinError(sig.JOIN_ERROR_INTERNAL) if isinstance(msg, sig.Join)
                       else sig.ErrorMessage("Failed to process message: Internal error"))

    def _dispatch(self, conn: Connection, msg: sig.ClientMessage, binary: bool) -> None:
        room_id = conn.path_id if binary else self.store.resolve_room(conn.path_id)
        if isinstance(msg, sig.Join):
            self._join(conn, room_id, msg)
        elif isinstance(msg, sig.Signal):
            self._relay(conn, room_id, msg.to_peer, sig.RelayedSignal(conn.peer_id, msg.signal))
        elif isinstance(msg, sig.Ping):
            self._ping(conn, room_id)
        elif isinstance(msg, sig.NegotiateTransport):
            self._relay(conn, room_id, msg.to_peer,
                        sig.TransportProposal(conn.peer_id, msg.proposed_transport))
        elif isinstance(msg, sig.AcceptTransport):
            self._relay(conn, room_id, msg.to_peer, sig.TransportAccepted(conn.peer_id, msg.transport))

    def disconnect(self, conn: Connection) -> None:
        if conn.room is not None:
            self._remove(conn.room, conn.peer_id)
            conn.room = None

    def sweep(self) -> list[str]:
        """Evict peers whose last ``ping`` is older than the timeout; return their ids.

        As upstream, the evicted socket stays open but is no longer in any room.
        """
        cutoff = self.clock.seconds() - self.settings.peer_timeout
        evicted = []
        for room_id, members in list(self.rooms.items()):
            for peer_id, m in list(members.items()):
                if m.last_ping < cutoff:
                    m.conn.room = None
                    self._remove(room_id, peer_id)
                    evicted.append(peer_id)
        if evicted:
            self.log.info("evicted {count} peers without ping", count=len(evicted))
        self.store.purge_expired()
        return evicted

    def peers(self, room_id: str) -> list[Member]:
        return list(self.rooms.get(room_id, {}).values())

    # -- handlers ---------------------------------------------------------------------------
    def _send(self, conn: Connection, msg: sig.ServerMessage) -> None:
        conn.link.send(sig.encode_server(msg))

    def _join(self, conn: Connection, room_id: str, msg: sig.Join) -> None:
        reason = self._check_join(room_id, msg)
        if reason is not None:
            self._send(conn, sig.JoinError(reason))
            return
        members = self.rooms.get(room_id, {})
        if conn.room is not None:  # a second join on the same socket: leave the old room first
            self._remove(conn.room, conn.peer_id)
            conn.room = None
            members = self.rooms.get(room_id, {})
        if len(members) >= self.settings.max_peers_per_room:
            self._send(conn, sig.JoinError(f"Room full (limit {self.settings.max_peers_per_room} peers)"))
            return
        now = self.clock.seconds()
        role = sig.ROLE_SERVER if not members else sig.ROLE_CLIENT
        label = msg.label.strip() if msg.label is not None else None
        summary: dict[str, str] = {}
        if label:
            summary["label"] = label
        summary["remote_addr"] = conn.link.remote_addr
        if msg.mcp:
            summary["mcp"] = "true"
        announced = {**(msg.metadata or {}), **summary}
        for extra in (summary, announced):
            extra.setdefault("session_id", room_id)
            extra.setdefault("role", role)
        member = Member(conn=conn, role=role, joined_at=int(now), last_ping=now,
                        supported_transports=msg.supported_transports,
                        preferred_transport=msg.preferred_transport, announced=announced, summary=summary)
        members = self.rooms.setdefault(room_id, {})
        members[conn.peer_id] = member
        conn.room = room_id
        session = self.store.session(room_id)
        if session is not None:
            self.store.touch_session(session)
        available = self._common_transports(members.values())
        self._send(conn, sig.JoinSuccess(session_id=room_id, peer_id=conn.peer_id,
                                         peers=tuple(m.info(m.summary, int(now)) for m in members.values()),
                                         available_transports=available))
        joined = sig.PeerJoined(member.info(announced))
        for other in members.values():
            if other.conn is not conn:
                self._send(other.conn, joined)
        self.log.info("peer {peer_id} joined room as {role}", peer_id=conn.peer_id, role=role)
        self._on_change()

    def _check_join(self, room_id: str, msg: sig.Join) -> str | None:
        session = self.store.session(room_id)
        if session is None:
            return sig.JOIN_ERROR_NOT_FOUND
        if msg.viewer_token is not None and msg.viewer_token.strip():
            if self.viewer is None:
                return sig.JOIN_ERROR_VIEWER_UNAVAILABLE
            try:
                self.viewer.verify(msg.viewer_token, session.session_id, session.join_code)
            except ViewerTokenUnavailable:
                return sig.JOIN_ERROR_VIEWER_FAILED
            except ViewerTokenError:
                return sig.JOIN_ERROR_VIEWER_INVALID
            return None  # a valid viewer token replaces the passphrase on the WebSocket
        if msg.passphrase is None or not msg.passphrase.strip():
            return sig.JOIN_ERROR_NO_PASSPHRASE
        if not session.code_matches_trimmed(msg.passphrase):
            return sig.JOIN_ERROR_BAD_PASSPHRASE
        return None

    @staticmethod
    def _common_transports(members) -> tuple[sig.Transport, ...]:
        common: list[sig.Transport] | None = None
        for m in members:
            common = list(m.supported_transports) if common is None else [
                t for t in common if t in m.supported_transports]
        return tuple(common or ())

    def _relay(self, conn: Connection, room_id: str, to_peer: str, msg: sig.ServerMessage) -> None:
        target = self.rooms.get(room_id, {}).get(to_peer)
        if target is None:
            self._send(conn, sig.ErrorMessage("Failed to process message: Peer not found"))
            return
        self._send(target.conn, msg)

    def _ping(self, conn: Connection, room_id: str) -> None:
        member = self.rooms.get(conn.room or room_id, {}).get(conn.peer_id)
        if member is not None:
            member.last_ping = self.clock.seconds()
        session = self.store.session(room_id)
        if session is not None:
            self.store.touch_session(session)
        self._send(conn, sig.Pong())

    def _remove(self, room_id: str, peer_id: str) -> None:
        members = self.rooms.get(room_id)
        if members is None or members.pop(peer_id, None) is None:
            return
        if not members:
            del self.rooms[room_id]
        self.store.drop_offers_for(room_id, peer_id)
        left = sig.PeerLeft(peer_id)
        for other in (members or {}).values():
            self._send(other.conn, left)
        self.log.info("peer {peer_id} left room", peer_id=peer_id)
        self._on_change()


__all__ = ["Connection", "Link", "Member", "Rooms", "StoreFull"]
