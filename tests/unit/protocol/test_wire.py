"""Wire frames: reference examples C-J, varint rules, strictness, round trips, rule 4."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import _cellruns, wire
from beachmanager.protocol.wire import (
    Cell,
    CursorFrame,
    Delta,
    Extension,
    Grid,
    Heartbeat,
    Hello,
    HistoryBackfill,
    Input,
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
    ViewportCommand,
    WireError,
)
from tests.unit.protocol import strategies as s
from tests.unit.protocol.support import ACTION_FRAME, ACTION_JSON, h


def cell(ch: str, style: int = 0) -> int:
    return ord(ch) << 32 | style


# --- reference examples (§3.7) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (127, "7f"), (128, "80 01"), (300, "ac 02"), (500, "f4 03"), (16384, "80 80 01")],
)
def test_varint_examples(value, encoded):
    assert wire.varint(value) == h(encoded)


HOST_VECTORS = [
    ("C", Heartbeat(0, 1733300000000), "40 00 80 aa ec 85 b9 32"),
    (
        "D",
        Hello(1, 42, SyncConfig(), 1),
        "41 01 2a 03 00 f4 03 01 f4 03 02 f4 03 80 04 fa 01 f4 03 01",
    ),
    ("E", Grid(80, 24, 0, 24), "42 50 18 00 18"),
    (
        "F",
        Snapshot(
            1,
            Lane.FOREGROUND,
            42,
            False,
            [Row(23, 42, [cell("h"), cell("i")])],
            CursorFrame(23, 2, 43, True, True),
        ),
        "43 01 00 2a 00 01 02 17 2a 02 80 80 80 80 80 0d 80 80 80 80 90 0d 01 17 02 2b 01 01",
    ),
    ("G", SnapshotComplete(1, Lane.FOREGROUND), "44 01 00"),
    (
        "H",
        Delta(1, 57, False, [Cell(23, 2, 57, cell("!"))]),
        "45 01 39 00 01 00 17 02 39 80 80 80 80 90 04 00",
    ),
]
CLIENT_VECTORS = [
    ("J1", Input(1, b"ls\r"), "40 01 03 6c 73 0d"),
    ("J2", Resize(80, 24), "41 50 18"),
    ("J3", RequestBackfill(1, 1, 0, 64), "42 01 01 00 40"),
]


@pytest.mark.parametrize(("name", "frame", "encoded"), HOST_VECTORS)
def test_host_examples(name, frame, encoded):
    assert wire.encode_host(frame) == h(encoded)
    assert wire.decode_host(h(encoded)) == frame
    assert wire.decode_from_host(h(encoded)) == frame


@pytest.mark.parametrize(("name", "frame", "encoded"), CLIENT_VECTORS)
def test_client_examples(name, frame, encoded):
    assert wire.encode_client(frame) == h(encoded)
    assert wire.decode_client(h(encoded)) == frame


def test_example_f_cells_are_code_point_shifted():
    assert wire.varint(cell("h")) == h("80 80 80 80 80 0d")
    assert wire.varint(cell("i")) == h("80 80 80 80 90 0d")


def test_example_a_client_extension():
    frame = Extension("manager", "beach.manager.action", ACTION_JSON)
    raw = wire.encode_client(frame)
    assert raw == ACTION_FRAME
    assert raw[:31] == h(
        "44 07 6d 61 6e 61 67 65 72 14 62 65 61 63 68 2e 6d 61 6e 61 67 65 72 2e 61 63 74 69 6f 6e 79"
    )
    assert raw[31:34] == b'{"t'
    assert len(raw) == 152
    assert wire.decode_client(raw) == frame
    assert wire.decode_from_host(raw) == frame  # G shares the first byte; rule 4 tells them apart


def test_example_i_ack_in_both_layouts():
    payload = b'{"type":"ack","payload":' + b" " * 150 + b"}"
    assert len(payload) == 0xAF
    frame = Extension("manager", "beach.manager.ack", payload)
    head_raw = wire.encode_client(frame)
    assert head_raw.startswith(
        h("44 07") + b"manager" + h("11") + b"beach.manager.ack" + h("af 01")
    )
    host_raw = wire.encode_host(frame)
    assert host_raw[0] == 0x4A and host_raw[1:] == head_raw[1:]
    assert wire.decode_from_host(head_raw) == frame
    assert wire.decode_from_host(host_raw) == frame
    assert wire.decode_host(host_raw) == frame


# --- rule 4: dual decoding of 0x44 ---------------------------------------------------------


@given(s.u64, s.lanes)
def test_genuine_snapshot_complete_never_reads_as_extension(sub, lane):
    raw = wire.encode_host(SnapshotComplete(sub, lane))
    assert wire.decode_from_host(raw) == SnapshotComplete(sub, lane)


@given(s.extensions)
def test_client_layout_extension_from_host(frame):
    assert wire.decode_from_host(wire.encode_client(frame)) == frame
    assert wire.decode_from_host(wire.encode_host(frame)) == frame


def test_0x44_with_trailing_bytes_is_snapshot_complete():
    raw = wire.encode_client(Extension("m", "k", b"p")) + b"\x00"
    # Not an exact extension parse, so it is read as SnapshotComplete(sub=1, lane=0x6d) -> error.
    with pytest.raises(WireError, match="lane"):
        wire.decode_from_host(raw)
    assert wire.decode_from_host(h("44 01 00 ff")) == SnapshotComplete(1, Lane.FOREGROUND)


def test_0x44_with_non_utf8_namespace_is_not_an_extension():
    raw = h("44 01 02 00 00")  # namespace b"\x02" is UTF-8; kind "" ; payload "" -> extension
    assert wire.decode_from_host(raw) == Extension("\x02", "", b"")
    raw = h("44 01 ff 00 00")  # namespace b"\xff" is not UTF-8 -> SnapshotComplete(1, 0xff)
    with pytest.raises(WireError, match="lane"):
        wire.decode_from_host(raw)
    assert wire.decode_from_host(h("44 02 01")) == SnapshotComplete(2, Lane.RECENT)


# --- round trips ---------------------------------------------------------------------------


@given(s.host_frames)
def test_host_frames_round_trip(frame):
    raw = wire.encode_host(frame)
    assert wire.decode_host(raw) == frame
    assert wire.encode_host(wire.decode_host(raw)) == raw
    if not isinstance(frame, SnapshotComplete):
        assert wire.decode_from_host(raw) == frame


@given(s.client_frames)
def test_client_frames_round_trip(frame):
    raw = wire.encode_client(frame)
    assert wire.decode_client(raw) == frame
    assert wire.encode_client(wire.decode_client(raw)) == raw


@given(s.updates)
def test_every_update_type_round_trips_in_every_carrier(update):
    carriers = [
        Snapshot(1, Lane.RECENT, 2, True, [update]),
        Delta(1, 2, False, [update], CursorFrame(1, 2, 3, False, True)),
        HistoryBackfill(1, 2, 3, 4, True, [update]),
    ]
    for frame in carriers:
        assert wire.decode_host(wire.encode_host(frame)) == frame


@given(st.lists(s.cells, min_size=0, max_size=300))
def test_long_cell_runs_round_trip(cells):
    frame = Snapshot(1, Lane.FOREGROUND, 9, False, [Row(1, 2, cells), RowSegment(3, 4, 5, cells)])
    assert wire.decode_host(wire.encode_host(frame)).updates == frame.updates


def test_lists_and_tuples_build_equal_frames():
    a = Snapshot(1, Lane.FOREGROUND, 2, False, [Row(1, 2, [3, 4])])
    b = Snapshot(1, Lane.FOREGROUND, 2, False, (Row(1, 2, (3, 4)),))
    assert a == b and hash(a) == hash(b)
    assert Extension("a", "b", bytearray(b"x")).payload == b"x"
    assert SyncConfig([LaneBudget(Lane.HISTORY, 1)]).snapshot_budgets == (
        LaneBudget(Lane.HISTORY, 1),
    )


# --- decoder strictness --------------------------------------------------------------------


def test_varint_decoding_rules():
    assert wire.decode_host(h("40 80 00 00")) == Heartbeat(0, 0)  # non-minimal accepted
    max64 = "ff ff ff ff ff ff ff ff ff 01"
    assert wire.decode_host(h(f"40 {max64} 00")) == Heartbeat((1 << 64) - 1, 0)
    # A 10th byte with more bits than fit in 64: the extra bits are dropped, as upstream.
    assert wire.decode_host(h("40 ff ff ff ff ff ff ff ff ff 7f 00")).seq == (1 << 64) - 1
    with pytest.raises(WireError, match="overflow"):
        wire.decode_host(h("40 ff ff ff ff ff ff ff ff ff 81 00 00"))
    with pytest.raises(WireError, match="end of frame"):
        wire.decode_host(h("40 80"))


def test_u32_fields_are_range_checked():
    assert wire.decode_host(h("42 ff ff ff ff 0f 00 00")).cols == (1 << 32) - 1
    with pytest.raises(WireError, match="u32"):
        wire.decode_host(h("42 80 80 80 80 10 00 00"))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "end of frame"),
        ("20", "version"),
        ("60 00 00", "version"),
        ("e0", "version"),
        ("4b", "unknown host frame kind 11"),
        ("5f", "unknown host frame kind 31"),
        ("43 01 03 00 00 00", "lane"),
        ("44 01 03", "lane"),
        ("45 01 00 02 00", "bool"),
        ("45 01 00 00 01 06", "update tag"),
        ("45 01 00 00 00 02", "bool"),  # cursor-presence byte must be 0 or 1
        ("45 01 00 00 00 01 00 00 00 02 00", "bool"),  # cursor.visible
        ("45 01 00 00 02 04 00 00 00", "end of frame"),  # declares 2 updates, has 1
        ("43 01 00 00 00 01 02 00 00 05 01 02", "end of frame"),  # row with 5 cells, has 2
        ("41 00 00 01 03 00 00 00 00", "lane"),  # SyncConfig budget lane
        ("4a 02 ff fe 00 00", "UTF-8"),
        ("4a 01 61 05 62", "end of frame"),
        ("49 01 00 00 00 01", "end of frame"),
    ],
)
def test_bad_host_frames(raw, match):
    with pytest.raises(WireError, match=match):
        wire.decode_host(h(raw))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("40 01 05 61", "end of frame"),
        ("43 01", "viewport command"),
        ("43", "end of frame"),
        ("45", "unknown client frame kind 5"),
        ("5e", "unknown client frame kind 30"),
        ("44 01 61 01 62 02 63", "end of frame"),
        ("44 01 80 00 00", "UTF-8"),
    ],
)
def test_bad_client_frames(raw, match):
    with pytest.raises(WireError, match=match):
        wire.decode_client(h(raw))


def test_tolerated_tails():
    assert wire.decode_host(h("42 50 18 00")) == Grid(80, 24, 0, None)
    assert wire.decode_host(h("45 01 39 00 00")) == Delta(1, 57, False, ())  # no presence byte
    assert wire.decode_host(h("40 01 02 ff ff")) == Heartbeat(1, 2)  # trailing ignored
    assert wire.decode_client(h("41 f0 a2 04 18")) == Resize(70000 & 0xFFFF, 24)  # u16 truncation
    assert wire.decode_client(h("5f 01 02")) == Unknown()
    assert wire.decode_client(h("43 00")) == ViewportCommand()
    assert wire.decode_host(h("47")) == Shutdown()


def test_decoders_reject_non_bytes():
    for decode in (wire.decode_host, wire.decode_client, wire.decode_from_host):
        with pytest.raises(WireError):
            decode("40 00")  # type: ignore[arg-type]
    assert wire.decode_host(bytearray(h("47"))) == Shutdown()
    assert wire.decode_from_host(memoryview(h("47"))) == Shutdown()
    assert wire.decode_client(bytearray(h("5f"))) == Unknown()


# --- encoder strictness --------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        Heartbeat(-1, 0),
        Heartbeat(1 << 64, 0),
        Heartbeat(1.5, 0),
        Heartbeat("1", 0),
        Grid(1 << 32, 0, 0),
        Grid(1, 1, 1, 1 << 32),
        SnapshotComplete(1, 3),
        Snapshot(1, Lane.FOREGROUND, 1, 2, []),
        Delta(1, 1, False, [Style(1, 1, 1, 1, 256)]),
        Delta(1, 1, False, [Style(1, 1, 1, 1, -1)]),
        Delta(1, 1, False, [Row(1, 1, [1 << 64])]),
        Delta(1, 1, False, [Row(1, 1, [-5])]),
        Delta(1, 1, False, [Row(1, 1, ["x"])]),
        Delta(1, 1, False, [Trim(1 << 32, 0, 0)]),
        Delta(1, 1, False, ["not an update"]),
        Extension("\ud800", "k", b""),
        Input(1, b"x"),
    ],
)
def test_encode_host_rejects_bad_values(frame):
    with pytest.raises(WireError):
        wire.encode_host(frame)


@pytest.mark.parametrize(
    "frame",
    [
        Resize(65536, 1),
        Resize(-1, 1),
        ViewportCommand(1),
        RequestBackfill(1, 1, 1, 1 << 32),
        Heartbeat(1, 1),
        Input(-1, b""),
        Extension(None, "k", b""),
    ],
)
def test_encode_client_rejects_bad_values(frame):
    with pytest.raises(WireError):
        wire.encode_client(frame)


def test_every_update_tag_encodes_as_documented():
    frame = Delta(
        0,
        0,
        False,
        [
            Cell(1, 2, 3, 4),
            Rect(1, 2, 3, 4, 5, 6),
            Row(1, 2, [3]),
            RowSegment(1, 2, 3, [4, 5]),
            Trim(1, 2, 3),
            Style(1, 2, 3, 4, 0xFF),
        ],
    )
    assert wire.encode_host(frame) == h(
        "45 00 00 00 06"
        " 00 01 02 03 04"
        " 01 01 02 03 04 05 06"
        " 02 01 02 01 03"
        " 03 01 02 03 02 04 05"
        " 04 01 02 03"
        " 05 01 02 03 04 ff"
        " 00"
    )


def test_history_backfill_and_cursor_layout():
    frame = HistoryBackfill(1, 2, 3, 4, True, [], CursorFrame(5, 6, 7, False, True))
    assert wire.encode_host(frame) == h("48 01 02 03 04 01 00 01 05 06 07 00 01")
    assert wire.encode_host(wire.Cursor(1, CursorFrame(5, 6, 7))) == h("49 01 05 06 07 01 01")
    assert wire.encode_client(Unknown()) == h("5f")
    assert wire.encode_client(ViewportCommand()) == h("43 00")
    assert wire.encode_host(Shutdown()) == h("47")
    assert wire.encode_host(wire.InputAck(300)) == h("46 ac 02")


# --- whole-run cell decoding (_cellruns) ---------------------------------------------------


@st.composite
def uniform_runs(draw):
    width = draw(st.integers(1, 10))
    low = 0 if width == 1 else 1 << (7 * (width - 1))
    high = min((1 << (7 * width)) - 1, (1 << 64) - 1)
    return draw(st.lists(st.integers(low, high), min_size=1, max_size=1300))


@settings(max_examples=60, deadline=None)
@given(uniform_runs(), st.data())
def test_uniform_and_mixed_cell_runs_decode_like_cell_by_cell(cells, data):
    if data.draw(st.booleans()):  # break uniformity somewhere
        at = data.draw(st.integers(0, len(cells) - 1))
        cells[at] = data.draw(s.u64)
    frame = Delta(1, 2, False, [Row(3, 4, cells), RowSegment(5, 6, 7, cells[::-1])])
    raw = wire.encode_host(frame)
    assert raw[8 : 8 + len(wire.varint(len(cells)))] == wire.varint(len(cells))
    assert wire.decode_host(raw) == frame
    run = b"".join(wire.varint(c) for c in cells)
    result = _cellruns.decode_uniform(b"\x00" + run + b"\x01", 1, len(cells))
    assert result is None or result == (tuple(cells), 1 + len(run))
    widths = {len(wire.varint(c)) for c in cells}
    assert (result is not None) == (len(widths) == 1 and max(widths) <= 8)
