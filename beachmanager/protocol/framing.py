"""Beach data-channel framing, version ``0xA1``: chunking, CRC-32C, optional HMAC, reassembly.

One data-channel message is one chunk.  All integers are big-endian::

    0xA1 | flags | [mac_key_id] | ns_len | kind_len | namespace | kind
         | seq u64 | total_len u32 | chunk_index u16 | chunk_count u16 | crc32c u32
         | chunk payload | [32-byte HMAC-SHA256 tag]

* ``flags`` bit 0 means a MAC is present: the key-id byte follows the flags and the tag ends the
  chunk.  Other flag bits are ignored.
* ``ns_len`` and ``kind_len`` are 1..255; namespace and kind are UTF-8.
* ``total_len`` is the length of the whole message and ``crc32c`` (Castagnoli) covers the whole
  message; both repeat in every chunk.  ``chunk_index < chunk_count``, ``chunk_count >= 1``.
* An empty message is one chunk with ``total_len`` 0.
* The tag is HMAC-SHA256 over ``0xA1 | ns_len | ns | kind_len | kind | seq | total_len | payload``.

:func:`encode` splits a message into chunks of at most ``chunk_size`` payload bytes (default
14336, minimum 512).  :class:`Reassembler` puts chunks back together in any order.  It follows
the upstream order of checks: it parses the chunk, drops a ``(namespace, kind, seq)`` delivered
within the last 256 messages and ``timeout`` seconds, then checks length, CRC and MAC on
completion.  A partial message expires after ``timeout`` (5 s).  At most ``max_inflight`` (512)
partial messages and ``max_bytes`` (8 MiB) of partial bytes are kept; the oldest is evicted.
Memory grows only with bytes that have arrived, never with a declared length or chunk count.

Every failure raises :class:`FramingError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import google_crc32c

from beachmanager.protocol.errors import ProtocolError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_INFLIGHT",
    "DEFAULT_TIMEOUT",
    "FLAG_MAC",
    "MAC_TAG_LEN",
    "MIN_CHUNK_SIZE",
    "RECENT_HISTORY",
    "VERSION",
    "Chunk",
    "FramedMessage",
    "FramingError",
    "MacConfig",
    "Message",
    "Reassembler",
    "crc32c",
    "encode",
    "parse_chunk",
]

VERSION = 0xA1
FLAG_MAC = 0x01
MAC_TAG_LEN = 32
DEFAULT_CHUNK_SIZE = 14 * 1024
MIN_CHUNK_SIZE = 512
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_INFLIGHT = 512
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MIN_MAX_BYTES = 1024
RECENT_HISTORY = 256
MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1
MAX_CHUNKS = 0xFFFF

_TAIL = struct.Struct(">QIHHI")  # seq, total_len, chunk_index, chunk_count, crc32c
_MAC_PREFIX_TAIL = struct.Struct(">QI")  # seq, total_len inside the MAC input
_VERSION_BYTE = bytes([VERSION])


class FramingError(ProtocolError):
    """A chunk or message that cannot be framed, parsed, reassembled or verified."""


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as used in every chunk header."""
    return google_crc32c.value(data)


