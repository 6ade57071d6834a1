"""The manager's Beach Road client: HTTP mailbox (treq) and WebSocket signaling (autobahn).

Every URL is built from the configured Road base (reference §1.3: advertised URLs
may be container-internal).  HTTP:

* ``POST /peer-sessions/attach`` → ``peer_session_id`` (401: bad join code, 404: no host);
* ``GET /peer-sessions/{psid}/webrtc/offer?peer_id=`` polled; 409, 204 and 404 mean "retry";
* ``POST /peer-sessions/{psid}/webrtc/answer``, retried on 409/404 (40 × 50 ms upstream).

WebSocket ``/ws/{host_session_id}`` (the host id, not the peer session id: Road cleans
up by the path id, §2.1): ``join`` with label ``beach-manager``, then ``ping`` every
``ping_interval`` (Road evicts a silent peer after 60 s without closing its socket).
:class:`SignalingSession` finds the host (the ``server`` peer that is not us; if *we*
are ``server`` the host is not connected), buffers its ICE signals by handshake id,
and reports the session lost when the socket closes, a ``pong`` does not come, our
own pings were late enough for Road to have evicted us, Road says it no longer knows
us, or the host leaves the room.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol import signaling as sig
from .errors import AttachError, RoadError

LABEL = "beach-manager"
HTTP_TIMEOUT = 8.0
ANSWER_RETRIES = 40
ANSWER_RETRY_DELAY = 0.05
#: Road's default eviction timeout; a ping gap longer than this means we were evicted.
ROAD_PEER_TIMEOUT = 60.0
MAX_BUFFERED_HANDSHAKES = 16
MAX_SIGNALS_PER_HANDSHAKE = 128


def ws_url(road_url: str, room: str) -> str:
    parts = urlsplit(road_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws/{quote(room, safe='')}"


class RoadHttp:
    """Road's HTTP routes (shared by every attach machine: one connection pool)."""

    log = Logger()

    def __init__(self, road_url: str, http_client, clock, timeout: float = HTTP_TIMEOUT):
        self.base = road_url.rstrip("/")
        self.http = http_client
        self.clock = clock
        self.timeout = timeout

    def _url(self, *segments: str) -> str:
        return self.base + "/" + "/".join(quote(s, safe="") for s in segments)

    async def _request(self, method: str, url: str, **kwargs) -> tuple[int, bytes]:
        try:
            resp = await self.http.request(method, url, timeout=self.timeout, reactor=self.clock,
                                           **kwargs)
            body = await resp.content()
        except CancelledError:
            raise RoadError(f"{method} {url}: no answer within {self.timeout}s") from None
        except Exception as e:
            raise RoadError(f"{method} {url}: {type(e).__name__}: {e}") from None
        return resp.code, body

    async def attach(self, host_session_id: str, join_code: str, peer_id: str) -> str:
        """The host's peer session id (shared by every peer of the host)."""
        body = {"host_session_id": host_session_id, "passphrase": join_code,
                "role": "answerer", "peer_id": peer_id}
        code, raw = await self._request("POST", self._url("peer-sessions", "attach"), json=body)
        if code == 401:
            raise AttachError("attach", "Road rejected the join code (401)", permanent=True,
                              code="bad_join_code")
        if code == 404:
            raise AttachError("attach", "Road does not know this host session (404)",
                              code="host_not_found")
        if code != 200:
            raise AttachError("attach", f"Road answered {code} to the attach request",
                              code="road_error")
        try:
            psid = json.loads(raw)["peer_session_id"]
        except (ValueError, KeyError, TypeError):
            psid = None
        if not isinstance(psid, str) or not psid:
            raise AttachError("attach", "Road's attach response has no peer_session_id",
                              code="road_error")
        return psid

    async def poll_offer(self, psid: str, peer_id: str) -> sig.WebRtcSdpPayload | None:
        """The next offer queued for *peer_id*, or None (nothing yet)."""
        code, raw = await self._request("GET", self._url("peer-sessions", psid, "webrtc", "offer"),
                                        params={"peer_id": peer_id})
        if code in (409, 204, 404):
            return None
        if code != 200:
            raise RoadError(f"offer poll answered {code}", status=code)
        try:
            return sig.WebRtcSdpPayload.decode(raw)
        except sig.SignalingError as e:
            raise RoadError(f"bad offer payload: {e}", status=code) from None

    async def post_answer(self, psid: str, payload: sig.WebRtcSdpPayload,
                          retries: int = ANSWER_RETRIES, delay: float = ANSWER_RETRY_DELAY) -> int:
        """Post the answer; returns the number of tries.  409/404 are retried."""
        url = self._url("peer-sessions", psid, "webrtc", "answer")
        data = payload.encode().encode("utf-8")
        headers = {"Content-Type": ["application/json"]}
        for attempt in range(1, retries + 1):
            code, _ = await self._request("POST", url, data=data, headers=headers)
            if 200 <= code < 300:
                return attempt
            if code not in (409, 404):
                raise RoadError(f"answer post answered {code}", status=code)
            await deferLater(self.clock, delay)
        raise RoadError(f"answer post still refused after {retries} tries", status=409)


