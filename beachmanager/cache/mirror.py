"""The manager's mirror of one host's terminal, built from decoded host wire frames.

Applies the designed cache sync (reference ``wire-framing-and-bus.md`` §7):

* ``Hello`` resets everything (hosts replay Hello → Grid → Snapshots after a viewport
  change or a send error);
* ``Grid`` sets ``cols``, ``history_rows``, ``base_row`` and ``viewport_rows``;
* ``Snapshot`` / ``Delta`` / ``HistoryBackfill`` apply their updates (Cell, Rect, Row,
  RowSegment, Trim, Style) and optional cursor; ``Cursor`` moves the cursor;
* every cell keeps the sequence number of its last write and is written only by a newer
  one, so frames reordered by the host's priority queue are harmless;
* ``Trim`` drops rows and advances ``base_row``;
* ``Heartbeat`` updates the liveness record (sequence, gaps, host-to-manager latency).

*In sync* means: the three ``SnapshotComplete`` frames of the current Hello arrived, and
every lane that sent a Snapshot either sent its last one (``has_more`` false) or has been
quiet for ``quiet_period`` seconds (§7.2).

Memory is bounded: at most ``history_limit`` rows of at most ``max_cols`` cells; a Rect is
clamped to those bounds.  Rows are absolute row ids.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

from ..protocol import frames as f

BLANK = 0x20 << 32
U64_MAX = (1 << 64) - 1
LANES = (f.Lane.FOREGROUND, f.Lane.RECENT, f.Lane.HISTORY)
DEFAULT_HISTORY_LIMIT = 10_000
DEFAULT_MAX_COLS = 1024
MAX_RECT_ROWS = 1024


def cell_char(cell: int) -> str:
    """The character of a packed cell: code point 0 is a space, invalid ones U+FFFD."""
    cp = cell >> 32
    if cp == 0:
        return " "
    if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
        return "\ufffd"
    return chr(cp)


class _Row:
    """Packed cells and, per cell, ``seq + 1`` of its last write (0: never written)."""

    __slots__ = ("cells", "seqs")

    def __init__(self) -> None:
        self.cells = array("Q")
        self.seqs = array("Q")

    def grow(self, n: int) -> None:
        missing = n - len(self.cells)
        if missing > 0:
            self.cells.extend([BLANK] * missing)
            self.seqs.extend([0] * missing)

    def text(self) -> str:
        return "".join(cell_char(c) for c in self.cells).rstrip(" ")


class Heartbeats:
    """What the host's ``Heartbeat`` frames say about the link."""

    def __init__(self) -> None:
        self.count = 0
        self.seq: int | None = None
        self.timestamp_ms: int | None = None
        self.received_at: float | None = None
        self.latency_ms: float | None = None
        self.gaps = 0
        self.restarts = 0

    def record(self, frame: f.Heartbeat, now: float, now_ms: float | None) -> None:
        if self.seq is not None:
            if frame.seq > self.seq + 1:
                self.gaps += frame.seq - self.seq - 1
            elif frame.seq <= self.seq:
                self.restarts += 1
        self.count += 1
        self.seq = frame.seq
        self.timestamp_ms = frame.timestamp_ms
        self.received_at = now
        if now_ms is not None:
            self.latency_ms = now_ms - frame.timestamp_ms

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "seq": self.seq, "gaps": self.gaps, "restarts": self.restarts,
                "received_at": self.received_at, "latency_ms": self.latency_ms}


