"""Road's records, in memory: host sessions, peer sessions and the SDP mailboxes.

Plays the part of upstream Road's Redis keys (reference §1.5) with the same
semantics: TTLs refreshed on use, one peer session per host, offers queued per
receiving peer and consumed on read, answers taken on read.  Every collection is
bounded; time comes from the injected clock.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from collections import deque
from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime

from ...protocol.signaling import WebRtcSdpPayload
from .settings import RoadSettings

JOIN_CODE_ALPHABET = string.ascii_letters + string.digits
JOIN_CODE_LENGTH = 6


class StoreFull(Exception):
    """A bound was reached; the message says which."""


def hash_code(code: str) -> str:
    """Lowercase hex SHA-256, as Road stores join codes."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def generate_join_code() -> str:
    """Six random letters and digits, uppercased (upstream's generator)."""
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH)).upper()


@dataclass
class HostSession:
    session_id: str
    join_code: str
    passphrase_hash: str
    created_at: int
    owner_account_id: str
    expires_at: float

    def code_matches_trimmed(self, passphrase: str | None) -> bool:
        """The check of ``/join``, WS ``join`` and ``attach``: SHA-256 of the trimmed value."""
        return passphrase is not None and hash_code(passphrase.strip()) == self.passphrase_hash


@dataclass
class PeerSession:
    peer_session_id: str
    host_session_id: str
    created_at: int
    role: str | None
    peer_id: str | None
    expires_at: float
    #: Offers waiting per receiving peer id, oldest first.
    offers: dict[str, deque[WebRtcSdpPayload]] = field(default_factory=dict)
    #: Answers waiting per handshake id.
    answers: dict[str, WebRtcSdpPayload] = field(default_factory=dict)


class RoadStore:
    def __init__(self, settings: RoadSettings, clock: IReactorTime):
        self.settings = settings
        self.clock = clock
        self.sessions: dict[str, HostSession] = {}
        self.peer_sessions: dict[str, PeerSession] = {}
        self.host_peer_session: dict[str, str] = {}

    def _now(self) -> float:
        return self.clock.seconds()

    def _deadline(self) -> float:
        return self._now() + self.settings.session_ttl

    # -- host sessions ---------------------------------------------------------------
    def session(self, session_id: str) -> HostSession | None:
        rec = self.sessions.get(session_id)
        if rec is not None and rec.expires_at <= self._now():
            self._drop_session(session_id)
            return None
        return rec

    def register(self, session_id: str, passphrase: str | None, owner: str | None) -> HostSession | None:
        """A new session, or ``None`` when the id exists (upstream: 200 ``success:false``)."""
        if self.session(session_id) is not None:
            return None
        if len(self.sessions) >= self.settings.max_sessions:
            self.purge_expired()
            if len(self.sessions) >= self.settings.max_sessions:
                raise StoreFull(f"too many sessions (limit {self.settings.max_sessions})")
        code = passphrase if passphrase is not None and passphrase.strip() else generate_join_code()
        rec = HostSession(session_id=session_id, join_code=code, passphrase_hash=hash_code(code.strip()),
                          created_at=int(self._now()), owner_account_id=owner or "auth-bypass",
                          expires_at=self._deadline())
        self.sessions[session_id] = rec
        return rec

    def touch_session(self, rec: HostSession) -> None:
        rec.expires_at = self._deadline()

    def _drop_session(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
        psid = self.host_peer_session.pop(session_id, None)
        if psid is not None:
            self.peer_sessions.pop(psid, None)

    def purge_expired(self) -> int:
        now = self._now()
        gone = [sid for sid, rec in self.sessions.items() if rec.expires_at <= now]
        for sid in gone:
            self._drop_session(sid)
        stale = [p for p, rec in self.peer_sessions.items() if rec.expires_at <= now]
        for psid in stale:
            rec = self.peer_sessions.pop(psid)
            if self.host_peer_session.get(rec.host_session_id) == psid:
                del self.host_peer_session[rec.host_session_id]
        return len(gone) + len(stale)

    # -- peer sessions ------------------------------------------------------------------
    def peer_session(self, psid: str) -> PeerSession | None:
        rec = self.peer_sessions.get(psid)
        if rec is not None and rec.expires_at <= self._now():
            self.peer_sessions.pop(psid, None)
            if self.host_peer_session.get(rec.host_session_id) == psid:
                del self.host_peer_session[rec.host_session_id]
            return None
        return rec

    def attach(self, host: HostSession, role: str | None, peer_id: str | None) -> PeerSession:
        """The host's one peer session, created on first use; TTLs refreshed."""
        psid = self.host_peer_session.get(host.session_id)
        rec = self.peer_session(psid) if psid else None
        if rec is None:
            rec = PeerSession(peer_session_id=str(uuid.uuid4()), host_session_id=host.session_id,
                              created_at=int(self._now()), role=role, peer_id=peer_id,
                              expires_at=self._deadline())
            self.peer_sessions[rec.peer_session_id] = rec
            self.host_peer_session[host.session_id] = rec.peer_session_id
        rec.expires_at = self._deadline()
        self.touch_session(host)
        return rec

    def resolve_room(self, raw_id: str) -> str:
        """``/ws/{X}``: X itself if it is a session, else the host of peer session X, else X."""
        if self.session(raw_id) is not None:
            return raw_id
        rec = self.peer_session(raw_id)
        return rec.host_session_id if rec is not None else raw_id

    # -- mailboxes ------------------------------------------------------------------------
    def post_offer(self, rec: PeerSession, payload: WebRtcSdpPayload) -> None:
        queue = rec.offers.get(payload.to_peer)
        if queue is None:
            if len(rec.offers) >= self.settings.max_peers_per_room:
                raise StoreFull(f"offers queued for too many peers (limit {self.settings.max_peers_per_room})")
            queue = rec.offers[payload.to_peer] = deque()
        if len(queue) >= self.settings.max_offers_per_peer:
            raise StoreFull(f"offer mailbox of peer is full (limit {self.settings.max_offers_per_peer})")
        queue.append(payload)
        rec.expires_at = self._deadline()

    def take_offer(self, rec: PeerSession, peer_id: str) -> WebRtcSdpPayload | None:
        queue = rec.offers.get(peer_id)
        if not queue:
            return None
        payload = queue.popleft()
        if not queue:
            del rec.offers[peer_id]
        rec.expires_at = self._deadline()
        return payload

    def drop_offers_for(self, host_session_id: str, peer_id: str) -> None:
        """Forget offers addressed to a peer that has left the room."""
        psid = self.host_peer_session.get(host_session_id)
        rec = self.peer_sessions.get(psid) if psid else None
        if rec is not None:
            rec.offers.pop(peer_id, None)

    def post_answer(self, rec: PeerSession, payload: WebRtcSdpPayload) -> None:
        if (payload.handshake_id not in rec.answers
                and len(rec.answers) >= self.settings.max_answers_per_peer_session):
            raise StoreFull(f"answer mailbox is full (limit {self.settings.max_answers_per_peer_session})")
        rec.answers[payload.handshake_id] = payload
        rec.expires_at = self._deadline()

    def take_answer(self, rec: PeerSession, handshake_id: str) -> WebRtcSdpPayload | None:
        payload = rec.answers.pop(handshake_id, None)
        if payload is not None:
            rec.expires_at = self._deadline()
        return payload
