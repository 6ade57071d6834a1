"""Beach wire protocol codec (protocol version 2), host and client frames, both directions.

A frame is one header byte ``(2 << 5) | kind``, so always ``0x40..0x5F``, then its fields:

* **varint**: unsigned LEB128.  The encoder writes the minimal form.  The decoder reads at
  most 10 bytes: a 10th byte with the continuation bit is an overflow, and bits above 64 are
  dropped (upstream behaviour).  Non-minimal forms are accepted.  A u32 field above 2**32-1 is
  an error.
* **bool**: one byte, 0 or 1.  **lane**: one byte, 0 Foreground, 1 Recent, 2 History.
* **string / bytes**: u32 varint length, then the bytes; strings are UTF-8.
* **Updates**: varint count, then per update a tag byte (0 Cell, 1 Rect, 2 Row, 3 RowSegment,
  4 Trim, 5 Style) and its fields (``frames`` lists them).
* Snapshot, Delta and HistoryBackfill end with a cursor-presence byte and a cursor when it is
  1; the decoder reads the byte only if bytes remain.  Grid's ``viewport_rows`` is likewise
  optional at the end.  Other trailing bytes are ignored, as upstream does.

Host kinds 0-10 and client kinds 0-4 and 31.  Kind 4 means SnapshotComplete from a host and
Extension from a client.  HEAD hosts send their extension frames with the client header
``0x44``.  :func:`decode_from_host` therefore reads ``0x44`` as an Extension when the three
length-prefixed fields consume the frame exactly and namespace and kind are UTF-8, and as
SnapshotComplete otherwise.

Decoding a canonical frame and encoding it again gives the same bytes.  Every failure, of a
decoder or of an encoder given out-of-range values, raises :class:`WireError`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from beachmanager.protocol._cellruns import decode_uniform
from beachmanager.protocol.errors import ProtocolError
from beachmanager.protocol.frames import *  # noqa: F403  (re-export the frame classes)
from beachmanager.protocol.frames import (
    PROTOCOL_VERSION,
    Cell,
    ClientFrame,
    Cursor,
    CursorFrame,
    Delta,
    Extension,
    Grid,
    Heartbeat,
    Hello,
    HistoryBackfill,
    HostFrame,
    Input,
    InputAck,
    Lane,
    LaneBudget,
    Rect,
    RequestBackfill,
    Resize,
    Row,
    RowSegment,
    Shutdown,
    Snapshot,
    SnapshotComplete,
    Style,
    SyncConfig,
    Trim,
    Unknown,
    Update,
    ViewportCommand,
)

MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1
_HEADER_BASE = PROTOCOL_VERSION << 5
_SMALL = [bytes((i,)) for i in range(256)]
_LANES = (Lane.FOREGROUND, Lane.RECENT, Lane.HISTORY)
_LANE_BYTE = {0: b"\x00", 1: b"\x01", 2: b"\x02"}
_BOOL_BYTE = {False: b"\x00", True: b"\x01"}
_BOOLS = (False, True)
_UNIFORM_MIN = 20  # shorter runs decode faster cell by cell


class WireError(ProtocolError):
    """A wire frame that cannot be decoded, or a frame whose values cannot be encoded."""


class _Eof(Exception):
    pass


# --- varints -------------------------------------------------------------------------------


def _uv(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & MAX_U64, pos
        shift += 7
        if shift > 63:
            raise WireError("varint overflow")


def _u32(buf: bytes, pos: int) -> tuple[int, int]:
    value, pos = _uv(buf, pos)
    if value > MAX_U32:
        raise WireError(f"u32 overflow: {value}")
    return value, pos


def _raw_varint_value(raw: bytes) -> int:
    return _uv(raw, 0)[0]


def varint(value: int) -> bytes:
    """Minimal LEB128 encoding of a u64."""
    if not isinstance(value, int):
        raise WireError(f"varint must be an int, got {value!r}")
    if value < 0x80:
        if value < 0:
            raise WireError(f"negative varint {value}")
        return _SMALL[value]
    if value > MAX_U64:
        raise WireError(f"u64 overflow: {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _v32(value: int) -> bytes:
    if value > MAX_U32:
        raise WireError(f"u32 overflow: {value}")
    return varint(value)


class _DecodeCache(dict):
    """raw varint bytes -> value, for packed cells (terminal text repeats a lot)."""

    def __missing__(self, raw: bytes) -> int:
        value = _raw_varint_value(raw)
        if len(self) >= 1 << 16:
            self.clear()
        self[raw] = value
        return value


class _EncodeCache(dict):
    """value -> minimal varint bytes, for packed cells."""

    def __missing__(self, value: int) -> bytes:
        if type(value) is not int:
            raise WireError(f"cell must be an int, got {value!r}")
        raw = varint(value)
        if len(self) >= 1 << 16:
            self.clear()
        self[value] = raw
        return raw


_DEC = _DecodeCache()
_ENC = _EncodeCache()
_ONE_VARINT = re.compile(rb"[\x80-\xff]{0,9}[\x00-\x7f]")


@lru_cache(maxsize=256)
def _varint_run(n: int) -> re.Pattern[bytes]:
    return re.compile(rb"(?:[\x80-\xff]{0,9}[\x00-\x7f]){%d}" % n)


def _cells(buf: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    n, pos = _u32(buf, pos)
    if n == 0:
        return (), pos
    if n > len(buf) - pos:
        raise _Eof
    if n < 4:
        out = []
        for _ in range(n):
            value, pos = _uv(buf, pos)
            out.append(value)
        return tuple(out), pos
    if n >= _UNIFORM_MIN:
        uniform = decode_uniform(buf, pos, n)
        if uniform is not None:
            return uniform
    match = _varint_run(n).match(buf, pos)
    if match is None:  # truncated or overlong: let the plain reader raise the right error
        for _ in range(n):
            _, pos = _uv(buf, pos)
        raise WireError("malformed cell run")  # pragma: no cover - _uv raises first
    end = match.end()
    return tuple(map(_DEC.__getitem__, _ONE_VARINT.findall(buf, pos, end))), end


def _put_cells(out: list[bytes], cells: tuple[int, ...]) -> None:
    out.append(_v32(len(cells)))
    out.append(b"".join(map(_ENC.__getitem__, cells)))


# --- decoding ------------------------------------------------------------------------------


def _bool(buf: bytes, pos: int) -> bool:
    b = buf[pos]
    if b > 1:
        raise WireError(f"invalid bool byte {b}")
    return _BOOLS[b]


def _lane(buf: bytes, pos: int) -> Lane:
    b = buf[pos]
    if b > 2:
        raise WireError(f"invalid lane byte {b}")
    return _LANES[b]


def _blob(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _u32(buf, pos)
    end = pos + n
    if end > len(buf):
        raise _Eof
    return buf[pos:end], end


def _text(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _blob(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError:
        raise WireError("string is not UTF-8") from None


def _cursor(buf: bytes, pos: int) -> tuple[CursorFrame, int]:
    row, pos = _u32(buf, pos)
    col, pos = _u32(buf, pos)
    seq, pos = _uv(buf, pos)
    visible = _bool(buf, pos)
    blink = _bool(buf, pos + 1)
    return CursorFrame(row, col, seq, visible, blink), pos + 2


def _optional_cursor(buf: bytes, pos: int) -> CursorFrame | None:
    if pos >= len(buf) or not _bool(buf, pos):
        return None
    return _cursor(buf, pos + 1)[0]


def _updates(buf: bytes, pos: int) -> tuple[tuple[Update, ...], int]:
    count, pos = _u32(buf, pos)
    if count > len(buf) - pos:
        raise _Eof
    out: list[Update] = []
    append = out.append
    for _ in range(count):
        tag = buf[pos]
        pos += 1
        if tag == 2:
            row, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            cells, pos = _cells(buf, pos)
            append(Row(row, seq, cells))
        elif tag == 0:
            row, pos = _u32(buf, pos)
            col, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            cell, pos = _uv(buf, pos)
            append(Cell(row, col, seq, cell))
        elif tag == 3:
            row, pos = _u32(buf, pos)
            start_col, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            cells, pos = _cells(buf, pos)
            append(RowSegment(row, start_col, seq, cells))
        elif tag == 1:
            row_start, pos = _u32(buf, pos)
            row_end, pos = _u32(buf, pos)
            col_start, pos = _u32(buf, pos)
            col_end, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            cell, pos = _uv(buf, pos)
            append(Rect(row_start, row_end, col_start, col_end, seq, cell))
        elif tag == 4:
            start, pos = _u32(buf, pos)
            n, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            append(Trim(start, n, seq))
        elif tag == 5:
            style_id, pos = _u32(buf, pos)
            seq, pos = _uv(buf, pos)
            fg, pos = _u32(buf, pos)
            bg, pos = _u32(buf, pos)
            append(Style(style_id, seq, fg, bg, buf[pos]))
            pos += 1
        else:
            raise WireError(f"unknown update tag {tag}")
    return tuple(out), pos


def _sync_config(buf: bytes, pos: int) -> tuple[SyncConfig, int]:
    count, pos = _u32(buf, pos)
    if count > len(buf) - pos:
        raise _Eof
    budgets = []
    for _ in range(count):
        lane = _lane(buf, pos)
        max_updates, pos = _u32(buf, pos + 1)
        budgets.append(LaneBudget(lane, max_updates))
    delta_budget, pos = _u32(buf, pos)
    heartbeat_ms, pos = _uv(buf, pos)
    initial_lines, pos = _u32(buf, pos)
    return SyncConfig(tuple(budgets), delta_budget, heartbeat_ms, initial_lines), pos


def _header(buf: bytes) -> int:
    b = buf[0]
    if b >> 5 != PROTOCOL_VERSION:
        raise WireError(f"invalid protocol version {b >> 5} in header 0x{b:02x}")
    return b & 0x1F


def _decode_host(buf: bytes) -> HostFrame:
    kind = _header(buf)
    pos = 1
    if kind == 5:
        sub, pos = _uv(buf, pos)
        watermark, pos = _uv(buf, pos)
        has_more = _bool(buf, pos)
        updates, pos = _updates(buf, pos + 1)
        return Delta(sub, watermark, has_more, updates, _optional_cursor(buf, pos))
    if kind == 3:
        sub, pos = _uv(buf, pos)
        lane = _lane(buf, pos)
        watermark, pos = _uv(buf, pos + 1)
        has_more = _bool(buf, pos)
        updates, pos = _updates(buf, pos + 1)
        return Snapshot(sub, lane, watermark, has_more, updates, _optional_cursor(buf, pos))
    if kind == 10:
        namespace, pos = _text(buf, pos)
        ext_kind, pos = _text(buf, pos)
        payload, pos = _blob(buf, pos)
        return Extension(namespace, ext_kind, payload)
    if kind == 0:
        seq, pos = _uv(buf, pos)
        return Heartbeat(seq, _uv(buf, pos)[0])
    if kind == 1:
        sub, pos = _uv(buf, pos)
        max_seq, pos = _uv(buf, pos)
        config, pos = _sync_config(buf, pos)
        return Hello(sub, max_seq, config, _u32(buf, pos)[0])
    if kind == 2:
        cols, pos = _u32(buf, pos)
        history_rows, pos = _u32(buf, pos)
        base_row, pos = _uv(buf, pos)
        viewport = _u32(buf, pos)[0] if pos < len(buf) else None
        return Grid(cols, history_rows, base_row, viewport)
    if kind == 4:
        sub, pos = _uv(buf, pos)
        return SnapshotComplete(sub, _lane(buf, pos))
    if kind == 6:
        return InputAck(_uv(buf, pos)[0])
    if kind == 7:
        return Shutdown()
    if kind == 8:
        sub, pos = _uv(buf, pos)
        request_id, pos = _uv(buf, pos)
        start_row, pos = _uv(buf, pos)
        count, pos = _u32(buf, pos)
        more = _bool(buf, pos)
        updates, pos = _updates(buf, pos + 1)
        cursor = _optional_cursor(buf, pos)
        return HistoryBackfill(sub, request_id, start_row, count, more, updates, cursor)
    if kind == 9:
        sub, pos = _uv(buf, pos)
        return Cursor(sub, _cursor(buf, pos)[0])
    raise WireError(f"unknown host frame kind {kind}")


def _decode_client(buf: bytes) -> ClientFrame:
    kind = _header(buf)
    pos = 1
    if kind == 4:
        namespace, pos = _text(buf, pos)
        ext_kind, pos = _text(buf, pos)
        payload, pos = _blob(buf, pos)
        return Extension(namespace, ext_kind, payload)
    if kind == 0:
        seq, pos = _uv(buf, pos)
        data, pos = _blob(buf, pos)
        return Input(seq, data)
    if kind == 1:
        cols, pos = _u32(buf, pos)
        rows, pos = _u32(buf, pos)
        return Resize(cols & 0xFFFF, rows & 0xFFFF)
    if kind == 2:
        sub, pos = _uv(buf, pos)
        request_id, pos = _uv(buf, pos)
        start_row, pos = _uv(buf, pos)
        return RequestBackfill(sub, request_id, start_row, _u32(buf, pos)[0])
    if kind == 3:
        command = buf[pos]
        if command != 0:
            raise WireError(f"unknown viewport command {command}")
        return ViewportCommand(command)
    if kind == 31:
        return Unknown()
    raise WireError(f"unknown client frame kind {kind}")


def _exact_extension(buf: bytes) -> Extension | None:
    """The 0x44 frame as an Extension if its three fields consume it exactly, else None."""
    try:
        namespace, pos = _text(buf, 1)
        kind, pos = _text(buf, pos)
        payload, pos = _blob(buf, pos)
    except (WireError, _Eof, IndexError):
        return None
    return Extension(namespace, kind, payload) if pos == len(buf) else None


def _as_bytes(data: bytes) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise WireError(f"frame must be bytes, got {type(data).__name__}")


def decode_host(data: bytes) -> HostFrame:
    """Decode a host -> client frame (header 0x44 is SnapshotComplete here)."""
    buf = _as_bytes(data)
    try:
        return _decode_host(buf)
    except (IndexError, _Eof):
        raise WireError("unexpected end of frame") from None


def decode_client(data: bytes) -> ClientFrame:
    """Decode a client -> host frame (header 0x44 is Extension here)."""
    buf = _as_bytes(data)
    try:
        return _decode_client(buf)
    except (IndexError, _Eof):
        raise WireError("unexpected end of frame") from None


def decode_from_host(data: bytes) -> HostFrame:
    """Decode a frame received from a host, accepting extensions in either layout (rule 4)."""
    buf = _as_bytes(data)
    if buf[:1] == b"\x44":
        ext = _exact_extension(buf)
        if ext is not None:
            return ext
    return decode_host(buf)


# --- encoding ------------------------------------------------------------------------------


def _put_cursor(out: list[bytes], c: CursorFrame) -> None:
    out += (_v32(c.row), _v32(c.col), varint(c.seq), _BOOL_BYTE[c.visible], _BOOL_BYTE[c.blink])


def _put_updates(out: list[bytes], updates: tuple[Update, ...]) -> None:
    out.append(_v32(len(updates)))
    for u in updates:
        if type(u) is Row:
            out += (b"\x02", _v32(u.row), varint(u.seq))
            _put_cells(out, u.cells)
        elif type(u) is Cell:
            out += (b"\x00", _v32(u.row), _v32(u.col), varint(u.seq), varint(u.cell))
        elif type(u) is RowSegment:
            out += (b"\x03", _v32(u.row), _v32(u.start_col), varint(u.seq))
            _put_cells(out, u.cells)
        elif type(u) is Rect:
            out += (b"\x01", _v32(u.row_start), _v32(u.row_end), _v32(u.col_start))
            out += (_v32(u.col_end), varint(u.seq), varint(u.cell))
        elif type(u) is Trim:
            out += (b"\x04", _v32(u.start), _v32(u.count), varint(u.seq))
        elif type(u) is Style:
            out += (b"\x05", _v32(u.id), varint(u.seq), _v32(u.fg), _v32(u.bg), bytes((u.attrs,)))
        else:
            raise WireError(f"not an update: {u!r}")


def _put_tail_cursor(out: list[bytes], cursor: CursorFrame | None) -> None:
    if cursor is None:
        out.append(b"\x00")
    else:
        out.append(b"\x01")
        _put_cursor(out, cursor)


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _v32(len(raw)) + raw


def _put_extension(out: list[bytes], f: Extension) -> None:
    out += (_str(f.namespace), _str(f.kind), _v32(len(f.payload)), bytes(f.payload))


def _head(kind: int) -> bytes:
    return _SMALL[_HEADER_BASE | kind]


def _encode_host(f: HostFrame) -> list[bytes]:
    if type(f) is Extension:
        out = [_head(10)]
        _put_extension(out, f)
        return out
    kind = _HOST_KINDS.get(type(f))
    if kind is None:
        raise WireError(f"not a host frame: {f!r}")
    out = [_head(kind)]
    if type(f) is Delta:
        out += (varint(f.subscription), varint(f.watermark), _BOOL_BYTE[f.has_more])
        _put_updates(out, f.updates)
        _put_tail_cursor(out, f.cursor)
    elif type(f) is Snapshot:
        out += (varint(f.subscription), _LANE_BYTE[f.lane], varint(f.watermark))
        out.append(_BOOL_BYTE[f.has_more])
        _put_updates(out, f.updates)
        _put_tail_cursor(out, f.cursor)
    elif type(f) is Heartbeat:
        out += (varint(f.seq), varint(f.timestamp_ms))
    elif type(f) is Hello:
        out += (varint(f.subscription), varint(f.max_seq))
        cfg = f.config
        out.append(_v32(len(cfg.snapshot_budgets)))
        for budget in cfg.snapshot_budgets:
            out += (_LANE_BYTE[budget.lane], _v32(budget.max_updates))
        out += (_v32(cfg.delta_budget), varint(cfg.heartbeat_ms), _v32(cfg.initial_snapshot_lines))
        out.append(_v32(f.features))
    elif type(f) is Grid:
        out += (_v32(f.cols), _v32(f.history_rows), varint(f.base_row))
        if f.viewport_rows is not None:
            out.append(_v32(f.viewport_rows))
    elif type(f) is SnapshotComplete:
        out += (varint(f.subscription), _LANE_BYTE[f.lane])
    elif type(f) is InputAck:
        out.append(varint(f.seq))
    elif type(f) is HistoryBackfill:
        out += (varint(f.subscription), varint(f.request_id), varint(f.start_row))
        out += (_v32(f.count), _BOOL_BYTE[f.more])
        _put_updates(out, f.updates)
        _put_tail_cursor(out, f.cursor)
    elif type(f) is Cursor:
        out.append(varint(f.subscription))
        _put_cursor(out, f.cursor)
    return out  # Shutdown: header only


def _encode_client(f: ClientFrame) -> list[bytes]:
    if type(f) is Extension:
        out = [_head(4)]
        _put_extension(out, f)
    elif type(f) is Input:
        out = [_head(0), varint(f.seq), _v32(len(f.data)), bytes(f.data)]
    elif type(f) is Resize:
        if not (0 <= f.cols <= 0xFFFF and 0 <= f.rows <= 0xFFFF):
            raise WireError(f"resize dimensions must be u16: {f.cols}x{f.rows}")
        out = [_head(1), varint(f.cols), varint(f.rows)]
    elif type(f) is RequestBackfill:
        out = [_head(2), varint(f.subscription), varint(f.request_id), varint(f.start_row)]
        out.append(_v32(f.count))
    elif type(f) is ViewportCommand:
        if f.command != 0:
            raise WireError(f"unknown viewport command {f.command!r}")
        out = [_head(3), b"\x00"]
    elif type(f) is Unknown:
        out = [_head(31)]
    else:
        raise WireError(f"not a client frame: {f!r}")
    return out


_HOST_KINDS: dict[type, int] = {
    cls: cls.KIND
    for cls in (Heartbeat, Hello, Grid, Snapshot, SnapshotComplete, Delta, InputAck, Shutdown)
    + (HistoryBackfill, Cursor)
}
_BAD_VALUES = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)


def encode_host(frame: HostFrame) -> bytes:
    """Encode a host -> client frame (Extension with header 0x4A)."""
    try:
        return b"".join(_encode_host(frame))
    except WireError:
        raise
    except _BAD_VALUES as exc:
        raise WireError(f"cannot encode {type(frame).__name__}: {exc!r}") from None


def encode_client(frame: ClientFrame) -> bytes:
    """Encode a client -> host frame (Extension with header 0x44)."""
    try:
        return b"".join(_encode_client(frame))
    except WireError:
        raise
    except _BAD_VALUES as exc:
        raise WireError(f"cannot encode {type(frame).__name__}: {exc!r}") from None
