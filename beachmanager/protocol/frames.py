"""Beach wire frames and their parts, as frozen dataclasses (the codec is ``wire``).

Field names follow the upstream Rust structs in snake_case.  Integer widths are noted per
field (``u32``/``u64``); the encoder checks them.  Sequences are stored as tuples; a list
given to a constructor is converted, so frames compare equal however they were built.  Byte
fields (``payload``, ``data``) are ``bytes``.

Host frames (host -> client): :class:`Heartbeat` (0), :class:`Hello` (1), :class:`Grid` (2),
:class:`Snapshot` (3), :class:`SnapshotComplete` (4), :class:`Delta` (5), :class:`InputAck` (6),
:class:`Shutdown` (7), :class:`HistoryBackfill` (8), :class:`Cursor` (9), :class:`Extension` (10).

Client frames (client -> host): :class:`Input` (0), :class:`Resize` (1),
:class:`RequestBackfill` (2), :class:`ViewportCommand` (3), :class:`Extension` (4),
:class:`Unknown` (31).

:class:`Extension` is one class for both directions; ``wire.encode_host`` writes it with header
``0x4A`` and ``wire.encode_client`` with ``0x44``.

Updates inside Snapshot/Delta/HistoryBackfill: :class:`Cell`, :class:`Rect` (half-open row and
column ranges), :class:`Row`, :class:`RowSegment`, :class:`Trim`, :class:`Style`.  Cells are
packed u64 values (see ``beachmanager.protocol.cells``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "DEFAULT_SNAPSHOT_BUDGETS",
    "FEATURE_CURSOR_SYNC",
    "PROTOCOL_VERSION",
    "VIEWPORT_CLEAR",
    "Cell",
    "ClientFrame",
    "Cursor",
    "CursorFrame",
    "Delta",
    "Extension",
    "Grid",
    "Heartbeat",
    "Hello",
    "HistoryBackfill",
    "HostFrame",
    "Input",
    "InputAck",
    "Lane",
    "LaneBudget",
    "Rect",
    "RequestBackfill",
    "Resize",
    "Row",
    "RowSegment",
    "Shutdown",
    "Snapshot",
    "SnapshotComplete",
    "Style",
    "SyncConfig",
    "Trim",
    "Unknown",
    "Update",
    "ViewportCommand",
]

PROTOCOL_VERSION = 2
FEATURE_CURSOR_SYNC = 1 << 0
VIEWPORT_CLEAR = 0


class Lane(enum.IntEnum):
    FOREGROUND = 0
    RECENT = 1
    HISTORY = 2


def _tuple(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if type(value) is not tuple:
        object.__setattr__(obj, name, tuple(value))


def _bytes(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if type(value) is not bytes:
        object.__setattr__(obj, name, bytes(value))


# --- parts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneBudget:
    lane: Lane
    max_updates: int  # u32


DEFAULT_SNAPSHOT_BUDGETS = (
    LaneBudget(Lane.FOREGROUND, 500),
    LaneBudget(Lane.RECENT, 500),
    LaneBudget(Lane.HISTORY, 500),
)


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Sync parameters advertised in Hello; the defaults are the ones hosts send."""

    snapshot_budgets: tuple[LaneBudget, ...] = DEFAULT_SNAPSHOT_BUDGETS
    delta_budget: int = 512  # u32
    heartbeat_ms: int = 250  # u64
    initial_snapshot_lines: int = 500  # u32

    def __post_init__(self) -> None:
        _tuple(self, "snapshot_budgets")


@dataclass(frozen=True, slots=True)
class CursorFrame:
    """Cursor position and state (the upstream ``CursorFrame``)."""

    row: int  # u32, absolute row id
    col: int  # u32
    seq: int  # u64
    visible: bool = True
    blink: bool = True


# --- updates -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    TAG: ClassVar[int] = 0
    row: int  # u32
    col: int  # u32
    seq: int  # u64
    cell: int  # u64 packed cell


@dataclass(frozen=True, slots=True)
class Rect:
    TAG: ClassVar[int] = 1
    row_start: int  # u32
    row_end: int  # u32, exclusive
    col_start: int  # u32
    col_end: int  # u32, exclusive
    seq: int  # u64
    cell: int  # u64


@dataclass(frozen=True, slots=True)
class Row:
    TAG: ClassVar[int] = 2
    row: int  # u32
    seq: int  # u64
    cells: tuple[int, ...] = ()  # u64 each

    def __post_init__(self) -> None:
        if type(self.cells) is not tuple:
            _tuple(self, "cells")


@dataclass(frozen=True, slots=True)
class RowSegment:
    TAG: ClassVar[int] = 3
    row: int  # u32
    start_col: int  # u32
    seq: int  # u64
    cells: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if type(self.cells) is not tuple:
            _tuple(self, "cells")


