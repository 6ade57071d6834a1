"""0xA1 framing: reference vectors, chunking, reassembly in any order, caps, dedup, MAC."""

from __future__ import annotations

import hashlib
import hmac
import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import envelope, framing
from beachmanager.protocol.errors import ProtocolError
from beachmanager.protocol.framing import FramingError, MacConfig, Reassembler
from tests.support.clock import FakeClock
from tests.unit.protocol.support import ACTION_FRAME, READY_CHUNK, h


def header(ns: bytes, kind: bytes, seq: int, total: int, index: int, count: int, crc: int) -> bytes:
    return (
        bytes((0xA1, 0, len(ns), len(kind)))
        + ns
        + kind
        + struct.pack(">QIHHI", seq, total, index, count, crc)
    )


# --- reference vectors ---------------------------------------------------------------------


def test_ready_chunk_is_the_54_byte_reference_vector():
    chunks = framing.encode("sync", "text", 0, envelope.encode("text", 0, "__ready__"))
    assert chunks == [READY_CHUNK]
    assert len(READY_CHUNK) == 54
    msg = Reassembler(FakeClock()).feed(READY_CHUNK)
    assert (msg.namespace, msg.kind, msg.seq, msg.total_len) == ("sync", "text", 0, 22)
    assert envelope.decode(msg.payload).data == b"__ready__"


def test_example_a_framed_chunk():
    inner = envelope.encode("binary", 0, ACTION_FRAME)
    assert inner[:13] == h("01 00 00 00 00 00 00 00 00 00 00 00 98")
    (chunk,) = framing.encode("sync", "binary", 0, inner)
    assert len(chunk) == 199
    assert chunk[:34] == (
        h("a1 00 04 06") + b"syncbinary" + bytes(8) + h("00 00 00 a5 00 00 00 01 fa fc ba fd")
    )
    assert chunk[34:] == inner


def test_crc32c_check_value():
    assert framing.crc32c(b"123456789") == 0xE3069283


# --- encoding ------------------------------------------------------------------------------


def test_chunking_splits_at_chunk_size_and_repeats_crc_and_total():
    payload = bytes(range(256)) * 5  # 1280 bytes
    chunks = framing.encode("sync", "binary", 7, payload, chunk_size=512)
    assert len(chunks) == 3
    crc = framing.crc32c(payload)
    for i, (chunk, size) in enumerate(zip(chunks, (512, 512, 256), strict=True)):
        parsed = framing.parse_chunk(chunk)
        assert (parsed.seq, parsed.total_len, parsed.chunk_index, parsed.chunk_count) == (
            7,
            1280,
            i,
            3,
        )
        assert parsed.crc32c == crc
        assert parsed.payload == payload[512 * i : 512 * i + size]


def test_empty_payload_is_one_chunk():
    (chunk,) = framing.encode("sync", "text", 1, b"")
    assert chunk == header(b"sync", b"text", 1, 0, 0, 1, 0)
    msg = Reassembler(FakeClock()).feed(chunk)
    assert msg.payload == b"" and msg.seq == 1


@pytest.mark.parametrize(
    "args",
    [
        ("", "text", 0, b"x"),
        ("n" * 256, "text", 0, b"x"),
        ("sync", "", 0, b"x"),
        ("sync", "k" * 256, 0, b"x"),
        ("sync", "text", -1, b"x"),
        ("sync", "text", 1 << 64, b"x"),
        ("sync", "text", "1", b"x"),
        ("sync", "text", 0, "not bytes"),
    ],
)
def test_encode_rejects_bad_arguments(args):
    with pytest.raises(FramingError):
        framing.encode(*args)


def test_encode_rejects_small_chunk_size_and_too_many_chunks():
    with pytest.raises(FramingError):
        framing.encode("sync", "binary", 0, b"x", chunk_size=511)
    with pytest.raises(FramingError, match="65535"):
        framing.encode("sync", "binary", 0, bytes(512 * 65535 + 1), chunk_size=512)
    assert len(framing.encode("sync", "binary", 0, bytes(512 * 3), chunk_size=512)) == 3


def test_errors_share_the_protocol_base():
    assert issubclass(FramingError, ProtocolError)
    assert issubclass(ProtocolError, ValueError)