@dataclass(frozen=True)
class MacConfig:
    """HMAC-SHA256 keys by one-byte id, and the id used when sending (``None``: send no MAC).

    Receiving verifies a chunk that carries a MAC with the key its id names; a chunk without a
    MAC is accepted even when keys are configured (upstream behaviour).
    """

    keys: Mapping[int, bytes] = field(default_factory=dict)
    active_key_id: int | None = None

    def __post_init__(self) -> None:
        keys = {}
        for key_id, key in dict(self.keys).items():
            if not isinstance(key_id, int) or not 0 <= key_id <= 255:
                raise FramingError(f"MAC key id must be 0..255, got {key_id!r}")
            if not isinstance(key, bytes | bytearray | memoryview):
                raise FramingError(f"MAC key {key_id} must be bytes")
            keys[key_id] = bytes(key)
        if self.active_key_id is not None and self.active_key_id not in keys:
            raise FramingError(f"active MAC key id {self.active_key_id} has no key")
        object.__setattr__(self, "keys", keys)

    @classmethod
    def single(cls, key: bytes, key_id: int = 1) -> MacConfig:
        """One key, used for sending and receiving."""
        return cls({key_id: key}, key_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MacConfig | None:
        """Read the upstream variables; ``None`` when no MAC is configured.

        ``BEACH_FRAMED_MAC_KEYS="id:hex,..."`` with ``BEACH_FRAMED_MAC_ACTIVE_ID`` (default: the
        first key), else ``BEACH_FRAMED_MAC_KEY=hex`` with ``BEACH_FRAMED_MAC_KEY_ID`` (default
        1).  Entries that do not parse are skipped, as upstream does.
        """
        listed = environ.get("BEACH_FRAMED_MAC_KEYS")
        if listed is not None:
            keys: dict[int, bytes] = {}
            for entry in (part.strip() for part in listed.split(",")):
                id_text, sep, hex_text = entry.partition(":")
                key_id = _parse_u8(id_text)
                try:
                    key = bytes.fromhex(hex_text.strip())
                except ValueError:
                    continue
                if sep and key_id is not None:
                    keys[key_id] = key
            if not keys:
                return None
            active = _parse_u8(environ.get("BEACH_FRAMED_MAC_ACTIVE_ID", ""))
            if active is None:
                active = next(iter(keys))
            return cls(keys, active if active in keys else None)
        single = environ.get("BEACH_FRAMED_MAC_KEY")
        if single is None:
            return None
        try:
            key = bytes.fromhex(single.strip())
        except ValueError:
            return None
        key_id = _parse_u8(environ.get("BEACH_FRAMED_MAC_KEY_ID", ""))
        return cls.single(key, 1 if key_id is None else key_id)

    def tag(self, key_id: int, namespace: bytes, kind: bytes, seq: int, payload: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise FramingError(f"MAC key {key_id} unknown")
        mac = hmac.new(key, digestmod=hashlib.sha256)
        mac.update(_VERSION_BYTE)
        mac.update(bytes([len(namespace)]))
        mac.update(namespace)
        mac.update(bytes([len(kind)]))
        mac.update(kind)
        mac.update(_MAC_PREFIX_TAIL.pack(seq, len(payload)))
        mac.update(payload)
        return mac.digest()


def _parse_u8(text: str) -> int | None:
    text = text.strip()
    if text.isdigit() and int(text) <= 255:
        return int(text)
    return None


def _label(value: str | bytes, what: str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not 1 <= len(raw) <= 255:
        raise FramingError(f"{what} must be 1..255 UTF-8 bytes, got {len(raw)}")
    return raw


def encode(
    namespace: str,
    kind: str,
    seq: int,
    payload: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    mac: MacConfig | None = None,
) -> list[bytes]:
    """Frame one message into chunks; each chunk is one data-channel message.

    A MAC is added when ``mac`` has an active key.  Raises :class:`FramingError` for a namespace
    or kind outside 1..255 bytes, a seq outside u64, ``chunk_size`` below 512, a payload over
    4 GiB - 1 or one that needs more than 65535 chunks.
    """
    ns = _label(namespace, "namespace")
    kd = _label(kind, "kind")
    if not isinstance(seq, int) or not 0 <= seq <= MAX_U64:
        raise FramingError(f"seq must be a u64, got {seq!r}")
    if not isinstance(chunk_size, int) or chunk_size < MIN_CHUNK_SIZE:
        raise FramingError(f"chunk_size must be at least {MIN_CHUNK_SIZE}, got {chunk_size!r}")
    if not isinstance(payload, bytes):
        if not isinstance(payload, bytearray | memoryview):
            raise FramingError("payload must be bytes")
        payload = bytes(payload)
    total = len(payload)
    if total > MAX_U32:
        raise FramingError(f"payload too large: {total} bytes")
    count = max(1, -(-total // chunk_size))
    if count > MAX_CHUNKS:
        raise FramingError(f"payload needs {count} chunks; at most {MAX_CHUNKS} allowed")
    tag = b""
    if mac is not None and mac.active_key_id is not None:
        key_id = mac.active_key_id
        head = bytes((VERSION, FLAG_MAC, key_id, len(ns), len(kd))) + ns + kd
        tag = mac.tag(key_id, ns, kd, seq, payload)
    else:
        head = bytes((VERSION, 0, len(ns), len(kd))) + ns + kd
    crc = google_crc32c.value(payload)
    pack = _TAIL.pack
    if count == 1:
        return [b"".join((head, pack(seq, total, 0, 1, crc), payload, tag))]
    return [
        b"".join((head, pack(seq, total, i, count, crc), payload[off : off + chunk_size], tag))
        for i, off in enumerate(range(0, total, chunk_size))
    ]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One parsed chunk (see the module docstring for the layout)."""

    namespace: str
    kind: str
    seq: int
    total_len: int
    chunk_index: int
    chunk_count: int
    crc32c: int
    payload: bytes
    mac_key_id: int | None = None
    mac_tag: bytes | None = None


@dataclass(frozen=True, slots=True)
class FramedMessage:
    """A reassembled, verified message."""

    namespace: str
    kind: str
    seq: int
    payload: bytes

    @property
    def total_len(self) -> int:
        return len(self.payload)


Message = FramedMessage


def parse_chunk(data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Chunk:
    """Parse one chunk's header; reject a payload over ``chunk_size`` or over ``total_len``."""
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise FramingError("chunk must be bytes")
        data = bytes(data)
    size = len(data)
    if size < 2:
        raise FramingError("frame too short")
    if data[0] != VERSION:
        raise FramingError(f"unsupported frame version 0x{data[0]:02x}")
    has_mac = data[1] & FLAG_MAC
    pos = 3 if has_mac else 2
    if size < pos + 2:
        raise FramingError("frame too short")
    ns_len = data[pos]
    kind_len = data[pos + 1]
    if ns_len == 0:
        raise FramingError("namespace length is zero")
    if kind_len == 0:
        raise FramingError("kind length is zero")
    pos += 2
    if size < pos + ns_len + kind_len + _TAIL.size:
        raise FramingError("frame too short")
    try:
        namespace = data[pos : pos + ns_len].decode("utf-8")
        pos += ns_len
        kind = data[pos : pos + kind_len].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FramingError("namespace or kind is not UTF-8") from exc
    pos += kind_len
    seq, total_len, index, count, crc = _TAIL.unpack_from(data, pos)
    pos += _TAIL.size
    if count == 0 or index >= count:
        raise FramingError(f"invalid chunk index/count {index}/{count}")
    mac_len = MAC_TAG_LEN if has_mac else 0
    if size < pos + mac_len:
        raise FramingError("frame missing payload")
    payload_len = size - pos - mac_len
    if payload_len > total_len:
        raise FramingError("chunk payload exceeds total length")
    if payload_len > chunk_size:
        raise FramingError(f"chunk payload {payload_len} exceeds chunk size {chunk_size}")
    payload = data[pos : pos + payload_len]
    if has_mac:
        return Chunk(
            namespace, kind, seq, total_len, index, count, crc, payload, data[2], data[size - 32 :]
        )
    return Chunk(namespace, kind, seq, total_len, index, count, crc, payload)


class _Assembly:
    __slots__ = ("started", "total_len", "count", "crc", "key_id", "tag", "parts", "size")

    def __init__(self, chunk: Chunk, started: float) -> None:
        self.started = started
        self.total_len = chunk.total_len
        self.count = chunk.chunk_count
        self.crc = chunk.crc32c
        self.key_id = chunk.mac_key_id
        self.tag = chunk.mac_tag
        self.parts: dict[int, bytes] = {}  # grows only as chunks arrive
        self.size = 0


_Key = tuple[str, str, int]


class Reassembler:
    """Reassemble chunks into messages; sans-I/O, time from the injected ``clock`` (seconds).

    ``feed(chunk)`` returns a :class:`FramedMessage` when a message completes and ``None``
    otherwise (more chunks needed, or a duplicate dropped).  It raises :class:`FramingError`
    for a chunk that does not parse, an inconsistent chunk (which also discards its partial
    message) or a complete message that fails the length, CRC or MAC check.

    ``clock`` is required: services pass the reactor's ``seconds``, tests a fake clock.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        mac: MacConfig | None = None,
        recent_history: int = RECENT_HISTORY,
    ) -> None:
        if chunk_size < MIN_CHUNK_SIZE:
            raise FramingError(f"chunk_size must be at least {MIN_CHUNK_SIZE}")
        if max_inflight < 1 or max_bytes < MIN_MAX_BYTES or recent_history < 0:
            raise FramingError("max_inflight >= 1, max_bytes >= 1024, recent_history >= 0")
        self._clock = clock
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.max_bytes = max_bytes
        self.mac = mac
        self._recent_cap = recent_history
        # Insertion order is start order, so the first entry is always the oldest.
        self._assemblies: dict[_Key, _Assembly] = {}
        self._inflight_bytes = 0
        self._recent: deque[tuple[_Key, float]] = deque()
        self._recent_count: dict[_Key, int] = {}
        self.duplicates = 0  # messages dropped as already delivered
        self.expired = 0  # partial messages dropped by timeout
        self.evicted = 0  # partial messages dropped by the count/bytes caps

    @property
    def inflight_messages(self) -> int:
        return len(self._assemblies)

    @property
    def inflight_bytes(self) -> int:
        return self._inflight_bytes

    def feed(self, data: bytes) -> FramedMessage | None:
        now = self._clock()
        self.gc(now)
        chunk = parse_chunk(data, self.chunk_size)
        key = (chunk.namespace, chunk.kind, chunk.seq)
        if key in self._recent_count:
            self.duplicates += 1
            return None
        if chunk.chunk_count == 1:
            self._verify(
                chunk.namespace,
                chunk.kind,
                chunk.seq,
                chunk.total_len,
                chunk.crc32c,
                chunk.mac_key_id,
                chunk.mac_tag,
                chunk.payload,
            )
            self._remember(key, now)
            return FramedMessage(chunk.namespace, chunk.kind, chunk.seq, chunk.payload)
        assembly = self._assemblies.get(key)
        if assembly is None:
            assembly = self._assemblies[key] = _Assembly(chunk, now)
        elif assembly.count != chunk.chunk_count or assembly.total_len != chunk.total_len:
            self._drop(key)
            raise FramingError("chunk count or total length changed within a message")
        if chunk.chunk_index not in assembly.parts:
            n = len(chunk.payload)
            assembly.parts[chunk.chunk_index] = chunk.payload
            assembly.size += n
            self._inflight_bytes += n
            if assembly.size > assembly.total_len:
                self._drop(key)
                raise FramingError("received bytes exceed total length")
        if len(assembly.parts) < assembly.count:
            self._evict_over_budget()
            return None
        self._drop(key)
        parts = assembly.parts
        payload = b"".join([parts[i] for i in range(assembly.count)])
        self._verify(
            chunk.namespace,
            chunk.kind,
            chunk.seq,
            assembly.total_len,
            assembly.crc,
            assembly.key_id,
            assembly.tag,
            payload,
        )
        self._remember(key, now)
        return FramedMessage(chunk.namespace, chunk.kind, chunk.seq, payload)

    def gc(self, now: float | None = None) -> None:
        """Drop partial messages and dedup entries older than ``timeout``."""
        if now is None:
            now = self._clock()
        limit = now - self.timeout
        assemblies = self._assemblies
        while assemblies:
            key, assembly = next(iter(assemblies.items()))
            if assembly.started >= limit:
                break
            self._drop(key)
            self.expired += 1
        recent = self._recent
        while recent and recent[0][1] < limit:
            self._forget()

    def _drop(self, key: _Key) -> None:
        assembly = self._assemblies.pop(key)
        self._inflight_bytes -= assembly.size

    def _evict_over_budget(self) -> None:
        assemblies = self._assemblies
        while assemblies and (
            len(assemblies) > self.max_inflight or self._inflight_bytes > self.max_bytes
        ):
            self._drop(next(iter(assemblies)))
            self.evicted += 1

    def _remember(self, key: _Key, now: float) -> None:
        if self._recent_cap == 0:
            return
        self._recent.append((key, now))
        self._recent_count[key] = self._recent_count.get(key, 0) + 1
        if len(self._recent) > self._recent_cap:
            self._forget()

    def _forget(self) -> None:
        key, _ = self._recent.popleft()
        left = self._recent_count[key] - 1
        if left:
            self._recent_count[key] = left
        else:
            del self._recent_count[key]

    def _verify(
        self,
        namespace: str,
        kind: str,
        seq: int,
        total_len: int,
        crc: int,
        key_id: int | None,
        tag: bytes | None,
        payload: bytes,
    ) -> None:
        if len(payload) != total_len:
            raise FramingError(f"length mismatch: {len(payload)} != {total_len}")
        if google_crc32c.value(payload) != crc:
            raise FramingError("crc mismatch")
        if key_id is None:
            return
        if self.mac is None:
            raise FramingError("mac present but no MAC keys configured")
        if key_id not in self.mac.keys:
            raise FramingError(f"mac key {key_id} unknown")
        expected = self.mac.tag(
            key_id, namespace.encode("utf-8"), kind.encode("utf-8"), seq, payload
        )
        if not hmac.compare_digest(expected, tag or b""):
            raise FramingError("mac verification failed")