@dataclass(frozen=True, slots=True)
class Trim:
    TAG: ClassVar[int] = 4
    start: int  # u32
    count: int  # u32
    seq: int  # u64 (hosts send start + count)


@dataclass(frozen=True, slots=True)
class Style:
    TAG: ClassVar[int] = 5
    id: int  # u32
    seq: int  # u64
    fg: int  # u32 packed colour
    bg: int  # u32 packed colour
    attrs: int  # u8 attribute bits


Update = Cell | Rect | Row | RowSegment | Trim | Style


# --- host frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    KIND: ClassVar[int] = 0
    seq: int  # u64
    timestamp_ms: int  # u64, Unix ms


@dataclass(frozen=True, slots=True)
class Hello:
    KIND: ClassVar[int] = 1
    subscription: int  # u64
    max_seq: int  # u64
    config: SyncConfig = SyncConfig()
    features: int = FEATURE_CURSOR_SYNC  # u32


@dataclass(frozen=True, slots=True)
class Grid:
    KIND: ClassVar[int] = 2
    cols: int  # u32
    history_rows: int  # u32
    base_row: int  # u64
    viewport_rows: int | None = None  # u32, written only when set


@dataclass(frozen=True, slots=True)
class Snapshot:
    KIND: ClassVar[int] = 3
    subscription: int  # u64
    lane: Lane
    watermark: int  # u64
    has_more: bool
    updates: tuple[Update, ...] = ()
    cursor: CursorFrame | None = None

    def __post_init__(self) -> None:
        if type(self.updates) is not tuple:
            _tuple(self, "updates")


@dataclass(frozen=True, slots=True)
class SnapshotComplete:
    KIND: ClassVar[int] = 4
    subscription: int  # u64
    lane: Lane


@dataclass(frozen=True, slots=True)
class Delta:
    KIND: ClassVar[int] = 5
    subscription: int  # u64
    watermark: int  # u64
    has_more: bool
    updates: tuple[Update, ...] = ()
    cursor: CursorFrame | None = None

    def __post_init__(self) -> None:
        if type(self.updates) is not tuple:
            _tuple(self, "updates")


@dataclass(frozen=True, slots=True)
class InputAck:
    KIND: ClassVar[int] = 6
    seq: int  # u64


@dataclass(frozen=True, slots=True)
class Shutdown:
    KIND: ClassVar[int] = 7


@dataclass(frozen=True, slots=True)
class HistoryBackfill:
    """Fields in wire order (the upstream struct lists ``updates`` before ``more``)."""

    KIND: ClassVar[int] = 8
    subscription: int  # u64
    request_id: int  # u64
    start_row: int  # u64
    count: int  # u32
    more: bool
    updates: tuple[Update, ...] = ()
    cursor: CursorFrame | None = None

    def __post_init__(self) -> None:
        if type(self.updates) is not tuple:
            _tuple(self, "updates")


@dataclass(frozen=True, slots=True)
class Cursor:
    KIND: ClassVar[int] = 9
    subscription: int  # u64
    cursor: CursorFrame


@dataclass(frozen=True, slots=True)
class Extension:
    """Extension frame: host kind 10 (``0x4A``) or client kind 4 (``0x44``)."""

    namespace: str  # bus namespace, e.g. "manager"
    kind: str  # topic, e.g. "beach.manager.action"
    payload: bytes = b""

    def __post_init__(self) -> None:
        if type(self.payload) is not bytes:
            _bytes(self, "payload")


HostFrame = (
    Heartbeat
    | Hello
    | Grid
    | Snapshot
    | SnapshotComplete
    | Delta
    | InputAck
    | Shutdown
    | HistoryBackfill
    | Cursor
    | Extension
)


# --- client frames -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Input:
    KIND: ClassVar[int] = 0
    seq: int  # u64
    data: bytes = b""

    def __post_init__(self) -> None:
        if type(self.data) is not bytes:
            _bytes(self, "data")


@dataclass(frozen=True, slots=True)
class Resize:
    KIND: ClassVar[int] = 1
    cols: int  # u16 (sent as a varint; decoders keep the low 16 bits)
    rows: int  # u16


@dataclass(frozen=True, slots=True)
class RequestBackfill:
    KIND: ClassVar[int] = 2
    subscription: int  # u64
    request_id: int  # u64
    start_row: int  # u64
    count: int  # u32


@dataclass(frozen=True, slots=True)
class ViewportCommand:
    KIND: ClassVar[int] = 3
    command: int = VIEWPORT_CLEAR  # one raw byte; only 0 (Clear) exists


@dataclass(frozen=True, slots=True)
class Unknown:
    KIND: ClassVar[int] = 31


ClientFrame = Input | Resize | RequestBackfill | ViewportCommand | Extension | Unknown
