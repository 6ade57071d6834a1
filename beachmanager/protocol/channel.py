"""Sans-I/O send and receive pipelines for one ``"beach"`` data channel.

:class:`Outbound` is the sending side.  It keeps one send counter per framed namespace (from
0).  For namespace ``"sync"`` it shares that counter between text and binary messages and
writes it in both the transport envelope and the framed header.  It returns the chunks to
hand to ``RTCDataChannel.send`` one by one, always as ``bytes``.

:class:`Inbound` is the receiving side: chunk -> :class:`~beachmanager.protocol.framing.Reassembler`
-> (for ``"sync"``) transport envelope -> :class:`Received`.  Its clock is injected (a callable
returning seconds).

Neither touches I/O.  Errors are the layers' own: ``FramingError``, ``EnvelopeError`` and
``WireError``, all ``ProtocolError``.  Upstream logs such errors and drops the chunk; callers
should do the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from beachmanager.protocol import envelope, framing, wire
from beachmanager.protocol.framing import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_TIMEOUT,
    FramingError,
    MacConfig,
    Reassembler,
)

__all__ = ["READY", "OFFER_READY", "KEEPALIVE", "SYNC", "Inbound", "Outbound", "Received"]

SYNC = "sync"
READY = "__ready__"  # the answerer's first message (text)
OFFER_READY = "__offer_ready__"  # the host's reply (text)
KEEPALIVE = "__keepalive__"  # legacy manager keepalive text; hosts ignore it
MAX_U64 = (1 << 64) - 1


class Outbound:
    """Turn messages into framed chunks, numbering them per framed namespace."""

    def __init__(self, *, chunk_size: int = DEFAULT_CHUNK_SIZE, mac: MacConfig | None = None):
        if chunk_size < framing.MIN_CHUNK_SIZE:
            raise FramingError(f"chunk_size must be at least {framing.MIN_CHUNK_SIZE}")
        self.chunk_size = chunk_size
        self.mac = mac
        self._next: dict[str, int] = {}

    def next_seq(self, namespace: str = SYNC) -> int:
        """The seq the next message in ``namespace`` will carry."""
        return self._next.get(namespace, 0)

    def send(self, kind: str, data: bytes | str) -> list[bytes]:
        """A ``"sync"`` message of ``kind`` ``"text"`` or ``"binary"``."""
        seq = self.next_seq(SYNC)
        inner = envelope.encode(kind, seq, data)  # validates kind and data
        kind = envelope.BINARY if inner[0] else envelope.TEXT
        chunks = framing.encode(SYNC, kind, seq, inner, self.chunk_size, mac=self.mac)
        self._advance(SYNC, seq)
        return chunks

    def text(self, text: str) -> list[bytes]:
        return self.send(envelope.TEXT, text)

    def binary(self, data: bytes) -> list[bytes]:
        return self.send(envelope.BINARY, data)

    def client_frame(self, frame: wire.ClientFrame) -> list[bytes]:
        """A wire client frame (what a manager sends to a host) as a binary message."""
        return self.binary(wire.encode_client(frame))

    def host_frame(self, frame: wire.HostFrame) -> list[bytes]:
        """A wire host frame (what a host sends) as a binary message."""
        return self.binary(wire.encode_host(frame))

    def namespaced(self, namespace: str, kind: str, payload: bytes) -> list[bytes]:
        """A raw framed message outside ``"sync"`` (e.g. legacy ``"controller"``)."""
        if namespace == SYNC:
            raise FramingError("use send() for the sync namespace")
        seq = self.next_seq(namespace)
        chunks = framing.encode(namespace, kind, seq, payload, self.chunk_size, mac=self.mac)
        self._advance(namespace, seq)
        return chunks

    def _advance(self, namespace: str, seq: int) -> None:
        if seq >= MAX_U64:
            raise FramingError(f"send counter exhausted in namespace {namespace!r}")
        self._next[namespace] = seq + 1


@dataclass(frozen=True, slots=True)
class Received:
    """One received message.

    For ``"sync"``, ``kind`` is the envelope type (``"text"``/``"binary"``) and ``seq`` the
    envelope seq; for other namespaces they are the framed kind and seq.
    """

    namespace: str
    kind: str
    seq: int
    data: bytes

    @property
    def is_text(self) -> bool:
        return self.namespace == SYNC and self.kind == envelope.TEXT

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def host_frame(self) -> wire.HostFrame:
        """Decode the data as a frame from a host (both extension layouts accepted)."""
        return wire.decode_from_host(self.data)

    def client_frame(self) -> wire.ClientFrame:
        """Decode the data as a frame from a client."""
        return wire.decode_client(self.data)


class Inbound:
    """Feed chunks in; get :class:`Received` messages out (``None`` while incomplete)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        mac: MacConfig | None = None,
    ) -> None:
        self.reassembler = Reassembler(
            clock,
            chunk_size=chunk_size,
            timeout=timeout,
            max_inflight=max_inflight,
            max_bytes=max_bytes,
            mac=mac,
        )

    def gc(self) -> None:
        """Drop expired partial messages now (``feed`` also does this on every chunk)."""
        self.reassembler.gc()

    def feed(self, chunk: bytes) -> Received | None:
        msg = self.reassembler.feed(chunk)
        if msg is None:
            return None
        if msg.namespace == SYNC:
            inner = envelope.decode(msg.payload)
            return Received(SYNC, inner.kind, inner.seq, inner.data)
        return Received(msg.namespace, msg.kind, msg.seq, msg.payload)
