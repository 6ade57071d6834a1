"""The development Beach host: a PTY served to every WebRTC client peer that joins its room.

Start-up: spawn the program on a PTY, register the session with Road (join code),
attach (the host's peer session), join the room by WebSocket as ``server``.  Each
``client`` peer gets a :class:`~.peer.ClientPeer` (many at once, up to
``max_peers``); a peer that leaves is cleaned up and may join again.  PTY output
feeds the terminal cache and, coalesced, every served peer's deltas; the harness
(Python beach-buggy) runs on the in-process bus.

Embedding: ``host = await start_host(road_url, command=["/bin/sh"])`` gives a
:class:`RunningHost` with ``session_id``, ``join_code`` and ``stop()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from ... import __version__, _aio
from ...harness.buggy import Harness
from ...protocol import signaling as sig
from ...service import ReadyService
from ...transport.peer import tune_sctp
from ...transport.session_keys import SessionKeyCache
from .bus import LocalBus
from .peer import ClientPeer
from .ptyproc import PtyProcess, default_command
from .road_client import RoadHttp, RoadRoom, host_join
from .settings import HostSettings
from .terminal import TerminalModel

#: Seconds between WebSocket reconnect attempts (doubling up to the maximum).
RECONNECT_INITIAL = 1.0
RECONNECT_MAX = 30.0
#: Retry delay when a peer's channel was too backed up for deltas.
FLUSH_RETRY = 0.05

T = TypeVar("T")


def _started(value: T | None, what: str) -> T:
    """*value*, which the host sets while it starts; a clear error before that."""
    if value is None:
        raise RuntimeError(f"the beach host has not started: no {what} yet")
    return value


class _HarnessTerminal:
    """The terminal as the harness sees it."""

    def __init__(self, host: BeachHost):
        self.host = host

    @property
    def alive(self) -> bool:
        return self.host.pty is not None and self.host.pty.running

    def write(self, data: bytes) -> None:
        pty = self.host.pty
        if pty is None:
            raise OSError("the terminal program is not running")
        pty.write(data)

    def terminal_full(self) -> dict[str, Any]:
        m = self.host.model
        cur = m.cursor()
        return {"type": "terminal_full", "lines": m.text_lines(),
                "cursor": {"row": cur.row - m.top_row, "col": cur.col}, "cols": m.cols, "rows": m.viewport_rows}


class BeachHost(ReadyService):
    log = Logger()
    critical = True

    def __init__(self, reactor, settings: HostSettings, clock=None, session_keys: SessionKeyCache | None = None):
        super().__init__("beach-host-dev", clock if clock is not None else reactor)
        self.reactor = reactor
        self.settings = settings
        self.keys = session_keys or SessionKeyCache(max_entries=8)
        self.road = RoadHttp(settings.road_url, self.clock)
        self.model = TerminalModel(settings.cols, settings.rows, settings.history_limit)
        self.bus = LocalBus()
        self.harness: Harness | None = None
        self.pty: PtyProcess | None = None
        self.room: RoadRoom | None = None
        self.session_id = settings.session_id or str(uuid.uuid4())
        self.join_code: str | None = None
        self.peer_session_id: str | None = None
        self.own_peer_id: str | None = None
        self.peers: dict[str, ClientPeer] = {}
        self.served_total = 0
        self.refused = 0
        self.on_exit: Callable[[int | None], object] | None = None
        self._stopping = False
        self._flush_call: IDelayedCall | None = None
        self._reconnect_call: IDelayedCall | None = None
        self._reconnect_delay = RECONNECT_INITIAL

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Deferred:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        s = self.settings
        self._stopping = False
        tune_sctp()  # as the manager: a lost chunk must not stall the bus for a second
        argv = list(s.command) if s.command else default_command()
        self.pty = PtyProcess(self.reactor, self.clock, argv, cols=s.cols, rows=s.rows, on_output=self._pty_output,
                              on_exit=self._pty_exit, env=s.env, cwd=s.cwd)
        self.pty.start()
        if s.harness:
            self.harness = Harness(self.bus, _HarnessTerminal(self), self.clock, state_interval=s.state_interval,
                                   health_interval=s.health_interval, drop_first_acks=s.drop_first_acks,
                                   authority=s.manager_authority, host_session_id=self.session_id,
                                   **_agent_mode(s, self.clock))
            self.harness.start()
        reg = await self.road.register(self.session_id, s.join_code)
        self.join_code = reg["join_code"]
        self.peer_session_id = await self.road.attach(self.session_id, self.join_code, str(uuid.uuid4()))
        await self._join_room()
        if self.join_code.strip():  # derive the session key now, before the first peer needs it
            _aio.background(self.session_key(), "session key warm-up", self.log)

    def stop(self) -> Deferred:
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        for call in (self._flush_call, self._reconnect_call):
            if call is not None and call.active():
                call.cancel()
        for peer in list(self.peers.values()):
            peer.send_shutdown()
            await peer.close("host stopping")
        if self.harness is not None:
            self.harness.stop()
        if self.room is not None:
            self.room.close()
        if self.pty is not None:
            await self.pty.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def session_key(self) -> Deferred:
        return self.keys.get(_started(self.join_code, "join code"), self.session_id)

    def ws_url(self) -> str:
        base = self.settings.road_url.rstrip("/")
        scheme = "wss" if base.startswith("https://") else "ws"
        return f"{scheme}://{base.split('://', 1)[-1]}/ws/{self.peer_session_id}"

    def info(self) -> dict[str, Any]:
        """The bootstrap line, after upstream's ``--bootstrap-output=json``."""
        return {"schema": 2, "session_id": self.session_id, "join_code": self.join_code,
                "session_server": self.settings.road_url, "road_url": self.settings.road_url,
                "active_transport": "WebRTC", "host_binary": "beach-host-dev", "host_version": __version__,
                "timestamp": int(self.clock.seconds()), "command": list(self.pty.argv) if self.pty else [],
                "wait_for_peer": False, "mcp_enabled": False}

    def status(self) -> dict[str, Any]:
        out = super().status()
        out.update(session_id=self.session_id, peers=len(self.peers),
                   serving=sum(1 for p in self.peers.values() if p.serving), served_total=self.served_total)
        return out

    # -- the room ------------------------------------------------------------------------------
    async def _join_room(self) -> None:
        room = RoadRoom(self.ws_url(), self.clock,
                        join=host_join(self.session_id, _started(self.peer_session_id, "peer session id"),
                                       _started(self.join_code, "join code")),
                        ping_interval=self.settings.ping_interval, on_joined=self._joined,
                        on_message=self._room_message, on_closed=self._room_closed)
        self.room = room
        await room.connect()

    def _joined(self, js: sig.JoinSuccess) -> None:
        me = js.me()
        if me is None or me.role != sig.ROLE_SERVER:
            self.log.error("joined the room as {role}, not server: another peer holds the server slot",
                           role=me.role if me else None)
        self.own_peer_id = js.peer_id
        self._reconnect_delay = RECONNECT_INITIAL
        for peer in js.peers:
            if peer.role == sig.ROLE_CLIENT and peer.id != js.peer_id:
                self._spawn(peer)

    def _room_message(self, msg: sig.ServerMessage) -> None:
        if isinstance(msg, sig.PeerJoined):
            if msg.peer.role == sig.ROLE_CLIENT:
                self._spawn(msg.peer)
        elif isinstance(msg, sig.PeerLeft):
            peer = self.peers.get(msg.peer_id)
            if peer is not None:
                _aio.background(Deferred.fromCoroutine(peer.close("left the room")), "closing a peer", self.log)
        elif isinstance(msg, sig.RelayedSignal):
            peer = self.peers.get(msg.from_peer)
            if peer is not None:
                peer.on_signal(msg.signal)
        elif isinstance(msg, sig.ErrorMessage):
            self.log.warn("Road: {message}", message=msg.message)

    def _room_closed(self, reason: str) -> None:
        if self._stopping:
            return
        self.log.warn("signaling lost ({reason}); reconnecting in {delay}s", reason=reason,
                      delay=self._reconnect_delay)
        self._reconnect_call = self.clock.callLater(self._reconnect_delay, self._reconnect)
        self._reconnect_delay = min(self._reconnect_delay * 2, RECONNECT_MAX)

    def _reconnect(self) -> None:
        self._reconnect_call = None

        def failed(f):
            self._room_closed(f.getErrorMessage())

        ensureDeferred(self._join_room()).addErrback(failed)

    def send_signal(self, to_peer: str, signal: Any) -> None:
        if self.room is not None:
            self.room.send(sig.Signal(to_peer, signal))

    # -- peers ----------------------------------------------------------------------------------------
    def _spawn(self, info: sig.PeerInfo) -> None:
        if self._stopping or info.id in self.peers:
            return
        if len(self.peers) >= self.settings.max_peers:
            self.refused += 1
            self.log.warn("refusing peer {peer}: {limit} peers already", peer=info.id, limit=self.settings.max_peers)
            return
        peer = ClientPeer(self, info)
        self.peers[info.id] = peer
        self.log.info("negotiating with peer {peer} (label {label})", peer=info.id, label=info.label)
        _aio.background(ensureDeferred(peer.run()), f"peer {info.id}", self.log)

    def peer_ready(self, peer: ClientPeer) -> None:
        self.served_total += 1
        self.bus.attach(peer.remote_id, peer.send_extension)
        if self.harness is not None:
            self.harness.screen_changed()  # a fresh state for the newcomer

    def peer_closed(self, peer: ClientPeer, was_serving: bool) -> None:
        if self.peers.get(peer.remote_id) is peer:
            del self.peers[peer.remote_id]
        self.bus.detach(peer.remote_id)

    def serving_peers(self) -> list[ClientPeer]:
        return [p for p in self.peers.values() if p.serving]

    # -- the terminal ----------------------------------------------------------------------------------
    def write_input(self, data: bytes) -> None:
        if self.pty is not None and self.pty.running:
            self.pty.write(data)

    def peer_resize(self, peer: ClientPeer, cols: int, rows: int) -> None:
        if not self.settings.honour_resize:
            self.log.info("ignoring resize to {cols}x{rows} from {peer}", cols=cols, rows=rows, peer=peer.remote_id)
            return
        if cols < 1 or rows < 1 or (cols, rows) == (self.model.cols, self.model.viewport_rows):
            return
        _started(self.pty, "terminal").resize(cols, rows)
        self.model.resize(cols, rows)
        for p in self.serving_peers():
            p.send_handshake()  # the viewport changed: replay from Hello
        if self.harness is not None:
            self.harness.screen_changed()

    def _pty_output(self, data: bytes) -> None:
        if self.model.feed(data):
            self._schedule_flush(self.settings.flush_delay)
            if self.harness is not None:
                self.harness.screen_changed()

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.clock.callLater(delay, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        backed_up = False
        for peer in self.serving_peers():
            try:
                backed_up |= not peer.flush()
            except Exception as e:
                self.log.warn("cannot send deltas to {peer}: {error}", peer=peer.remote_id, error=str(e))
        if backed_up:
            self._schedule_flush(FLUSH_RETRY)

    def _pty_exit(self, code: int | None) -> None:
        for peer in self.serving_peers():
            peer.flush()
            peer.send_shutdown()
        if self.settings.exit_with_command and self.on_exit is not None and not self._stopping:
            self.on_exit(code)


class RunningHost:
    def __init__(self, host: BeachHost):
        self.host = host

    @property
    def session_id(self) -> str:
        return self.host.session_id

    @property
    def join_code(self) -> str:
        return _started(self.host.join_code, "join code")

    @property
    def road_url(self) -> str:
        return self.host.settings.road_url

    def stop(self) -> Deferred:
        return self.host.stopService()


def _agent_mode(s: HostSettings, clock) -> dict:
    """The harness's agent-mode arguments from the settings (none without a target)."""
    if s.agent_target is None or s.agent_token is None:
        return {}
    import json

    from ...harness.agent import AgentSettings
    from ..agents import ScriptDriver

    events = None
    if s.agent_events:
        path = s.agent_events

        def events(event: dict) -> None:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"at": clock.seconds(), **event}) + "\n")

    if s.agent_driver == "pong":
        from ..pong import PongPlayer

        driver: Any = PongPlayer(clock, s.agent_limit)
    else:
        driver = ScriptDriver(clock, s.agent_script, s.agent_interval)
    return {"agent": AgentSettings(s.agent_target, s.agent_token, s.agent_beach),
            "driver": driver, "agent_events": events}


def start_host(road_url: str, reactor=None, clock=None, session_keys: SessionKeyCache | None = None,
               settings: HostSettings | None = None, **overrides: Any) -> Deferred[RunningHost]:
    """Start a host under the running reactor; fires with a :class:`RunningHost` once it is in its room."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    settings = replace(settings or HostSettings(road_url=road_url), road_url=road_url, **overrides)
    host = BeachHost(reactor, settings, clock, session_keys)

    async def _start() -> RunningHost:
        host.startService()
        try:
            await host.whenReady()
        except Exception:
            await host.stopService()
            raise
        return RunningHost(host)

    return ensureDeferred(_start())


def start_hosts(road_url: str, count: int, reactor=None, **overrides: Any) -> Deferred[list[RunningHost]]:
    """Start *count* hosts in this process (sharing one session-key cache); all or nothing."""
    keys = overrides.pop("session_keys", None) or SessionKeyCache(max_entries=max(8, count))

    async def _start() -> list[RunningHost]:
        started: list[RunningHost] = []
        try:
            for _ in range(count):
                started.append(await start_host(road_url, reactor, session_keys=keys, **overrides))
        except Exception:
            for h in started:
                await h.stop()
            raise
        return started

    return ensureDeferred(_start())
