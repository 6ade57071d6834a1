"""The host's terminal cache: a pyte screen turned into Beach rows, styles and sequence numbers.

Rows have stable *absolute* ids: the viewport row ``y`` is absolute row
``scrolled + y``, where ``scrolled`` counts lines that left the top of a full-screen
scroll region.  Those lines stay in the cache as history (at most ``history_limit``
rows in all; the oldest are trimmed).  Every change gets the next value of one
sequence counter, so a peer that has seen everything up to ``watermark`` needs only
the changes above it.

The model keeps a bounded change log of ready-made updates (cells, row segments,
rows, styles, trims, in order).  :meth:`TerminalModel.updates_since` answers from the
log when it reaches back far enough; a peer further behind gets a fresh handshake.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import pyte

from ...protocol.frames import Cell, CursorFrame, Row, RowSegment, Style, Trim, Update

#: Colours: kind << 24 | value (reference §3.4).
COLOR_DEFAULT = 0
_INDEXED = 1 << 24
_RGB = 2 << 24
_NAMED = {name: i for i, name in enumerate(
    ("black", "red", "green", "brown", "blue", "magenta", "cyan", "white"))}
_NAMED.update({"bright" + name: i + 8 for name, i in list(_NAMED.items())})
_NAMED["yellow"] = _NAMED["brown"]
_NAMED["brightyellow"] = _NAMED["brightbrown"]

ATTR_BOLD, ATTR_ITALIC, ATTR_UNDERLINE, ATTR_STRIKE, ATTR_REVERSE, ATTR_BLINK = (1 << i for i in range(6))

#: Most distinct styles kept; further ones fall back to the default style.
MAX_STYLES = 4096
#: When a row changes in at most this many cells, the change is sent as Cell updates.
MAX_CELL_UPDATES = 4


def pack_color(value: str) -> int:
    if value == "default":
        return COLOR_DEFAULT
    index = _NAMED.get(value)
    if index is not None:
        return _INDEXED | index
    try:
        return _RGB | int(value, 16) & 0xFFFFFF
    except ValueError:
        return COLOR_DEFAULT


def pack_cell(char: str, style_id: int) -> int:
    """Code point << 32 | style id; a wide character's padding cell is code point 0."""
    return ((ord(char) if char else 0) << 32) | style_id


def unpack_char(cell: int) -> str:
    cp = cell >> 32
    return " " if cp == 0 else chr(cp)


@dataclass
class RowState:
    cells: tuple[int, ...]
    seq: int


class _Screen(pyte.Screen):
    """A pyte screen that reports the line leaving the top of a full-screen scroll."""

    def __init__(self, columns: int, lines: int, on_scroll_out):
        self._on_scroll_out = on_scroll_out
        super().__init__(columns, lines)

    def index(self) -> None:
        top, bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y == bottom and top == 0 and bottom == self.lines - 1:
            self._on_scroll_out(self.buffer[0])
        super().index()


