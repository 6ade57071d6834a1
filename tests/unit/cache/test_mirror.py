"""The terminal mirror: frames in, text and sync state out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.cache.mirror import BLANK, TerminalMirror, cell_char
from beachmanager.protocol import frames as f
from tests.support.clock import FakeClock

L = f.Lane


def c(ch: str, style: int = 0) -> int:
    return (ord(ch) << 32) | style


def row(r: int, seq: int, text: str) -> f.Row:
    return f.Row(r, seq, tuple(c(ch) for ch in text))


def synced(clock=None, **kw) -> TerminalMirror:
    m = TerminalMirror(clock or FakeClock(), **kw)
    for frame in (f.Hello(1, 42), f.Grid(cols=10, history_rows=3, base_row=0, viewport_rows=3),
                  f.Snapshot(1, L.FOREGROUND, 42, False,
                             (f.Style(1, 0, 0x01000001, 0, 1), row(2, 40, "c"), row(1, 41, "bb"),
                              row(0, 42, "aaa")),
                             f.CursorFrame(0, 0, 1)),
                  f.SnapshotComplete(1, L.FOREGROUND), f.SnapshotComplete(1, L.RECENT),
                  f.SnapshotComplete(1, L.HISTORY)):
        assert m.apply(frame)
    return m


def test_snapshot_then_delta_gives_text_cursor_and_sync():
    m = synced()
    assert m.in_sync
    assert m.text_rows() == ["aaa", "bb", "c"]
    assert m.viewport() == ["aaa", "bb", "c"]
    m.apply(f.Delta(1, 57, False, (f.Cell(2, 1, 57, c("!")),), f.CursorFrame(2, 2, 57)))
    assert m.text_rows()[2] == "c!"
    assert (m.cursor.row, m.cursor.col) == (2, 2)
    assert m.watermark == 57
    assert m.styles[1] == (0x01000001, 0, 1, 0)


def test_writes_only_if_newer_so_reordering_is_harmless():
    m = synced()
    m.apply(f.Delta(1, 60, False, (f.Row(0, 60, (c("n"), c("e"), c("w"))),)))
    m.apply(f.Delta(1, 50, False, (f.Row(0, 50, (c("o"), c("l"), c("d"))),)))  # late, older
    assert m.row_text(0) == "new"
    assert m.skipped >= 3
    # An older cursor does not move the cursor back.
    m.apply(f.Cursor(1, f.CursorFrame(0, 3, 70)))
    m.apply(f.Cursor(1, f.CursorFrame(0, 1, 65)))
    assert m.cursor.col == 3


def test_hello_resets_everything():
    m = synced()
    m.apply(f.Hello(1, 99))
    assert not m.in_sync
    assert m.rows == {} and m.cursor is None and m.styles == {}
    assert m.hellos == 2


def test_sync_needs_all_three_lanes_and_final_snapshots_or_quiet():
    clock = FakeClock()
    m = TerminalMirror(clock)
    m.apply(f.Hello(1, 5))
    m.apply(f.Snapshot(1, L.FOREGROUND, 5, True, (row(0, 5, "x"),)))
    for lane in (L.FOREGROUND, L.RECENT):
        m.apply(f.SnapshotComplete(1, lane))
    assert not m.in_sync  # history lane missing
    m.apply(f.SnapshotComplete(1, L.HISTORY))
    assert not m.in_sync  # foreground's final frame (has_more false) not seen, not quiet yet
    clock.advance(0.3)
    assert m.in_sync  # quiet period elapsed
    clock.advance(-0.3)
    m.apply(f.Snapshot(1, L.FOREGROUND, 5, False, ()))
    assert m.in_sync


def test_trim_drops_rows_and_late_writes_below_base():
    m = synced()
    m.apply(f.Delta(1, 80, False, (f.Trim(0, 2, 2),)))
    assert m.base_row == 2
    assert m.text_rows() == ["c"]
    m.apply(f.Delta(1, 90, False, (row(0, 90, "zz"),)))  # reordered write into trimmed row
    assert 0 not in m.rows


def test_rect_fills_half_open_ranges_and_is_clamped():
    m = synced(max_cols=6, history_limit=50)
    m.apply(f.Delta(1, 100, False, (f.Rect(0, 2, 1, 3, 100, c("#")),)))
    assert m.text_rows()[:2] == ["a##", "b##"]
    # A hostile rect covering 4 billion rows and columns stays within the bounds.
    m.apply(f.Delta(1, 101, False, (f.Rect(0, 2**32 - 1, 0, 2**32 - 1, 101, c("x")),)))
    assert len(m.rows) <= 50
    assert all(len(r.cells) <= 6 for r in m.rows.values())


def test_history_limit_evicts_oldest_rows():
    m = TerminalMirror(FakeClock(), history_limit=100)
    m.apply(f.Hello(1, 0))
    for r in range(300):
        m.apply(f.Delta(1, r + 1, False, (row(r, r + 1, str(r % 10)),)))
    assert len(m.rows) <= 100
    assert m.row_text(299) == "9"
    assert min(m.rows) == m.base_row


def test_heartbeats_track_sequence_gaps_and_latency():
    m = TerminalMirror(FakeClock())
    m.apply(f.Heartbeat(0, 1_000), now_ms=1_004)
    m.apply(f.Heartbeat(1, 2_000), now_ms=2_003)
    m.apply(f.Heartbeat(4, 5_000), now_ms=5_002)
    hb = m.heartbeats
    assert (hb.count, hb.seq, hb.gaps, hb.latency_ms) == (3, 4, 2, 2)
    m.apply(f.Heartbeat(0, 6_000))
    assert hb.restarts == 1


def test_frames_that_are_not_terminal_state_are_not_applied():
    m = TerminalMirror(FakeClock())
    assert not m.apply(f.Extension("manager", "beach.manager.ack", b"{}"))
    assert not m.apply(f.InputAck(3))
    assert not m.apply(f.Shutdown())


def test_cell_char_edge_cases():
    assert cell_char(0) == " "
    assert cell_char(BLANK) == " "
    assert cell_char(0x110000 << 32) == "\ufffd"
    assert cell_char(0xD800 << 32) == "\ufffd"
    assert cell_char(c("é", 7)) == "é"


writes = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 7), st.sampled_from("abcdefgh")),
    min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(writes, st.randoms(use_true_random=False))
def test_any_delivery_order_converges_to_the_in_order_state(ws, rnd):
    """Each write gets a distinct, increasing seq; delivered in any order, the result is the
    same as delivering them in order."""
    updates = [f.Cell(r, col, seq, c(ch)) for seq, (r, col, ch) in enumerate(ws, 1)]
    in_order = TerminalMirror(FakeClock())
    in_order.apply(f.Hello(1, 0))
    for u in updates:
        in_order.apply(f.Delta(1, u.seq, False, (u,)))
    shuffled = list(updates)
    rnd.shuffle(shuffled)
    other = TerminalMirror(FakeClock())
    other.apply(f.Hello(1, 0))
    for u in shuffled:
        other.apply(f.Delta(1, u.seq, False, (u,)))
    assert other.text_rows(0, 5) == in_order.text_rows(0, 5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.builds(f.Cell, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
              st.integers(0, 2**64 - 1)),
    st.builds(f.Rect, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    st.builds(f.Trim, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    st.builds(f.RowSegment, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(0, 2**64 - 1), st.lists(st.integers(0, 2**64 - 1), max_size=5)),
), max_size=8))
def test_arbitrary_updates_stay_bounded_and_readable(updates):
    m = TerminalMirror(FakeClock(), history_limit=64, max_cols=32)
    m.apply(f.Hello(1, 0))
    m.apply(f.Delta(1, 0, False, tuple(updates)))
    assert len(m.rows) <= 64
    assert all(len(r.cells) <= 32 for r in m.rows.values())
    m.apply(f.Grid(cols=2**32 - 1, history_rows=2**32 - 1, base_row=0, viewport_rows=2**32 - 1))
    assert len(m.text_rows()) <= 64 and len(m.viewport()) <= 64  # sparse, huge row ids
    m.summary()
