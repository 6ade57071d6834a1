"""The host's terminal cache and per-peer sync: handshake layout, deltas, trims, replay, and a
property test that a client mirror fed the frames always equals the host's cache."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.cache.mirror import TerminalMirror
from beachmanager.devstack.host.sync import FRAME_UPDATES, PeerSync
from beachmanager.devstack.host.terminal import MAX_CELL_UPDATES, TerminalModel, pack_cell
from beachmanager.protocol import frames as f
from beachmanager.protocol import wire


def kinds(frames):
    return [type(x).__name__ for x in frames]


def test_handshake_layout():
    m = TerminalModel(10, 3)
    m.feed(b"\x1b[1;31mred\x1b[0m\r\nplain")
    sync = PeerSync(m)
    frames = sync.handshake()
    assert kinds(frames) == ["Hello", "Grid", "Snapshot", "SnapshotComplete", "SnapshotComplete",
                             "SnapshotComplete"]
    hello, grid, snap = frames[:3]
    assert hello.max_seq == m.seq and hello.subscription == 1 and hello.features == f.FEATURE_CURSOR_SYNC
    assert (grid.cols, grid.history_rows, grid.base_row, grid.viewport_rows) == (10, 3, 0, 3)
    assert snap.lane == f.Lane.FOREGROUND and not snap.has_more and snap.cursor == m.cursor()
    style, *rows = snap.updates
    assert isinstance(style, f.Style) and style.seq == 0 and style.attrs & 1 and style.fg == (1 << 24) | 1
    assert [r.row for r in rows] == [2, 1, 0]  # newest first
    assert rows[2].cells[0] == pack_cell("r", style.id)
    assert [x.lane for x in frames[3:]] == [0, 1, 2]
    assert sync.watermark == m.seq and sync.deltas() == []


def test_scrollback_goes_to_recent_and_frames_split():
    m = TerminalModel(20, 4, history_limit=1000)
    m.feed(b"".join(b"line %d\r\n" % i for i in range(150)))
    frames = PeerSync(m).handshake()
    fg = [x for x in frames if isinstance(x, f.Snapshot) and x.lane == f.Lane.FOREGROUND]
    recent = [x for x in frames if isinstance(x, f.Snapshot) and x.lane == f.Lane.RECENT]
    assert len(fg) == 1 and [u.row for u in fg[0].updates] == [150, 149, 148, 147]
    assert [len(x.updates) for x in recent] == [FRAME_UPDATES, FRAME_UPDATES, 147 - 2 * FRAME_UPDATES]
    assert [x.has_more for x in recent] == [True, True, False]
    assert all(x.cursor is None for x in recent)
    assert m.row_text(0) == "line 0" and m.row_text(149) == "line 149"


def test_deltas_pick_cells_segments_rows_and_cursor():
    m = TerminalModel(20, 3)
    m.feed(b"hello world")
    sync = PeerSync(m)
    sync.handshake()
    m.feed(b"\rJ")  # one cell
    [d] = sync.deltas()
    assert [type(u).__name__ for u in d.updates] == ["Cell"] and d.updates[0].col == 0
    assert d.cursor is not None and d.cursor.col == 1 and d.watermark == m.seq
    m.feed(b"\r" + b"x" * (MAX_CELL_UPDATES + 2))  # a run inside the row
    [d] = sync.deltas()
    [seg] = d.updates
    assert isinstance(seg, f.RowSegment) and seg.start_col == 0 and len(seg.cells) == MAX_CELL_UPDATES + 2
    m.feed(b"\x1b[2K\r" + b"y" * 20)  # the whole row
    [d] = sync.deltas()
    assert isinstance(d.updates[-1], f.Row)
    m.feed(b"\x1b[H")  # cursor only
    [d] = sync.deltas()
    assert d.updates == () and d.cursor.col == 0
    assert sync.deltas() == []


def test_new_style_precedes_its_cells():
    m = TerminalModel(10, 2)
    sync = PeerSync(m)
    sync.handshake()
    m.feed(b"\x1b[38;2;1;2;3mZ")
    [d] = sync.deltas()
    style, cell = d.updates
    assert isinstance(style, f.Style) and style.fg == (2 << 24) | 0x010203
    assert cell.cell == pack_cell("Z", style.id) and style.seq < cell.seq


def test_trim_when_history_is_full():
    m = TerminalModel(10, 2, history_limit=5)
    sync = PeerSync(m)
    sync.handshake()
    m.feed(b"a\r\nb\r\nc\r\nd\r\ne\r\nf\r\n")
    updates = [u for d in sync.deltas() for u in d.updates]
    trims = [u for u in updates if isinstance(u, f.Trim)]
    assert trims and trims[0].start == 0 and sum(t.count for t in trims) == m.base_row
    assert len(m.rows) == 5 and min(m.rows) == m.base_row


def test_peer_behind_the_log_gets_a_fresh_handshake():
    m = TerminalModel(10, 2, log_limit=8)
    sync = PeerSync(m)
    sync.handshake()
    for i in range(20):
        m.feed(b"%d\r\n" % i)
    assert kinds(sync.deltas())[:2] == ["Hello", "Grid"]
    assert sync.handshakes == 2


def test_backfill_answers_with_stored_rows():
    m = TerminalModel(10, 3, history_limit=200)
    m.feed(b"".join(b"r%d\r\n" % i for i in range(100)))
    sync = PeerSync(m)
    frames = sync.backfill(f.RequestBackfill(subscription=1, request_id=7, start_row=0, count=m.base_row + 200))
    assert [x.more for x in frames] == [True, False] and all(x.request_id == 7 for x in frames)
    rows = [u.row for x in frames for u in x.updates]
    assert rows == sorted(m.rows) and frames[0].start_row == 0 and frames[0].count == 64
    assert [u for u in frames[0].updates][5].cells[:2] == (pack_cell("r", 0), pack_cell("5", 0))
    [empty] = sync.backfill(f.RequestBackfill(subscription=1, request_id=8, start_row=10_000, count=5))
    assert empty.updates == () and empty.count == 0 and not empty.more


def test_resize_changes_geometry():
    m = TerminalModel(10, 3)
    m.feed(b"\r\n\r\nabc")  # on the last row: shrinking drops rows from the top
    m.resize(12, 2)
    grid = PeerSync(m).handshake()[1]
    assert (grid.cols, grid.viewport_rows) == (12, 2) and m.text_lines() == ["", "abc"]
    assert all(len(m.rows[m.top_row + y].cells) == 12 for y in range(2))


# -- property: a mirror fed handshake + deltas equals the host cache ------------------------------

class RefMirror:
    """Independent reference: per-cell write-if-newer, Trim advances the base."""

    def __init__(self):
        self.rows = {}
        self.base = 0

    def apply(self, frame):
        if isinstance(frame, f.Hello):
            self.rows, self.base = {}, 0
        elif isinstance(frame, f.Grid):
            self.base = frame.base_row
        for u in getattr(frame, "updates", ()):
            if isinstance(u, f.Row):
                self._write(u.row, 0, u.cells, u.seq)
            elif isinstance(u, f.RowSegment):
                self._write(u.row, u.start_col, u.cells, u.seq)
            elif isinstance(u, f.Cell):
                self._write(u.row, u.col, (u.cell,), u.seq)
            elif isinstance(u, f.Trim):
                for r in range(u.start, u.start + u.count):
                    self.rows.pop(r, None)
                self.base = max(self.base, u.start + u.count)

    def _write(self, row, col, cells, seq):
        line = self.rows.setdefault(row, {})
        for i, c in enumerate(cells):
            if line.get(col + i, (None, -1))[1] < seq:
                line[col + i] = (c, seq)

    def text(self, row, cols):
        line = self.rows.get(row, {})
        return "".join(" " if line.get(x, (0x20 << 32,))[0] >> 32 == 0 else chr(line.get(x, (0x20 << 32,))[0] >> 32)
                       for x in range(cols)).rstrip()


chunks = st.lists(st.sampled_from([
    b"abc", b"hello world ", b"\r\n", b"\n", b"\r", b"\x1b[K", b"\x1b[2J", b"\x1b[H", b"\x1b[3;5H",
    b"\x1b[31m", b"\x1b[0m", b"\x1b[1;44m", b"\x08", b"\t", "é中".encode(), b"\x1b[2;3r", b"\x1b[r",
    b"\x1bM", b"x" * 30,
]), max_size=60)


@settings(max_examples=60, deadline=None)
@given(before=chunks, after=st.lists(chunks, max_size=6), cols=st.integers(5, 30), rows=st.integers(2, 8),
       limit=st.integers(8, 40))
def test_mirror_equals_host_cache(before, after, cols, rows, limit):
    m = TerminalModel(cols, rows, history_limit=limit, log_limit=64)
    m.feed(b"".join(before))
    sync = PeerSync(m)
    ref, mgr = RefMirror(), TerminalMirror(lambda: 0.0)

    def deliver(frames):
        for frame in frames:
            again = wire.decode_from_host(wire.encode_host(frame))  # through the real codec
            ref.apply(again)
            mgr.apply(again)

    deliver(sync.handshake())
    for batch in after:
        m.feed(b"".join(batch))
        deliver(sync.deltas())
    for row_id in m.rows:
        assert ref.text(row_id, m.cols) == m.row_text(row_id), row_id
    assert mgr.viewport() == m.text_lines()
    assert all(r >= m.base_row for r in ref.rows)