# --- reassembly ----------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=6000),
    chunk_size=st.integers(512, 1500),
    seq=st.integers(0, (1 << 64) - 1),
    data=st.data(),
)
def test_any_order_with_duplicates_yields_the_message_once(payload, chunk_size, seq, data):
    chunks = framing.encode("sync", "binary", seq, payload, chunk_size=chunk_size)
    extra = data.draw(st.lists(st.sampled_from(chunks), max_size=len(chunks)))
    order = data.draw(st.permutations(chunks + extra))
    r = Reassembler(FakeClock(), chunk_size=chunk_size)
    out = [m for m in map(r.feed, order) if m is not None]
    assert len(out) == 1
    assert (out[0].namespace, out[0].kind, out[0].seq, out[0].payload) == (
        "sync",
        "binary",
        seq,
        payload,
    )
    assert r.inflight_messages == 0 and r.inflight_bytes == 0


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(min_size=1025, max_size=5000), data=st.data())
def test_missing_chunk_never_completes_and_times_out(payload, data):
    chunks = framing.encode("sync", "binary", 3, payload, chunk_size=512)
    missing = data.draw(st.integers(0, len(chunks) - 1))
    rest = chunks[:missing] + chunks[missing + 1 :]
    clock = FakeClock()
    r = Reassembler(clock, chunk_size=512)
    assert [r.feed(c) for c in data.draw(st.permutations(rest))] == [None] * len(rest)
    assert r.inflight_messages == 1
    assert r.inflight_bytes == len(payload) - len(framing.parse_chunk(chunks[missing]).payload)
    clock.advance(5.001)
    r.gc()
    assert (r.inflight_messages, r.inflight_bytes, r.expired) == (0, 0, 1)
    # The late chunk starts a fresh partial message instead of completing the old one.
    assert r.feed(chunks[missing]) is None


def test_partial_survives_exactly_the_timeout():
    clock = FakeClock()
    r = Reassembler(clock)
    a, b = framing.encode("sync", "binary", 1, bytes(20000))
    r.feed(a)
    clock.advance(5.0)
    assert r.feed(b).payload == bytes(20000)


def test_interleaved_messages_reassemble_independently():
    r = Reassembler(FakeClock(), chunk_size=512)
    m1 = framing.encode("sync", "binary", 1, b"a" * 1500, chunk_size=512)
    m2 = framing.encode("sync", "text", 1, b"b" * 1500, chunk_size=512)  # same seq, other kind
    m3 = framing.encode("other", "binary", 1, b"c" * 700, chunk_size=512)
    out = []
    for trio in zip(m1, m2, m3 + [None], strict=True):
        out += [r.feed(c) for c in trio if c is not None]
    done = {(m.namespace, m.kind): m.payload for m in out if m}
    assert done == {
        ("sync", "binary"): b"a" * 1500,
        ("sync", "text"): b"b" * 1500,
        ("other", "binary"): b"c" * 700,
    }


def test_duplicate_message_dropped_within_window_then_accepted_after_timeout():
    clock = FakeClock()
    r = Reassembler(clock)
    (chunk,) = framing.encode("sync", "binary", 9, b"hello")
    assert r.feed(chunk).payload == b"hello"
    clock.advance(4.9)
    assert r.feed(chunk) is None
    assert r.duplicates == 1
    clock.advance(0.2)  # 5.1 s after delivery: forgotten
    assert r.feed(chunk).payload == b"hello"


def test_duplicate_window_holds_the_last_256_messages():
    r = Reassembler(FakeClock())
    first = framing.encode("sync", "binary", 0, b"x")[0]
    r.feed(first)
    for seq in range(1, 256):
        r.feed(framing.encode("sync", "binary", seq, b"x")[0])
    assert r.feed(first) is None  # still among the last 256
    r.feed(framing.encode("sync", "binary", 256, b"x")[0])
    assert r.feed(first) is not None  # pushed out by the 257th


def test_duplicate_of_a_multichunk_message_is_dropped():
    r = Reassembler(FakeClock(), chunk_size=512)
    chunks = framing.encode("sync", "binary", 4, bytes(1200), chunk_size=512)
    assert [r.feed(c) is not None for c in chunks] == [False, False, True]
    assert [r.feed(c) for c in chunks] == [None, None, None]
    assert r.inflight_messages == 0


