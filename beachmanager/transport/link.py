"""The manager's end of one host's ``beach`` data channel: every layer between bytes and frames.

Inbound (reference §5.1): data-channel message → secure gate (decrypt; frames that look
encrypted and arrive before the keys are held) → 0xA1 reassembly → namespace ``sync``
transport envelope → text (the sentinels and status lines) or a binary wire frame
decoded with ``wire.decode_from_host`` (dual ``0x44`` decoding).  Bad bytes at any layer
are dropped and counted by layer, never raised into the reactor.

Outbound: wire frame or text → envelope → framing → encryption → one data-channel message
per chunk.  One sequence counter for namespace ``sync``, shared by text and binary, from 0
(so ``__ready__`` is seq 0).  Sends are refused (False) while the channel's buffered amount
is above ``max_buffered``, so a stuck host cannot grow the manager's memory.  A ``Resize``
frame is never sent: it would resize the host's shared terminal.

The layer codecs are ``protocol.channel`` (Outbound/Inbound) and ``protocol.crypto``
(InboundGate/SecureChannel).  Sans-I/O: the caller supplies ``send_raw(bytes)`` and a ``clock``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..protocol import frames, wire
from ..protocol.channel import OFFER_READY, READY, SYNC, Inbound, Outbound
from ..protocol.crypto import CryptoError, InboundGate, SecureChannel
from ..protocol.errors import ProtocolError

DEFAULT_MAX_BUFFERED = 4 * 1024 * 1024


class ForbiddenFrame(ValueError):
    """A frame the manager must never send (``Resize``)."""


class HostLink:
    def __init__(self, send_raw: Callable[[bytes], int], clock: Callable[[], float], *,
                 on_text: Callable[[str], None], on_frame: Callable[[Any], None],
                 max_buffered: int = DEFAULT_MAX_BUFFERED,
                 buffered: Callable[[], int] = lambda: 0):
        self._send_raw = send_raw
        self._buffered = buffered
        self.on_text = on_text
        self.on_frame = on_frame
        self.max_buffered = max_buffered
        self.gate = InboundGate()
        self.secure: SecureChannel | None = None
        self.inbound = Inbound(clock)
        self.outbound = Outbound()
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.frames_in = 0
        self.errors: dict[str, int] = {}
        self.last_error: str | None = None
        self.other_namespaces = 0
        self.refused = 0

    # -- security ------------------------------------------------------------------------------
    def install_secure(self, channel: SecureChannel) -> None:
        """Encrypt from now on; decrypt and process anything held back."""
        self.secure = channel
        for plaintext in self.gate.install(channel):
            self._chunk(plaintext)

    # -- inbound -------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        self.messages_in += 1
        self.bytes_in += len(data)
        failures = self.gate.decrypt_failures
        for plaintext in self.gate.receive(data):
            self._chunk(plaintext)
        if self.gate.decrypt_failures != failures:
            self._error("decrypt", self.gate.last_error)

    def _chunk(self, chunk: bytes) -> None:
        try:
            msg = self.inbound.feed(chunk)
        except ProtocolError as e:
            self._error(type(e).__name__, e)
            return
        if msg is None:
            return
        if msg.namespace != SYNC:
            self.other_namespaces += 1  # e.g. the legacy "controller" path: not ours
            return
        if msg.is_text:
            self.on_text(msg.text)
            return
        try:
            frame = wire.decode_from_host(msg.data)
        except wire.WireError as e:
            self._error("WireError", e)
            return
        self.frames_in += 1
        self.on_frame(frame)

    def _error(self, layer: str, error: Exception | None) -> None:
        self.errors[layer] = self.errors.get(layer, 0) + 1
        self.last_error = f"{layer}: {error}"

    # -- outbound ------------------------------------------------------------------------------
    def send_text(self, text: str) -> bool:
        return self._send(lambda: self.outbound.text(text))

    def send_frame(self, frame: Any) -> bool:
        """Send one client wire frame; refuses ``Resize`` (ForbiddenFrame)."""
        if isinstance(frame, frames.Resize):
            raise ForbiddenFrame("the manager never sends Resize: it would resize the host's "
                                 "shared terminal")
        return self._send(lambda: self.outbound.client_frame(frame))

    def send_extension(self, namespace: str, topic: str, payload: bytes) -> bool:
        return self.send_frame(frames.Extension(namespace=namespace, kind=topic, payload=payload))

    def _send(self, make_chunks: Callable[[], list[bytes]]) -> bool:
        if self._buffered() > self.max_buffered:
            self.refused += 1
            return False
        for chunk in make_chunks():
            out = self.secure.seal(chunk) if self.secure is not None else chunk
            self._send_raw(out)
            self.messages_out += 1
            self.bytes_out += len(out)
        return True

    def stats(self) -> dict[str, Any]:
        return {"messages_in": self.messages_in, "messages_out": self.messages_out,
                "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "frames_in": self.frames_in,
                "errors": dict(self.errors), "secure": self.secure is not None,
                "send_refused": self.refused, "decrypt_resyncs": getattr(self.secure, "resyncs", 0)}


__all__ = ["OFFER_READY", "READY", "CryptoError", "ForbiddenFrame", "HostLink"]
