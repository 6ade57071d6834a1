"""A test answerer: joins a Beach host through Road as a client, built only from the protocol
modules and aiortc (independent of the manager's transport code).

    peer = await TestAnswerer.join(road_url, host_session_id, join_code, label="beach-manager")
    await peer.wait_text("__offer_ready__")
    hello = await peer.wait_frame(frames.Hello)
    peer.send_frame(frames.Input(seq=1, data=b"ls\\r"))
    await peer.close()

It follows reference road §6 step by step: attach, WebSocket join, buffer ICE,
poll the offer, open it with the join-code keys, answer (sealed), run the Noise
responder and the challenge when the host opens ``beach-secure-handshake``,
then send ``__ready__``.

Browser-client behaviours (Beach Surfer), for the devstack host's tolerance tests:

* ``handshake_channel="close_after"`` closes ``beach-secure-handshake`` once the handshake
  and challenge are done (as Beach Surfer does); ``"close_before"`` closes it as soon as
  it opens, sends nothing on it and no ``__ready__``;
* ``require_secure=True`` runs the handshake whenever there is a join code, whatever the
  label: it waits up to ``handshake_wait`` seconds for the host's handshake channel, never
  sends a plaintext ``__ready__``, and fails the join when no channel comes;
  ``open_handshake_channel=True`` also opens a ``beach-secure-handshake`` channel of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from beachmanager import _aio
from beachmanager.protocol import channel, wire
from beachmanager.protocol import signaling as sig
from beachmanager.protocol.crypto import (
    HANDSHAKE_CHANNEL_LABEL,
    InboundGate,
    Role,
    SecureChannel,
    SecureHandshake,
    derive_handshake_key,
    derive_session_key,
    ice_components,
    open_sealed,
    sdp_components,
    seal,
)
from beachmanager.protocol.frames import HostFrame
from tests.support.eventually import eventually
from tests.support.ws_peer import WsPeer


class AnswererError(Exception):
    pass


def _application_mid(sdp: str) -> str | None:
    in_app = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_app = line.startswith("m=application")
        elif in_app and line.startswith("a=mid:"):
            return line[6:].strip()
    return None


class TestAnswerer:
    log = Logger()
    __test__ = False  # not a pytest class

    HANDSHAKE_CHANNEL_MODES = ("keep", "close_after", "close_before")

    def __init__(self, road_url: str, host_session_id: str, join_code: str, label: str | None,
                 send_ready: bool = True, handshake_channel: str = "keep", require_secure: bool = False,
                 handshake_wait: float = 1.0, open_handshake_channel: bool = False):
        if handshake_channel not in self.HANDSHAKE_CHANNEL_MODES:
            raise ValueError(f"handshake_channel must be one of {self.HANDSHAKE_CHANNEL_MODES}")
        self.road_url = road_url.rstrip("/")
        self.host_session_id = host_session_id
        self.join_code = join_code
        self.label = label
        self.send_ready = send_ready
        self.handshake_channel = handshake_channel
        self.require_secure = require_secure
        self.handshake_wait = handshake_wait
        self.open_handshake_channel = open_handshake_channel
        self.ws: WsPeer | None = None
        self.psid: str | None = None
        self.peer_id: str | None = None
        self.host_peer_id: str | None = None
        self.handshake_id: str | None = None
        self.psk: bytes | None = None
        self.pc = None
        self.channels: dict[str, Any] = {}
        self.secure = False
        self.secure_code: str | None = None
        self.outbound = channel.Outbound()
        self.inbound = channel.Inbound(reactor.seconds)
        self.gate = InboundGate()
        self.crypto: SecureChannel | None = None
        self.received: list[Any] = []  # str (text) or HostFrame
        self.headers: list[int] = []  # first byte of every binary message (0x44 vs 0x4A ...)
        self.offer_sealed: bool | None = None
        self._waiters: list[tuple[Callable[[Any], bool], Deferred]] = []
        self._signals: list[sig.IceCandidateSignal] = []
        self._handshake_msgs: asyncio.Queue | None = None
        self.own_handshake_channel: Any = None
        self.closed = False

    # -- joining ---------------------------------------------------------------------------
    @classmethod
    async def join(cls, road_url: str, host_session_id: str, join_code: str, label: str | None = "beach-manager",
                   timeout: float = 30.0, send_ready: bool = True, **behaviour: Any) -> TestAnswerer:
        """Join and (unless *send_ready* is false) send ``__ready__``; *behaviour*: the
        browser-client options of the constructor."""
        peer = cls(road_url, host_session_id, join_code, label, send_ready, **behaviour)
        d = Deferred.fromCoroutine(peer._join())
        d.addTimeout(timeout, reactor)
        try:
            await d
        except Exception:
            await peer.close()
            raise
        return peer

    async def _join(self) -> None:
        r = await treq.post(self.road_url + "/peer-sessions/attach", json={
            "host_session_id": self.host_session_id, "passphrase": self.join_code, "role": "answerer",
            "peer_id": str(uuid.uuid4())})
        if r.code != 200:
            raise AnswererError(f"attach answered {r.code}")
        self.psid = (await r.json())["peer_session_id"]
        session_key = await _aio.call_blocking(derive_session_key, self.join_code, self.host_session_id)
        self.ws = await WsPeer.connect(f"ws{self.road_url[4:]}/ws/{self.host_session_id}")
        js = await self.ws.join(self.join_code, label=self.label, metadata={
            "role": "answerer", "host_session_id": self.host_session_id, "peer_session_id": self.psid})
        if not isinstance(js, sig.JoinSuccess):
            raise AnswererError(f"join failed: {js}")
        self.peer_id = js.peer_id
        server = js.server_peer()
        self.host_peer_id = server.id if server else None
        self._pump_ws()
        offer = await self._poll_offer()
        self.handshake_id = hid = offer.handshake_id
        self.offer_sealed = offer.sealed is not None
        self.psk = derive_handshake_key(session_key, hid)
        if offer.sealed is not None:
            sdp = open_sealed(self.psk, hid, "offer", sdp_components(offer.from_peer, offer.to_peer, "offer"),
                              offer.sealed.to_json()).decode()
        else:
            sdp = offer.sdp
        answer_sdp = await _aio.as_deferred(self._answer(sdp))
        box = seal(self.psk, hid, "answer", sdp_components(self.peer_id, self.host_peer_id, "answer"),
                   answer_sdp.encode())
        payload = sig.WebRtcSdpPayload(sdp="", type="answer", handshake_id=hid, from_peer=self.peer_id,
                                       to_peer=self.host_peer_id, sealed=sig.SealedBox.from_json(box))
        r = await treq.post(f"{self.road_url}/peer-sessions/{self.psid}/webrtc/answer", json=payload.to_json())
        if r.code != 204:
            raise AnswererError(f"answer POST answered {r.code}")
        await _aio.as_deferred(self._until_ready())

    def _pump_ws(self) -> None:
        async def pump():
            while not self.closed:
                try:
                    msg = await self.ws.next(timeout=3600)
                except Exception:
                    return
                if isinstance(msg, sig.PeerJoined) and msg.peer.role == sig.ROLE_SERVER:
                    self.host_peer_id = self.host_peer_id or msg.peer.id
                elif isinstance(msg, sig.RelayedSignal) and msg.from_peer == self.host_peer_id:
                    try:
                        self._signals.append(sig.IceCandidateSignal.from_json(msg.signal))
                    except sig.SignalingError:
                        pass
                    if self.pc is not None and self.handshake_id is not None:
                        _aio.background(_aio.as_deferred(self._apply_signals()), "ice", self.log)

        _aio.background(Deferred.fromCoroutine(pump()), "answerer ws pump", self.log)

    async def _poll_offer(self) -> sig.WebRtcSdpPayload:
        """The offer mailbox is polled (reference road §6); 204, 404 and 409 mean "not yet"."""
        url = f"{self.road_url}/peer-sessions/{self.psid}/webrtc/offer"

        async def offer() -> sig.WebRtcSdpPayload | None:
            r = await treq.get(url, params={"peer_id": self.peer_id})
            if r.code != 200:
                await r.content()
                if r.code not in (204, 404, 409):
                    raise AnswererError(f"offer poll answered {r.code}")
                return None
            got = sig.WebRtcSdpPayload.decode(await r.content())
            if self.host_peer_id is None or got.from_peer == self.host_peer_id:
                self.host_peer_id = got.from_peer
                return got
            return None

        return await eventually(offer, timeout=30.0, step=0.1, what="the host's offer")

    # -- aiortc (asyncio) ------------------------------------------------------------------------
    async def _answer(self, offer_sdp: str) -> str:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        self._handshake_msgs = asyncio.Queue(maxsize=64)
        self._opened: dict[str, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        self.pc = RTCPeerConnection()
        self._mid = _application_mid(offer_sdp)

        @self.pc.on("datachannel")
        def on_datachannel(ch):
            self.channels[ch.label] = ch
            fut = self._opened.setdefault(ch.label, loop.create_future())
            if not fut.done():
                fut.set_result(ch)

            @ch.on("message")
            def on_message(message):
                if ch.label == HANDSHAKE_CHANNEL_LABEL:
                    self._handshake_msgs.put_nowait(bytes(message))
                else:
                    self._on_beach(bytes(message))

        sdp = "\r\n".join(line for line in offer_sdp.split("\r\n") if line != "a=end-of-candidates")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if self.open_handshake_channel:
            self.own_handshake_channel = self.pc.createDataChannel(HANDSHAKE_CHANNEL_LABEL, ordered=True)
        await self._apply_signals()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def _apply_signals(self) -> None:
        from aiortc.sdp import candidate_from_sdp

        pending, self._signals = self._signals, []
        for s in pending:
            if s.handshake_id != self.handshake_id:
                continue
            if s.sealed is not None:
                plain = open_sealed(self.psk, s.handshake_id, "ice",
                                    ice_components(self.host_peer_id, self.peer_id, s.handshake_id), s.sealed.to_json())
                cand = sig.IceCandidate.decode(plain)
            else:
                cand = s.plain_candidate()
            text = cand.candidate.removeprefix("candidate:")
            if not text:
                continue
            parsed = candidate_from_sdp(text)
            parsed.sdpMid = self._mid  # webrtc-style hosts send sdp_mid ""
            parsed.sdpMLineIndex = 0
            await self.pc.addIceCandidate(parsed)

    async def _channel(self, label: str, timeout: float) -> Any:
        fut = self._opened.setdefault(label, asyncio.get_running_loop().create_future())
        ch = await asyncio.wait_for(asyncio.shield(fut), timeout)
        if ch.readyState != "open":
            opened = asyncio.get_running_loop().create_future()
            ch.once("open", lambda: opened.done() or opened.set_result(None))
            await asyncio.wait_for(opened, timeout)
        return ch

    async def _until_ready(self) -> None:
        beach = await self._channel("beach", 15)
        # The host opens both channels before its offer, so the handshake channel (when there is
        # one) is announced right after "beach"; its arrival, not the label, is authoritative.
        try:
            hs_channel = await self._channel(HANDSHAKE_CHANNEL_LABEL, self.handshake_wait)
        except TimeoutError:
            hs_channel = None
        self._beach = beach
        if hs_channel is None and self.require_secure:
            raise AnswererError(f"no {HANDSHAKE_CHANNEL_LABEL!r} channel within {self.handshake_wait}s "
                                f"(label {self.label!r})")
        if hs_channel is not None:
            self.secure = True
            if self.handshake_channel == "close_before":
                hs_channel.close()
                return
            hs = SecureHandshake(Role.RESPONDER, self.psk, self.handshake_id, self.peer_id, self.host_peer_id)
            while not hs.done:
                msg = await asyncio.wait_for(self._handshake_msgs.get(), 10)
                for reply in hs.receive(msg):
                    hs_channel.send(reply)
            self.secure_code = hs.keys.verification_code
            self.crypto = SecureChannel(hs.keys.send_key, hs.keys.recv_key)
            for plain in self.gate.install(self.crypto):
                self._on_plain(plain)
            if self.handshake_channel == "close_after":
                hs_channel.close()
        if self.send_ready:
            self.send_text(channel.READY)

    # -- data ---------------------------------------------------------------------------------------
    def _on_beach(self, data: bytes) -> None:
        for plain in self.gate.receive(data):
            self._on_plain(plain)

    def _on_plain(self, chunk: bytes) -> None:
        msg = self.inbound.feed(chunk)
        if msg is None or msg.namespace != channel.SYNC:
            return
        if not msg.is_text:
            self.headers.append(msg.data[0] if msg.data else -1)
        item: Any = msg.text if msg.is_text else wire.decode_from_host(msg.data)
        self.received.append(item)
        for pred, d in list(self._waiters):
            if pred(item):
                self._waiters.remove((pred, d))
                d.callback(item)

    def _send_chunks(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self._beach.send(self.crypto.seal(c) if self.crypto is not None else c)

    def send_text(self, text: str) -> None:
        self._send_chunks(self.outbound.text(text))

    def send_frame(self, frame: Any) -> None:
        """A client frame (``Input``, ``Resize``, ``Extension`` as ``0x44`` ...)."""
        self._send_chunks(self.outbound.client_frame(frame))

    def send_raw_chunk(self, data: bytes) -> None:
        self._beach.send(data)

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = 10.0, since: int = 0) -> Any:
        """The first received item (text or host frame) from index *since* matching *pred*."""
        for item in self.received[since:]:
            if pred(item):
                return item
        d: Deferred = Deferred()
        entry = (pred, d)
        self._waiters.append(entry)
        d.addTimeout(timeout, reactor)
        try:
            return await d
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_text(self, text: str, timeout: float = 10.0) -> str:
        return await self.wait_for(lambda i: i == text, timeout)

    async def wait_frame(self, kind: type[HostFrame], timeout: float = 10.0, since: int = 0,
                         where: Callable[[Any], bool] = lambda f: True) -> Any:
        return await self.wait_for(lambda i: isinstance(i, kind) and where(i), timeout, since)

    def frames(self, kind: type | None = None) -> list[Any]:
        return [i for i in self.received if not isinstance(i, str) and (kind is None or isinstance(i, kind))]

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pc is not None:
            await _aio.as_deferred(self.pc.close())
        if self.ws is not None:
            await self.ws.close()