def test_inflight_message_cap_evicts_the_oldest():
    clock = FakeClock()
    r = Reassembler(clock, chunk_size=512)
    firsts, seconds = [], []
    for seq in range(513):
        a, b = framing.encode("sync", "binary", seq, bytes(600), chunk_size=512)
        firsts.append(a)
        seconds.append(b)
        clock.advance(0.001)
        assert r.feed(a) is None
    assert r.inflight_messages == 512
    assert r.evicted == 1
    assert r.feed(seconds[0]) is None  # seq 0 was evicted: this starts over
    assert r.feed(seconds[5]).seq == 5


def test_inflight_byte_cap_evicts_the_oldest():
    clock = FakeClock()
    r = Reassembler(clock, max_inflight=1000)
    halves = []
    for seq in range(600):  # each partial holds 14336 bytes: 600 of them exceed 8 MiB
        first, second = framing.encode("sync", "binary", seq, bytes(28672))
        halves.append(second)
        clock.advance(0.001)
        r.feed(first)
        assert r.inflight_bytes <= 8 * 1024 * 1024
    assert r.inflight_messages == (8 * 1024 * 1024) // 14336
    assert r.evicted == 600 - r.inflight_messages
    assert r.feed(halves[0]) is None
    assert r.feed(halves[-1]).seq == 599


def test_header_claiming_4_gib_allocates_nothing():
    chunk = header(b"sync", b"binary", 1, 0xFFFFFFFF, 0, 0xFFFF, 0) + b"tiny"
    r = Reassembler(FakeClock())
    tracemalloc.start()
    try:
        for index in range(200):
            c = bytearray(chunk)
            struct.pack_into(">H", c, 4 + 10 + 12, index)
            assert r.feed(bytes(c)) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.inflight_bytes == 200 * 4
    assert peak < 256 * 1024


@pytest.mark.parametrize(
    ("chunk", "match"),
    [
        (b"", "too short"),
        (b"\xa1", "too short"),
        (b"\xa2\x00\x04\x04synctext" + bytes(20), "version"),
        (b"\xa1\x00\x00\x04text" + bytes(20), "namespace length"),
        (b"\xa1\x00\x04\x00sync" + bytes(20), "kind length"),
        (b"\xa1\x00\x04\x04synctext" + bytes(19), "too short"),
        (b"\xa1\x00\x04\x04\xff\xfe\xfd\xfctext" + bytes(20), "UTF-8"),
        (header(b"sync", b"text", 0, 0, 0, 0, 0), "index/count"),
        (header(b"sync", b"text", 0, 0, 2, 2, 0), "index/count"),
        (header(b"sync", b"text", 0, 2, 0, 1, 0) + b"abc", "exceeds total"),
        (header(b"sync", b"text", 0, 5, 0, 1, 0) + b"abc", "length mismatch"),
        (header(b"sync", b"text", 0, 3, 0, 1, 0) + b"abc", "crc"),
        (
            b"\xa1\x01\x01\x04\x04synctext" + struct.pack(">QIHHI", 0, 0, 0, 1, 0) + bytes(31),
            "missing payload",
        ),
    ],
)
def test_bad_chunks_raise_framing_error(chunk, match):
    with pytest.raises(FramingError, match=match):
        Reassembler(FakeClock()).feed(chunk)


def test_chunk_larger_than_receiver_chunk_size_is_rejected():
    (chunk,) = framing.encode("sync", "binary", 0, bytes(1000), chunk_size=1000)
    with pytest.raises(FramingError, match="chunk size"):
        Reassembler(FakeClock(), chunk_size=512).feed(chunk)


def test_inconsistent_chunk_count_discards_the_partial():
    r = Reassembler(FakeClock(), chunk_size=512)
    a, b, _ = framing.encode("sync", "binary", 1, bytes(1200), chunk_size=512)
    r.feed(a)
    other = bytearray(b)
    struct.pack_into(">H", other, 4 + 10 + 14, 4)  # chunk_count 3 -> 4
    with pytest.raises(FramingError, match="changed"):
        r.feed(bytes(other))
    assert (r.inflight_messages, r.inflight_bytes) == (0, 0)


def test_received_bytes_beyond_total_len_discard_the_partial():
    r = Reassembler(FakeClock())
    crc = 0
    r.feed(header(b"sync", b"binary", 1, 600, 0, 2, crc) + bytes(512))
    with pytest.raises(FramingError, match="exceed"):
        r.feed(header(b"sync", b"binary", 1, 600, 1, 2, crc) + bytes(512))
    assert (r.inflight_messages, r.inflight_bytes) == (0, 0)


