"""Hypothesis strategies for every wire frame and update type."""

from __future__ import annotations

from hypothesis import strategies as st

from beachmanager.protocol import wire as w

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, (1 << 32) - 1)
u64 = st.integers(0, (1 << 64) - 1)
# Packed cells: mostly realistic (code point << 32 | style), sometimes any u64.
cells = st.one_of(
    st.builds(lambda cp, style: cp << 32 | style, st.integers(0, 0x10FFFF), st.integers(0, 300)),
    u64,
)
lanes = st.sampled_from(list(w.Lane))
texts = st.text(max_size=40)

cursor_frames = st.builds(w.CursorFrame, u32, u32, u64, st.booleans(), st.booleans())
updates = st.one_of(
    st.builds(w.Cell, u32, u32, u64, cells),
    st.builds(w.Rect, u32, u32, u32, u32, u64, cells),
    st.builds(w.Row, u32, u64, st.lists(cells, max_size=40)),
    st.builds(w.RowSegment, u32, u32, u64, st.lists(cells, max_size=40)),
    st.builds(w.Trim, u32, u32, u64),
    st.builds(w.Style, u32, u64, u32, u32, u8),
)
update_lists = st.lists(updates, max_size=8)
sync_configs = st.builds(
    w.SyncConfig,
    st.lists(st.builds(w.LaneBudget, lanes, u32), max_size=4),
    u32,
    u64,
    u32,
)
extensions = st.builds(w.Extension, texts, texts, st.binary(max_size=200))

host_frames = st.one_of(
    st.builds(w.Heartbeat, u64, u64),
    st.builds(w.Hello, u64, u64, sync_configs, u32),
    st.builds(w.Grid, u32, u32, u64, st.none() | u32),
    st.builds(w.Snapshot, u64, lanes, u64, st.booleans(), update_lists, st.none() | cursor_frames),
    st.builds(w.SnapshotComplete, u64, lanes),
    st.builds(w.Delta, u64, u64, st.booleans(), update_lists, st.none() | cursor_frames),
    st.builds(w.InputAck, u64),
    st.just(w.Shutdown()),
    st.builds(
        w.HistoryBackfill,
        u64,
        u64,
        u64,
        u32,
        st.booleans(),
        update_lists,
        st.none() | cursor_frames,
    ),
    st.builds(w.Cursor, u64, cursor_frames),
    extensions,
)

client_frames = st.one_of(
    st.builds(w.Input, u64, st.binary(max_size=200)),
    st.builds(w.Resize, u16, u16),
    st.builds(w.RequestBackfill, u64, u64, u64, u32),
    st.just(w.ViewportCommand()),
    extensions,
    st.just(w.Unknown()),
)