class TerminalModel:
    def __init__(self, cols: int = 80, rows: int = 24, history_limit: int = 1000, log_limit: int = 4096):
        if cols < 1 or rows < 1:
            raise ValueError("terminal size must be at least 1x1")
        self.history_limit = max(history_limit, rows)
        self.log_limit = log_limit
        self.seq = 0
        self.scrolled = 0
        self.base_row = 0
        self.rows: dict[int, RowState] = {}
        self.styles: dict[tuple[int, int, int], int] = {(COLOR_DEFAULT, COLOR_DEFAULT, 0): 0}
        self.log: deque[tuple[int, Update]] = deque()
        #: Lowest watermark the log can serve (everything above it is in the log).
        self.log_floor = 0
        self.cursor_seq = 0
        self._cursor: tuple[int, int, bool] = (0, 0, True)
        self.screen = _Screen(cols, rows, self._scroll_out)
        self.stream = pyte.ByteStream(self.screen)
        for y in range(rows):
            self.rows[y] = RowState(self._blank(cols), 0)

    # -- geometry ------------------------------------------------------------------------
    @property
    def cols(self) -> int:
        return self.screen.columns

    @property
    def viewport_rows(self) -> int:
        return self.screen.lines

    @property
    def top_row(self) -> int:
        """Absolute id of the viewport's first row."""
        return self.scrolled

    @property
    def history_rows(self) -> int:
        return len(self.rows)

    @staticmethod
    def _blank(cols: int) -> tuple[int, ...]:
        return (pack_cell(" ", 0),) * cols

    # -- feeding ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> bool:
        """Run PTY output through the emulator; True when rows, styles or the cursor changed."""
        before = self.seq
        self.stream.feed(data)
        for y in sorted(self.screen.dirty):
            if y < self.screen.lines:
                self._store(self.scrolled + y, self._pack_line(self.screen.buffer[y]))
        self.screen.dirty.clear()
        self._trim()
        self._update_cursor()
        return self.seq != before

    def resize(self, cols: int, rows: int) -> None:
        """Resize the emulator; peers must get a fresh handshake afterwards."""
        self.screen.resize(rows, cols)
        for y in range(rows):
            self._store(self.scrolled + y, self._pack_line(self.screen.buffer[y]))
        self.screen.dirty.clear()
        for row_id in [r for r in self.rows if r >= self.scrolled + rows]:
            del self.rows[row_id]  # rows below a shrunken viewport no longer exist
        self._trim()
        self._update_cursor(force=True)

    def _scroll_out(self, line) -> None:
        self._store(self.scrolled, self._pack_line(line))
        self.scrolled += 1

    def _pack_line(self, line) -> tuple[int, ...]:
        out = []
        for x in range(self.screen.columns):
            ch = line[x]
            out.append(pack_cell(ch.data, self._style_id(ch)))
        return tuple(out)

    def _style_id(self, ch) -> int:
        attrs = ((ATTR_BOLD if ch.bold else 0) | (ATTR_ITALIC if ch.italics else 0)
                 | (ATTR_UNDERLINE if ch.underscore else 0) | (ATTR_STRIKE if ch.strikethrough else 0)
                 | (ATTR_REVERSE if ch.reverse else 0) | (ATTR_BLINK if ch.blink else 0))
        key = (pack_color(ch.fg), pack_color(ch.bg), attrs)
        style = self.styles.get(key)
        if style is None:
            if len(self.styles) >= MAX_STYLES:
                return 0  # the table is full: render in the default style
            style = self.styles[key] = len(self.styles)
            self.seq += 1
            self._log(Style(id=style, seq=self.seq, fg=key[0], bg=key[1], attrs=attrs))
        return style

    def _store(self, row_id: int, cells: tuple[int, ...]) -> None:
        old = self.rows.get(row_id)
        if old is not None and old.cells == cells:
            return
        self.seq += 1
        self.rows[row_id] = RowState(cells, self.seq)
        self._log(self._diff(row_id, old.cells if old is not None else None, cells, self.seq))

    def _diff(self, row_id: int, old: tuple[int, ...] | None, new: tuple[int, ...], seq: int) -> Update | list:
        if old is None or len(old) != len(new):
            return Row(row=row_id, seq=seq, cells=new)
        changed = [x for x in range(len(new)) if old[x] != new[x]]
        if len(changed) <= MAX_CELL_UPDATES:
            return [Cell(row=row_id, col=x, seq=seq, cell=new[x]) for x in changed]
        first, last = changed[0], changed[-1]
        if last - first + 1 < len(new):
            return RowSegment(row=row_id, start_col=first, seq=seq, cells=new[first:last + 1])
        return Row(row=row_id, seq=seq, cells=new)

    def _log(self, update) -> None:
        for u in update if isinstance(update, list) else (update,):
            self.log.append((self.seq, u))
        while len(self.log) > self.log_limit:
            seq, _ = self.log.popleft()
            self.log_floor = seq

    def _trim(self) -> None:
        excess = len(self.rows) - self.history_limit
        if excess <= 0:
            return
        start = self.base_row
        for row_id in range(start, start + excess):
            self.rows.pop(row_id, None)
        self.base_row = start + excess
        self.seq += 1
        self._log(Trim(start=start, count=excess, seq=start + excess))

    def _update_cursor(self, force: bool = False) -> None:
        c = self.screen.cursor
        state = (self.scrolled + min(c.y, self.screen.lines - 1), min(c.x, self.screen.columns - 1), not c.hidden)
        if force or state != self._cursor:
            self._cursor = state
            self.seq += 1
            self.cursor_seq = self.seq

    # -- reading ------------------------------------------------------------------------------
    def cursor(self) -> CursorFrame:
        row, col, visible = self._cursor
        return CursorFrame(row=row, col=col, seq=self.cursor_seq, visible=visible, blink=True)

    def style_updates(self) -> list[Style]:
        """The non-default style table, as Style updates with seq 0 (snapshot form)."""
        return [Style(id=sid, seq=0, fg=key[0], bg=key[1], attrs=key[2])
                for key, sid in self.styles.items() if sid != 0]

    def row_ids_descending(self) -> list[int]:
        return sorted(self.rows, reverse=True)

    def updates_since(self, watermark: int) -> list[Update] | None:
        """Every change with seq above *watermark*, oldest first; ``None`` when the log no
        longer reaches back that far (the peer then needs a fresh handshake)."""
        if watermark >= self.seq:
            return []
        if watermark < self.log_floor:
            return None
        return [u for seq, u in self.log if seq > watermark]

    def text_lines(self) -> list[str]:
        """The viewport as text, trailing blanks stripped."""
        return ["".join(unpack_char(c) for c in self.rows[self.scrolled + y].cells).rstrip()
                for y in range(self.screen.lines)]

    def row_text(self, row_id: int) -> str:
        st = self.rows.get(row_id)
        return "".join(unpack_char(c) for c in st.cells).rstrip() if st else ""
