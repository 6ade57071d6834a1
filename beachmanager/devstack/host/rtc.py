"""The host's aiortc offerer for one client peer (asyncio; the negotiator drives it via ``_aio``).

Creates the ``beach`` channel (ordered, reliable) and, on the secure path,
``beach-secure-handshake`` before the offer, as upstream hosts do.  aiortc gathers
inside ``setLocalDescription``; like webrtc-rs, the offer goes out without its
candidates (unless ``candidates_in_offer``) and the candidates are trickled, with
``sdp_mid=""`` and index 0 as webrtc-rs reports them.  Only binary messages are sent.

Loss: the peer connection failing or closing, or the ``beach`` channel closing, loses the
peer.  Any other channel closing (the browser client closes ``beach-secure-handshake``
once its handshake is done; reference road §4.5) is only reported to
``on_channel_closed``: the caller decides whether it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ...protocol.crypto import HANDSHAKE_CHANNEL_LABEL
from ...protocol.signaling import IceCandidate
from ...transport.ice import application_mid, strip_end_of_candidates
from ...transport.rtc_compat import sdp_candidates, strip_candidates, to_aiortc

BEACH_CHANNEL = "beach"
#: Peer candidates held until the answer is applied.
MAX_PENDING_CANDIDATES = 64


class RtcClosed(Exception):
    """The peer connection failed or was closed."""


class OfferPeer:
    def __init__(self, ice_servers: Sequence[Any], *, secure: bool,
                 on_message: Callable[[str, bytes], None], on_lost: Callable[[str], None],
                 on_channel_closed: Callable[[str], None] | None = None,
                 on_remote_channel: Callable[[str], None] | None = None,
                 candidates_in_offer: bool = False):
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self.secure = secure
        self.candidates_in_offer = candidates_in_offer
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_channel_closed = on_channel_closed
        self._on_remote_channel = on_remote_channel
        self.channels: dict[str, Any] = {}
        self._open: dict[str, asyncio.Future] = {}
        self._mid: str | None = None
        self._remote_set = False
        self._pending: deque[IceCandidate] = deque(maxlen=MAX_PENDING_CANDIDATES)
        self.closed = False
        self.lost_reason: str | None = None
        self.candidates_added = 0
        self.candidates_dropped = 0
        loop = asyncio.get_running_loop()
        labels = [BEACH_CHANNEL] + ([HANDSHAKE_CHANNEL_LABEL] if secure else [])
        for label in labels:
            channel = self.pc.createDataChannel(label, ordered=True)
            self.channels[label] = channel
            self._open[label] = loop.create_future()
            self._wire(label, channel)
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("datachannel", self._remote_channel)

    def _remote_channel(self, channel) -> None:
        """A channel the peer opened itself: not used (the host opens every channel), only reported."""
        if self._on_remote_channel is not None:
            self._on_remote_channel(channel.label)

    def _wire(self, label: str, channel) -> None:
        @channel.on("open")
        def _opened() -> None:
            fut = self._open[label]
            if not fut.done():
                fut.set_result(channel)

        @channel.on("message")
        def _message(message) -> None:
            if isinstance(message, bytes | bytearray):
                self._on_message(label, bytes(message))

        @channel.on("close")
        def _closed() -> None:
            if label == BEACH_CHANNEL:
                self._lose(f"data channel {label!r} closed")
            else:
                self._channel_closed(label)

    def _channel_closed(self, label: str) -> None:
        if self.lost_reason is not None:
            return  # the whole peer is going: nothing more to say about one channel
        fut = self._open[label]
        if not fut.done():
            fut.set_exception(RtcClosed(f"data channel {label!r} closed before it opened"))
            fut.exception()  # retrieved
        if self._on_channel_closed is not None:
            self._on_channel_closed(label)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self._lose(f"peer connection {self.pc.connectionState}")

    def _lose(self, reason: str) -> None:
        if self.lost_reason is None:
            self.lost_reason = reason
            for fut in self._open.values():
                if not fut.done():
                    fut.set_exception(RtcClosed(reason))
                    fut.exception()  # retrieved
            self._on_lost(reason)

    # -- negotiation ---------------------------------------------------------------------
    async def create_offer(self) -> tuple[str, list[IceCandidate]]:
        """``(offer SDP to post, candidates to trickle)``."""
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)  # gathers
        local = self.pc.localDescription.sdp
        self._mid = application_mid(local)
        trickle = [IceCandidate(candidate=c, sdp_mid="", sdp_mline_index=0) for c, _mid, _i in sdp_candidates(local)]
        sdp = local if self.candidates_in_offer else strip_candidates(local)
        return sdp, trickle

    async def apply_answer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=strip_end_of_candidates(sdp), type="answer"))
        self._remote_set = True
        while self._pending:
            await self.add_candidate(self._pending.popleft())

    async def add_candidate(self, cand: IceCandidate) -> None:
        """A candidate trickled by the peer (its mid is rewritten to our data-channel mid)."""
        if self.closed:
            return
        if not self._remote_set:
            if len(self._pending) == self._pending.maxlen:
                self.candidates_dropped += 1
            self._pending.append(cand)
            return
        try:
            parsed = to_aiortc(cand.candidate, self._mid, 0)
        except ValueError:
            self.candidates_dropped += 1
            return
        if parsed.ip.endswith(".local"):
            self.candidates_dropped += 1
            return
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception:  # aiortc raises several types for odd candidates
            self.candidates_dropped += 1
            return
        self.candidates_added += 1

    async def wait_open(self, label: str) -> Any:
        return await asyncio.shield(self._open[label])

    # -- data --------------------------------------------------------------------------------
    def send(self, label: str, data: bytes) -> None:
        channel = self.channels.get(label)
        if channel is None or channel.readyState != "open":
            raise RtcClosed(f"data channel {label!r} is not open")
        channel.send(bytes(data))

    def buffered_amount(self, label: str = BEACH_CHANNEL) -> int:
        channel = self.channels.get(label)
        return channel.bufferedAmount if channel is not None else 0

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._lose("closed by the host")
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                channel.close()
        await self.pc.close()