def _protocol_for(session: SignalingSession):
    """An autobahn client protocol class bound to *session* (autobahn is imported lazily)."""
    from autobahn.twisted.websocket import WebSocketClientProtocol

    class SignalingProtocol(WebSocketClientProtocol):
        def onOpen(self):
            session._opened(self)

        def onMessage(self, payload, isBinary):
            session._message(payload)

        def onClose(self, wasClean, code, reason):
            session._closed(f"WebSocket closed (code {code}, {reason or 'no reason'})")

    return SignalingProtocol


class SignalingSession:
    """One WebSocket join to the host's room, for one attach attempt."""

    log = Logger()

    def __init__(self, *, reactor, clock, road_url: str, host_session_id: str, join_code: str,
                 peer_session_id: str, ping_interval: float, pong_timeout: float = 10.0,
                 metadata: dict[str, str] | None = None, log_fields: dict[str, Any] | None = None,
                 connect: Callable[..., Deferred] | None = None):
        self.reactor = reactor
        self.clock = clock
        self.url = ws_url(road_url, host_session_id)
        self.host_session_id = host_session_id
        self.join_code = join_code
        self.peer_session_id = peer_session_id
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.metadata = metadata or {}
        self.log_fields = log_fields or {}
        self._connect = connect or self._connect_tcp
        self.proto = None
        self.my_id: str | None = None
        self.host_peer_id: str | None = None
        self.lost: Deferred = Deferred()
        self.lost.addErrback(lambda f: None)  # only ever fired with a reason string
        self.lost_reason: str | None = None
        self.lost_code: str | None = None
        self._open_d: Deferred | None = None
        self._join_d: Deferred | None = None
        self._server_d: Deferred | None = None
        self._signals: OrderedDict[str, deque] = OrderedDict()
        self._candidate_sink: tuple[str, Callable[[sig.IceCandidateSignal], None]] | None = None
        self._hint_waiters: list[Deferred] = []
        self._ping_call = None
        self._pong_call = None
        self._last_ping_at: float | None = None
        self.pings_sent = 0
        self.pongs = 0
        self.signals_dropped = 0

    # -- connecting --------------------------------------------------------------------------
    def _connect_tcp(self, factory) -> Deferred:
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
        from twisted.internet.interfaces import IStreamClientEndpoint
        from twisted.internet.ssl import optionsForClientTLS

        parts = urlsplit(self.url)
        if not parts.hostname:
            raise ValueError(f"signaling URL {self.url!r} names no host")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(self.reactor, parts.hostname, port,
                                                           timeout=10)
        if parts.scheme == "wss":
            endpoint = wrapClientTLS(optionsForClientTLS(parts.hostname), endpoint)
        return endpoint.connect(factory)

    async def open(self) -> sig.JoinSuccess:
        """Connect, join, start pinging; returns Road's ``join_success``."""
        from autobahn.twisted.websocket import WebSocketClientFactory

        factory = WebSocketClientFactory(self.url)
        factory.setProtocolOptions(maxMessagePayloadSize=sig.MAX_MESSAGE_BYTES,
                                   maxFramePayloadSize=sig.MAX_MESSAGE_BYTES,
                                   openHandshakeTimeout=10, closeHandshakeTimeout=2)
        factory.protocol = _protocol_for(self)
        factory.noisy = False
        self._open_d = Deferred()
        try:
            await self._connect(factory)
        except Exception as e:
            raise AttachError("attach", f"cannot reach Road's WebSocket {self.url}: {e}",
                              code="road_unreachable") from None
        await self._open_d
        self._join_d = Deferred()
        peer_id = str(uuid.uuid4())
        meta = {"host_session_id": self.host_session_id, "peer_session_id": self.peer_session_id,
                "role": "answerer", "peer_id": peer_id, **self.metadata}
        self.send(sig.Join(peer_id=peer_id, passphrase=self.join_code, label=LABEL, metadata=meta))
        result = await self._join_d
        if isinstance(result, sig.JoinError):
            permanent = result.reason in (sig.JOIN_ERROR_BAD_PASSPHRASE, sig.JOIN_ERROR_NO_PASSPHRASE)
            raise AttachError("attach", f"Road refused the join: {result.reason}", permanent=permanent,
                              code="bad_join_code" if permanent else "join_error")
        self.my_id = result.peer_id
        me = result.me()
        if me is not None and me.role == sig.ROLE_SERVER:
            raise AttachError("attach", "we joined an empty room as 'server': the host is not "
                              "connected to Road", code="host_not_connected")
        server = result.server_peer()
        if server is not None:
            self.host_peer_id = server.id
        self._ping()
        return result

    async def wait_host(self) -> str:
        """The host's peer id, waiting for its ``peer_joined`` if needed."""
        if self.host_peer_id is not None:
            return self.host_peer_id
        self._server_d = Deferred()
        return await self._server_d

    # -- messages ------------------------------------------------------------------------------
    def send(self, msg) -> None:
        if self.proto is None or self.lost_reason is not None:
            return
        self.proto.sendMessage(sig.encode_client(msg).encode("utf-8"), isBinary=False)

    def send_signal(self, to_peer: str, signal: Any) -> None:
        self.send(sig.Signal(to_peer=to_peer, signal=signal))

    def _opened(self, proto) -> None:
        self.proto = proto
        if self._open_d is not None and not self._open_d.called:
            self._open_d.callback(proto)

    def _message(self, payload: bytes) -> None:
        try:
            msg = sig.decode_server(payload)
        except sig.SignalingError as e:
            self.log.warn("ignoring a bad signaling message: {error}", error=str(e), **self.log_fields)
            return
        if isinstance(msg, sig.JoinSuccess | sig.JoinError):
            if self._join_d is not None and not self._join_d.called:
                self._join_d.callback(msg)
        elif isinstance(msg, sig.RelayedSignal):
            self._signal(msg)
        elif isinstance(msg, sig.Pong):
            self.pongs += 1
            if self._pong_call is not None and self._pong_call.active():
                self._pong_call.cancel()
            self._pong_call = None
        elif isinstance(msg, sig.PeerJoined):
            if (msg.peer.role == sig.ROLE_SERVER and self.host_peer_id is None
                    and msg.peer.id != self.my_id):
                self.host_peer_id = msg.peer.id
                if self._server_d is not None and not self._server_d.called:
                    self._server_d.callback(msg.peer.id)
        elif isinstance(msg, sig.PeerLeft):
            if msg.peer_id == self.host_peer_id:
                self._lose("the host left the signaling room", "host_left")
        elif isinstance(msg, sig.ErrorMessage):
            if "peer not found" in msg.message.lower() and self.my_id is not None:
                # Road relays for joined peers only when the target is in the room; an error
                # naming a missing peer after our own join means one of us was evicted.
                self.log.warn("Road error: {message}", message=msg.message, **self.log_fields)
            else:
                self.log.info("Road error: {message}", message=msg.message, **self.log_fields)

    def _signal(self, msg: sig.RelayedSignal) -> None:
        if self.host_peer_id is not None and msg.from_peer != self.host_peer_id:
            return
        try:
            cand = sig.IceCandidateSignal.from_json(msg.signal)
        except sig.SignalingError:
            return  # not an ICE candidate (transport proposals and the like)
        if self._candidate_sink is not None and self._candidate_sink[0] == cand.handshake_id:
            self._candidate_sink[1](cand)
            return
        queue = self._signals.get(cand.handshake_id)
        if queue is None:
            if len(self._signals) >= MAX_BUFFERED_HANDSHAKES:
                self._signals.popitem(last=False)
                self.signals_dropped += 1
            queue = self._signals[cand.handshake_id] = deque(maxlen=MAX_SIGNALS_PER_HANDSHAKE)
            self._hint()
        if len(queue) == queue.maxlen:
            self.signals_dropped += 1
        queue.append(cand)

    def next_offer_hint(self) -> Deferred:
        """Fires when the host trickles candidates for a new handshake (its offer is coming)."""
        d: Deferred = Deferred(lambda d: self._hint_waiters.remove(d) if d in self._hint_waiters else None)
        self._hint_waiters.append(d)
        return d

    def _hint(self) -> None:
        waiters, self._hint_waiters = self._hint_waiters, []
        for d in waiters:
            d.callback(None)

    def take_candidates(self, handshake_id: str,
                        sink: Callable[[sig.IceCandidateSignal], None]) -> list[sig.IceCandidateSignal]:
        """Buffered signals of *handshake_id*; later ones go straight to *sink*."""
        self._candidate_sink = (handshake_id, sink)
        buffered = list(self._signals.pop(handshake_id, ()))
        self._signals.clear()
        return buffered

    # -- keepalive and loss ---------------------------------------------------------------------
    def _ping(self) -> None:
        if self.lost_reason is not None:
            return
        now = self.clock.seconds()
        if self._last_ping_at is not None and now - self._last_ping_at > ROAD_PEER_TIMEOUT:
            self._lose(f"no ping for {now - self._last_ping_at:.0f}s (the manager was stalled): "
                       f"Road has evicted this peer", "evicted")
            return
        self._last_ping_at = now
        self.send(sig.Ping())
        self.pings_sent += 1
        if self._pong_call is None:
            self._pong_call = self.clock.callLater(self.pong_timeout, self._no_pong)
        self._ping_call = self.clock.callLater(self.ping_interval, self._ping)

    def _no_pong(self) -> None:
        self._pong_call = None
        self._lose(f"no pong from Road within {self.pong_timeout:.0f}s", "no_pong")

    def _closed(self, reason: str) -> None:
        if self._open_d is not None and not self._open_d.called:
            self._open_d.errback(Failure(AttachError("attach", f"WebSocket failed: {reason}",
                                                     code="road_unreachable")))
        self._lose(reason, "ws_closed")

    def _lose(self, reason: str, code: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        self.lost_code = code
        self._stop_timers()
        for d in (self._join_d, self._server_d):
            if d is not None and not d.called:
                d.errback(Failure(AttachError("attach", reason, code=code)))
        self.lost.callback(reason)

    def _stop_timers(self) -> None:
        for call in (self._ping_call, self._pong_call):
            if call is not None and call.active():
                call.cancel()
        self._ping_call = self._pong_call = None

    def close(self) -> None:
        """Leave the room (idempotent)."""
        self._lose("closed by the manager", "closed")
        proto, self.proto = self.proto, None
        if proto is not None:
            proto.sendClose()
            # A peer that does not finish the closing handshake is dropped hard.
            call = self.clock.callLater(3, _drop_transport, proto)
            proto.is_closed.addBoth(lambda _: call.cancel() if call.active() else None)

    def status(self) -> dict[str, Any]:
        return {"peer_id": self.my_id, "host_peer_id": self.host_peer_id,
                "pings_sent": self.pings_sent, "pongs": self.pongs,
                "signals_dropped": self.signals_dropped, "lost": self.lost_reason}


def _drop_transport(proto) -> None:
    transport = getattr(proto, "transport", None)
    if transport is not None:
        transport.abortConnection()
