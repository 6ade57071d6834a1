"""The host's side of Beach Road: registration, attach, SDP mailboxes (HTTP) and the room (WebSocket).

Written for the host role only and independent of the manager's Road client, so
the two sides of the handshake check each other.  HTTP runs on treq; the
WebSocket on autobahn, with a ``ping`` every ``ping_interval`` seconds on the
injected clock (the first one at once, as upstream).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from ...protocol import signaling as sig

#: SDP POST retries on 409/404, as upstream (40 x 50 ms).
POST_RETRIES = 40
POST_RETRY_DELAY = 0.05
HTTP_TIMEOUT = 8.0


class RoadError(Exception):
    """Road refused a request or answered something unexpected."""


class RoadHttp:
    log = Logger()

    def __init__(self, base_url: str, clock, reactor=None):
        self.base = base_url.rstrip("/")
        self.clock = clock
        self.reactor = reactor

    async def _request(self, method: str, path: str, body: Any = None, params: dict | None = None):
        import treq

        kw: dict[str, Any] = {"timeout": HTTP_TIMEOUT}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            kw["headers"] = {b"content-type": [b"application/json"]}
        if params:
            kw["params"] = params
        response = await treq.request(method, self.base + path, **kw)
        text = await response.text()
        return response.code, text

    async def register(self, session_id: str, passphrase: str | None) -> dict[str, Any]:
        code, text = await self._request("POST", "/sessions", {"session_id": session_id, "passphrase": passphrase})
        if code != 200:
            raise RoadError(f"POST /sessions answered {code}")
        body = json.loads(text)
        if not body.get("success"):
            raise RoadError(f"registration refused: {body.get('message')}")
        return body

    async def attach(self, host_session_id: str, passphrase: str, peer_id: str) -> str:
        code, text = await self._request("POST", "/peer-sessions/attach", {
            "host_session_id": host_session_id, "passphrase": passphrase, "role": "offerer", "peer_id": peer_id})
        if code != 200:
            raise RoadError(f"POST /peer-sessions/attach answered {code}")
        return json.loads(text)["peer_session_id"]

    async def post_offer(self, psid: str, payload: sig.WebRtcSdpPayload) -> None:
        path = f"/peer-sessions/{psid}/webrtc/offer"
        for _ in range(POST_RETRIES):
            code, _text = await self._request("POST", path, payload.to_json())
            if code in (200, 204):
                return
            if code not in (404, 409):
                raise RoadError(f"POST {path} answered {code}")
            await deferLater(self.clock, POST_RETRY_DELAY, lambda: None)
        raise RoadError(f"POST {path} kept answering 409")

    async def take_answer(self, psid: str, handshake_id: str) -> sig.WebRtcSdpPayload | None:
        code, text = await self._request("GET", f"/peer-sessions/{psid}/webrtc/answer",
                                         params={"handshake_id": handshake_id})
        if code in (204, 404, 409):
            return None
        if code != 200:
            raise RoadError(f"GET answer answered {code}")
        return sig.WebRtcSdpPayload.decode(text)


class RoadRoom:
    """The host's WebSocket in the room: join as ``server``, relay, ping.

    Callbacks: ``on_joined(JoinSuccess)``, ``on_message(ServerMessage)``, ``on_closed(reason)``.
    """

    log = Logger()

    def __init__(self, ws_url: str, clock, *, join: sig.Join, ping_interval: float,
                 on_joined: Callable[[sig.JoinSuccess], None], on_message: Callable[[sig.ServerMessage], None],
                 on_closed: Callable[[str], None]):
        self.ws_url = ws_url
        self.clock = clock
        self.join_msg = join
        self.ping_interval = ping_interval
        self.on_joined = on_joined
        self.on_message = on_message
        self.on_closed = on_closed
        self.proto = None
        self.peer_id: str | None = None
        self._ping: LoopingCall | None = None
        self._joined: Deferred = Deferred()

    def connect(self) -> Deferred:
        """Connect and join; fires with the ``JoinSuccess`` (fails on ``join_error``)."""
        from autobahn.twisted.websocket import (
            WebSocketClientFactory,
            WebSocketClientProtocol,
            connectWS,
        )

        room = self

        class Proto(WebSocketClientProtocol):
            def onOpen(self):
                room.proto = self
                self.sendMessage(sig.encode_client(room.join_msg).encode(), isBinary=False)

            def onMessage(self, payload, isBinary):
                room._received(payload)

            def onClose(self, wasClean, code, reason):
                room._closed(f"websocket closed ({code}: {reason})")

        factory = WebSocketClientFactory(self.ws_url)
        factory.protocol = Proto
        factory.setProtocolOptions(maxMessagePayloadSize=sig.MAX_MESSAGE_BYTES)
        connectWS(factory, timeout=10)
        return self._joined

    def _received(self, payload: bytes) -> None:
        try:
            msg = sig.decode_server(payload)
        except sig.SignalingError as e:
            self.log.warn("bad message from Road: {error}", error=str(e))
            return
        if not self._joined.called:
            if isinstance(msg, sig.JoinSuccess):
                self.peer_id = msg.peer_id
                self._start_ping()
                self.on_joined(msg)
                self._joined.callback(msg)
            elif isinstance(msg, sig.JoinError):
                self._joined.errback(RoadError(f"join refused: {msg.reason}"))
            return
        self.on_message(msg)

    def _start_ping(self) -> None:
        self._ping = LoopingCall(self.send, sig.Ping())
        self._ping.clock = self.clock
        self._ping.start(self.ping_interval, now=True).addErrback(
            lambda f: self.log.failure("ping loop stopped", failure=f))

    def _closed(self, reason: str) -> None:
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        self.proto = None
        if not self._joined.called:
            self._joined.errback(RoadError(reason))
            return
        self.on_closed(reason)

    def send(self, msg: sig.ClientMessage) -> None:
        if self.proto is not None:
            self.proto.sendMessage(sig.encode_client(msg).encode(), isBinary=False)

    def close(self) -> None:
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        if self.proto is not None:
            self.proto.sendClose()


def host_join(host_session_id: str, peer_session_id: str, passphrase: str) -> sig.Join:
    """The host's ``join``: no label, offerer metadata (reference §3.1)."""
    peer_id = str(uuid.uuid4())
    return sig.Join(peer_id=peer_id, passphrase=passphrase, label=None, metadata={
        "role": "offerer", "peer_id": peer_id, "host_session_id": host_session_id,
        "peer_session_id": peer_session_id})