def test_crc_failure_on_a_multichunk_message():
    r = Reassembler(FakeClock(), chunk_size=512)
    a, b = framing.encode("sync", "binary", 1, bytes(1000), chunk_size=512)
    bad = b[:-1] + b"\x01"
    r.feed(a)
    with pytest.raises(FramingError, match="crc"):
        r.feed(bad)
    assert r.inflight_messages == 0


def test_reassembler_rejects_bad_limits():
    with pytest.raises(FramingError):
        Reassembler(FakeClock(), chunk_size=100)
    with pytest.raises(FramingError):
        Reassembler(FakeClock(), max_bytes=10)
    with pytest.raises(TypeError):
        Reassembler()  # no default clock: time is always injected


# --- MAC -----------------------------------------------------------------------------------

KEY = bytes(range(32))


def test_mac_layout_and_tag():
    mac = MacConfig.single(KEY, key_id=7)
    (chunk,) = framing.encode("sync", "text", 5, b"hi", mac=mac)
    assert chunk[:3] == b"\xa1\x01\x07"
    assert chunk[3:5] == b"\x04\x04"
    expected = hmac.new(
        KEY, b"\xa1\x04sync\x04text" + struct.pack(">QI", 5, 2) + b"hi", hashlib.sha256
    ).digest()
    assert chunk[-32:] == expected
    assert chunk[-34:-32] == b"hi"
    parsed = framing.parse_chunk(chunk)
    assert (parsed.mac_key_id, parsed.mac_tag, parsed.payload) == (7, expected, b"hi")


def test_mac_round_trip_multichunk_and_tamper():
    mac = MacConfig({2: KEY, 3: b"other"}, active_key_id=2)
    chunks = framing.encode("sync", "binary", 1, bytes(range(256)) * 8, chunk_size=512, mac=mac)
    r = Reassembler(FakeClock(), chunk_size=512, mac=mac)
    results = [r.feed(c) for c in reversed(chunks)]
    assert results[-1].payload == bytes(range(256)) * 8
    tampered = framing.encode("sync", "binary", 2, b"abc", mac=mac)[0]
    tampered = tampered[:-1] + bytes([tampered[-1] ^ 1])
    with pytest.raises(FramingError, match="mac verification"):
        r.feed(tampered)


def test_mac_flag_without_keys_or_with_unknown_key_fails():
    (chunk,) = framing.encode("sync", "text", 1, b"x", mac=MacConfig.single(KEY, 9))
    with pytest.raises(FramingError, match="no MAC keys"):
        Reassembler(FakeClock()).feed(chunk)
    with pytest.raises(FramingError, match="unknown"):
        Reassembler(FakeClock(), mac=MacConfig.single(KEY, 1)).feed(chunk)


def test_unflagged_chunk_accepted_when_keys_configured():
    (chunk,) = framing.encode("sync", "text", 1, b"x")
    assert Reassembler(FakeClock(), mac=MacConfig.single(KEY)).feed(chunk).payload == b"x"


def test_mac_config_without_active_key_sends_plain():
    mac = MacConfig({1: KEY})
    (chunk,) = framing.encode("sync", "text", 1, b"x", mac=mac)
    assert chunk[1] == 0


def test_mac_config_from_env():
    assert MacConfig.from_env({}) is None
    cfg = MacConfig.from_env({"BEACH_FRAMED_MAC_KEYS": "3:00ff, junk, 4:zz, 5:0102"})
    assert cfg.keys == {3: b"\x00\xff", 5: b"\x01\x02"}
    assert cfg.active_key_id == 3
    cfg = MacConfig.from_env(
        {"BEACH_FRAMED_MAC_KEYS": "3:00ff,5:0102", "BEACH_FRAMED_MAC_ACTIVE_ID": "5"}
    )
    assert cfg.active_key_id == 5
    cfg = MacConfig.from_env({"BEACH_FRAMED_MAC_KEY": "abcd"})
    assert (cfg.keys, cfg.active_key_id) == ({1: b"\xab\xcd"}, 1)
    cfg = MacConfig.from_env({"BEACH_FRAMED_MAC_KEY": "abcd", "BEACH_FRAMED_MAC_KEY_ID": "4"})
    assert cfg.active_key_id == 4
    assert MacConfig.from_env({"BEACH_FRAMED_MAC_KEYS": "bad"}) is None
    with pytest.raises(FramingError):
        MacConfig({1: KEY}, active_key_id=2)
    with pytest.raises(FramingError):
        MacConfig({300: KEY})
