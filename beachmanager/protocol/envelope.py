"""The Beach transport envelope (``TransportMessage``) carried in framed namespace ``"sync"``.

Layout, big-endian::

    type u8 (0 text, 1 binary) | seq u64 | len u32 | data[len]

* Text data must be UTF-8.
* Bytes after ``data`` are ignored, as upstream does.
* The sender keeps one counter per framed namespace, starting at 0 and shared by text and
  binary.  The same value is written here and in the framed header, with framed kind ``"text"``
  or ``"binary"`` to match ``type``.  :class:`beachmanager.protocol.channel.Outbound` does that
  bookkeeping.

Every failure raises :class:`EnvelopeError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from beachmanager.protocol.errors import ProtocolError

__all__ = ["BINARY", "HEADER_LEN", "TEXT", "EnvelopeError", "TransportMessage", "decode", "encode"]

TEXT = "text"
BINARY = "binary"
HEADER_LEN = 13
_HEADER = struct.Struct(">BQI")
_TYPE_CODES = {TEXT: 0, BINARY: 1, 0: 0, 1: 1}
_KINDS = (TEXT, BINARY)
MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1


class EnvelopeError(ProtocolError):
    """A transport envelope that cannot be encoded or decoded."""


@dataclass(frozen=True, slots=True)
class TransportMessage:
    """``kind`` is ``"text"`` or ``"binary"``; ``data`` is always the raw bytes."""

    kind: str
    seq: int
    data: bytes

    @property
    def is_text(self) -> bool:
        return self.kind == TEXT

    @property
    def text(self) -> str:
        """The data as a string (UTF-8; checked at decode time for text messages)."""
        return self.data.decode("utf-8", "replace")


def encode(kind: str, seq: int, data: bytes | str) -> bytes:
    """Encode one envelope.  ``kind`` is ``"text"`` or ``"binary"``; ``str`` data is UTF-8."""
    code = _TYPE_CODES.get(kind) if isinstance(kind, str | int) else None
    if code is None:
        raise EnvelopeError(f"kind must be 'text' or 'binary', got {kind!r}")
    if not isinstance(seq, int) or not 0 <= seq <= MAX_U64:
        raise EnvelopeError(f"seq must be a u64, got {seq!r}")
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EnvelopeError("text is not encodable as UTF-8") from exc
    elif isinstance(data, bytearray | memoryview):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise EnvelopeError("data must be bytes or str")
    if code == 0:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError("text data is not UTF-8") from exc
    if len(data) > MAX_U32:
        raise EnvelopeError("data too large")
    return _HEADER.pack(code, seq, len(data)) + data


def decode(buf: bytes) -> TransportMessage:
    """Decode one envelope; raises :class:`EnvelopeError` for anything upstream would drop."""
    if not isinstance(buf, bytes):
        if not isinstance(buf, bytearray | memoryview):
            raise EnvelopeError("envelope must be bytes")
        buf = bytes(buf)
    if len(buf) < HEADER_LEN:
        raise EnvelopeError(f"envelope shorter than {HEADER_LEN} bytes")
    code, seq, length = _HEADER.unpack_from(buf)
    if code > 1:
        raise EnvelopeError(f"unknown payload type {code}")
    if len(buf) < HEADER_LEN + length:
        raise EnvelopeError(f"envelope declares {length} bytes, has {len(buf) - HEADER_LEN}")
    data = buf[HEADER_LEN : HEADER_LEN + length]
    if code == 0:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError("text payload is not UTF-8") from exc
    return TransportMessage(_KINDS[code], seq, data)