class TerminalMirror:
    def __init__(self, clock: Callable[[], float], *, history_limit: int = DEFAULT_HISTORY_LIMIT,
                 max_cols: int = DEFAULT_MAX_COLS, quiet_period: float = 0.25):
        self.clock = clock
        self.history_limit = history_limit
        self.max_cols = max_cols
        self.quiet_period = quiet_period
        self.heartbeats = Heartbeats()
        self.hellos = 0
        self.frames = 0
        self.written = 0
        self.skipped = 0
        self.version = 0  # bumped whenever visible state changes
        self._reset(None)

    def _reset(self, hello: f.Hello | None) -> None:
        self.hello = hello
        self.cols = 0
        self.history_rows = 0
        self.base_row = 0
        self.viewport_rows: int | None = None
        self.rows: dict[int, _Row] = {}
        self.styles: dict[int, tuple[int, int, int, int]] = {}  # id -> (fg, bg, attrs, seq)
        self.cursor: f.CursorFrame | None = None
        self.watermark = 0
        self.lanes_complete: set[int] = set()
        self.lanes_snapshotted: set[int] = set()
        self.lanes_final: set[int] = set()
        self.last_snapshot_at: float | None = None

    # -- frames -------------------------------------------------------------------------------
    def apply(self, frame: Any, now_ms: float | None = None) -> bool:
        """Apply one decoded host frame; False for frames that are not about the terminal."""
        self.frames += 1
        if isinstance(frame, f.Heartbeat):
            self.heartbeats.record(frame, self.clock(), now_ms)
            return True
        if isinstance(frame, f.Hello):
            self.hellos += 1
            self._reset(frame)
        elif isinstance(frame, f.Grid):
            self.cols = min(frame.cols, self.max_cols)
            self.history_rows = frame.history_rows
            self._set_base(frame.base_row)
            self.viewport_rows = frame.viewport_rows
        elif isinstance(frame, f.Snapshot):
            lane = int(frame.lane)
            self.lanes_snapshotted.add(lane)
            if not frame.has_more:
                self.lanes_final.add(lane)
            self.last_snapshot_at = self.clock()
            self._updates(frame.updates, frame.cursor, frame.watermark)
        elif isinstance(frame, f.SnapshotComplete):
            self.lanes_complete.add(int(frame.lane))
        elif isinstance(frame, f.Delta):
            self._updates(frame.updates, frame.cursor, frame.watermark)
        elif isinstance(frame, f.HistoryBackfill):
            self._updates(frame.updates, frame.cursor, None)
        elif isinstance(frame, f.Cursor):
            self._cursor(frame.cursor)
        else:
            return False
        self.version += 1
        return True

    def _updates(self, updates, cursor: f.CursorFrame | None, watermark: int | None) -> None:
        for u in updates:
            if isinstance(u, f.Row):
                self._write_run(u.row, 0, u.seq, u.cells)
            elif isinstance(u, f.RowSegment):
                self._write_run(u.row, u.start_col, u.seq, u.cells)
            elif isinstance(u, f.Cell):
                self._write_run(u.row, u.col, u.seq, (u.cell,))
            elif isinstance(u, f.Rect):
                self._rect(u)
            elif isinstance(u, f.Trim):
                self._trim(u.start, u.count)
            elif isinstance(u, f.Style):
                old = self.styles.get(u.id)
                if old is None or u.seq > old[3]:
                    self.styles[u.id] = (u.fg, u.bg, u.attrs, u.seq)
        if cursor is not None:
            self._cursor(cursor)
        if watermark is not None and watermark > self.watermark:
            self.watermark = watermark

    def _cursor(self, cursor: f.CursorFrame) -> None:
        if self.cursor is None or cursor.seq >= self.cursor.seq:
            self.cursor = cursor

    # -- cells --------------------------------------------------------------------------------
    def _row(self, row: int) -> _Row | None:
        if row < self.base_row:
            return None  # trimmed away (a late write for a row that no longer exists)
        entry = self.rows.get(row)
        if entry is None:
            entry = self.rows[row] = _Row()
            if len(self.rows) > self.history_limit:
                self._evict()
                return self.rows.get(row)
        return entry

    def _write_run(self, row: int, col: int, seq: int, cells) -> None:
        if col >= self.max_cols:
            self.skipped += len(cells)
            return
        cells = cells[: self.max_cols - col]
        entry = self._row(row)
        if entry is None:
            self.skipped += len(cells)
            return
        entry.grow(col + len(cells))
        seqs, store = entry.seqs, entry.cells
        stamp = seq + 1 if seq < U64_MAX else U64_MAX
        for i, cell in enumerate(cells, col):
            if stamp > seqs[i]:
                store[i] = cell
                seqs[i] = stamp
                self.written += 1
            else:
                self.skipped += 1

    def _rect(self, r: f.Rect) -> None:
        """Fill a rect, clamped to the grid's width and ``MAX_RECT_ROWS`` rows (a screen clear
        is a few dozen rows; this bounds the work one update can cause)."""
        col_end = min(r.col_end, self.cols or self.max_cols, self.max_cols)
        if r.col_start >= col_end or r.row_start >= r.row_end:
            return
        first = max(r.row_start, self.base_row)
        last = min(r.row_end, first + min(self.history_limit, MAX_RECT_ROWS))
        run = (r.cell,) * (col_end - r.col_start)
        for row in range(first, last):
            self._write_run(row, r.col_start, r.seq, run)

    def _trim(self, start: int, count: int) -> None:
        end = start + count
        if count <= 0:
            return
        if len(self.rows) < count:
            for row in [k for k in self.rows if start <= k < end]:
                del self.rows[row]
        else:
            for row in range(start, end):
                self.rows.pop(row, None)
        if end > self.base_row:
            # The Grid's extent shrinks from the front; new rows extend it through writes.
            self.history_rows = max(0, self.history_rows - (end - self.base_row))
            self._set_base(end)

    def _set_base(self, base_row: int) -> None:
        if base_row > self.base_row:
            for row in [k for k in self.rows if k < base_row]:
                del self.rows[row]
        self.base_row = base_row

    def _evict(self) -> None:
        """Over the history limit: keep the newest 90% of rows."""
        keep = sorted(self.rows)[-(self.history_limit * 9 // 10):]
        self._set_base(keep[0])

    # -- reading ------------------------------------------------------------------------------
    @property
    def in_sync(self) -> bool:
        if self.hello is None or not self.lanes_complete.issuperset(int(x) for x in LANES):
            return False
        if self.lanes_final.issuperset(self.lanes_snapshotted):
            return True
        return (self.last_snapshot_at is not None
                and self.clock() - self.last_snapshot_at >= self.quiet_period)

    @property
    def last_row(self) -> int | None:
        """The newest row id the host has (Grid's extent or the newest row written)."""
        candidates = [k for k in (max(self.rows, default=None),) if k is not None]
        if self.history_rows:
            candidates.append(self.base_row + self.history_rows - 1)
        return max(candidates) if candidates else None

    def row_text(self, row: int) -> str:
        entry = self.rows.get(row)
        return entry.text() if entry is not None else ""

    def text_rows(self, first: int | None = None, last: int | None = None) -> list[str]:
        """Rows ``first..last`` (inclusive, absolute ids) as text, trailing spaces removed.

        At most ``history_limit`` rows (the newest): row ids may be sparse and huge."""
        end = self.last_row if last is None else last
        if end is None:
            return []
        start = self.base_row if first is None else max(first, self.base_row)
        start = max(start, end - self.history_limit + 1)
        return [self.row_text(r) for r in range(start, end + 1)]

    def viewport(self) -> list[str]:
        """The visible screen: the newest ``viewport_rows`` rows."""
        end = self.last_row
        if end is None:
            return []
        height = self.viewport_rows or self.history_rows or (end - self.base_row + 1)
        return self.text_rows(max(self.base_row, end - height + 1), end)

    def summary(self) -> dict[str, Any]:
        c = self.cursor
        return {
            "in_sync": self.in_sync, "hellos": self.hellos, "version": self.version,
            "subscription": self.hello.subscription if self.hello else None,
            "hello_max_seq": self.hello.max_seq if self.hello else None,
            "watermark": self.watermark, "cols": self.cols, "history_rows": self.history_rows,
            "base_row": self.base_row, "viewport_rows": self.viewport_rows,
            "rows_stored": len(self.rows), "styles": len(self.styles),
            "lanes_complete": sorted(self.lanes_complete),
            "cursor": None if c is None else {"row": c.row, "col": c.col, "seq": c.seq,
                                              "visible": c.visible, "blink": c.blink},
            "heartbeat": self.heartbeats.as_dict(),
            "cells_written": self.written, "cells_skipped": self.skipped,
        }
