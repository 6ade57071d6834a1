"""The host's side of one ``beach`` data channel, sans-I/O: frames <-> data-channel messages.

Outbound: wire frame -> transport envelope (``binary``, or ``text`` for sentinels)
-> 0xA1 chunks in namespace ``sync`` -> optional encryption -> ``send_raw``.  One
sequence counter, shared by text and binary, written in both the chunk header and
the envelope.  Inbound: optional decryption (frames that look encrypted are held
until the keys are installed) -> reassembly -> envelope -> text or client frame.
Bad bytes are dropped and counted, never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...protocol import wire
from ...protocol.channel import SYNC, Inbound, Outbound
from ...protocol.crypto import InboundGate, SecureChannel
from ...protocol.errors import ProtocolError
from ...protocol.frames import ClientFrame, Extension, HostFrame
from ...protocol.framing import DEFAULT_CHUNK_SIZE

#: Extension header the host writes: 0x44 (client layout, what upstream hosts send) or 0x4A.
EXT_HEADER_CLIENT = 0x44
EXT_HEADER_HOST = 0x4A


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Frame:
    frame: ClientFrame


@dataclass
class LinkStats:
    sent_messages: int = 0
    sent_bytes: int = 0
    received_messages: int = 0
    dropped_bad: int = 0
    dropped_other_namespace: int = 0


class BeachLink:
    def __init__(self, send_raw: Callable[[bytes], None], clock: Callable[[], float],
                 chunk_size: int = DEFAULT_CHUNK_SIZE, extension_header: int = EXT_HEADER_CLIENT):
        if extension_header not in (EXT_HEADER_CLIENT, EXT_HEADER_HOST):
            raise ValueError("extension header must be 0x44 or 0x4A")
        self._send_raw = send_raw
        self.extension_header = extension_header
        self.outbound = Outbound(chunk_size=chunk_size)
        self.inbound = Inbound(clock, chunk_size=chunk_size)
        self.gate: InboundGate | None = None
        self.secure: SecureChannel | None = None
        self.stats = LinkStats()

    # -- security ------------------------------------------------------------------------
    def expect_encryption(self) -> InboundGate:
        """Hold frames that look encrypted until :meth:`install` (secure path only)."""
        if self.gate is None:
            self.gate = InboundGate()
        return self.gate

    def install(self, channel: SecureChannel) -> list[Text | Frame]:
        """Encrypt from now on; returns whatever held inbound frames decode to."""
        gate = self.expect_encryption()
        self.secure = channel
        out: list[Text | Frame] = []
        for plain in gate.install(channel):
            out.extend(self._plain(plain))
        return out

    # -- sending ---------------------------------------------------------------------------
    def _emit(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            out = self.secure.seal(chunk) if self.secure is not None else chunk
            self.stats.sent_messages += 1
            self.stats.sent_bytes += len(out)
            self._send_raw(out)

    def send_text(self, text: str) -> None:
        self._emit(self.outbound.text(text))

    def send_frame(self, frame: HostFrame) -> None:
        if isinstance(frame, Extension) and self.extension_header == EXT_HEADER_CLIENT:
            self._emit(self.outbound.binary(wire.encode_client(frame)))
        else:
            self._emit(self.outbound.host_frame(frame))

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, data: bytes) -> list[Text | Frame]:
        """Everything one data-channel message completes (usually zero or one item)."""
        plains = self.gate.receive(data) if self.gate is not None else [bytes(data)]
        out: list[Text | Frame] = []
        for plain in plains:
            out.extend(self._plain(plain))
        return out

    def _plain(self, chunk: bytes) -> list[Text | Frame]:
        try:
            msg = self.inbound.feed(chunk)
            if msg is None:
                return []
            if msg.namespace != SYNC:
                self.stats.dropped_other_namespace += 1
                return []
            self.stats.received_messages += 1
            return [Text(msg.text)] if msg.is_text else [Frame(msg.client_frame())]
        except ProtocolError:
            self.stats.dropped_bad += 1
            return []
