"""Outbound/Inbound pipelines and the extension helpers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import envelope, extensions, framing, wire
from beachmanager.protocol.channel import READY, Inbound, Outbound, Received
from beachmanager.protocol.envelope import EnvelopeError
from beachmanager.protocol.framing import FramingError, MacConfig
from tests.support.clock import FakeClock
from tests.unit.protocol.support import ACTION_FRAME, ACTION_JSON, READY_CHUNK, h


def test_first_message_is_the_ready_vector():
    assert Outbound().text(READY) == [READY_CHUNK]


def test_example_a_through_the_pipeline():
    out = Outbound()
    out.text(READY)  # seq 0
    (chunk,) = out.client_frame(wire.Extension("manager", "beach.manager.action", ACTION_JSON))
    parsed = framing.parse_chunk(chunk)
    assert (parsed.namespace, parsed.kind, parsed.seq, parsed.total_len) == (
        "sync",
        "binary",
        1,
        165,
    )
    inner = envelope.decode(parsed.payload)
    assert (inner.kind, inner.seq, inner.data) == ("binary", 1, ACTION_FRAME)


def test_text_and_binary_share_one_counter_written_in_both_headers():
    out = Outbound()
    inbound = Inbound(FakeClock())
    kinds = ["text", "binary", "binary", "text"]
    got = []
    for i, kind in enumerate(kinds):
        (chunk,) = out.send(kind, b"m%d" % i)
        assert framing.parse_chunk(chunk).seq == i
        got.append(inbound.feed(chunk))
    assert got == [Received("sync", k, i, b"m%d" % i) for i, k in enumerate(kinds)]
    assert out.next_seq() == 4


def test_other_namespaces_count_separately():
    out = Outbound()
    out.text("a")
    (c0,) = out.namespaced("controller", "input", b"x")
    (c1,) = out.namespaced("controller", "ack", b"y")
    assert [framing.parse_chunk(c).seq for c in (c0, c1)] == [0, 1]
    assert out.next_seq("sync") == 1 and out.next_seq("controller") == 2
    received = Inbound(FakeClock()).feed(c1)
    assert received == Received("controller", "ack", 1, b"y")
    assert not received.is_text
    with pytest.raises(FramingError):
        out.namespaced("sync", "text", b"")


def test_bad_send_does_not_consume_a_seq():
    out = Outbound()
    with pytest.raises(EnvelopeError):
        out.send("json", b"")
    with pytest.raises(EnvelopeError):
        out.send("text", b"\xff")
    assert out.next_seq() == 0
    (chunk,) = out.send(0, "int kinds map to names")
    assert framing.parse_chunk(chunk).kind == "text"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=6), st.randoms())
def test_pipeline_round_trip_shuffled(payloads, rnd):
    out = Outbound(chunk_size=512)
    chunks = [c for p in payloads for c in out.binary(p)]
    rnd.shuffle(chunks)
    inbound = Inbound(FakeClock(), chunk_size=512)
    got = [m for m in map(inbound.feed, chunks) if m is not None]
    assert sorted((m.seq, m.data) for m in got) == list(enumerate(payloads))


def test_frames_decode_from_received():
    out = Outbound()
    inbound = Inbound(FakeClock())
    (chunk,) = out.host_frame(wire.Heartbeat(3, 99))
    assert inbound.feed(chunk).host_frame() == wire.Heartbeat(3, 99)
    (chunk,) = out.client_frame(wire.Input(1, b"ls\r"))
    assert inbound.feed(chunk).client_frame() == wire.Input(1, b"ls\r")
    (chunk,) = out.text("héllo")
    msg = inbound.feed(chunk)
    assert msg.is_text and msg.text == "héllo"


def test_mac_on_both_sides():
    mac = MacConfig.single(b"k" * 32)
    chunks = Outbound(mac=mac).binary(bytes(40000))
    assert all(c[1] == 1 for c in chunks)
    inbound = Inbound(FakeClock(), mac=mac)
    assert [inbound.feed(c) is not None for c in chunks] == [False, False, True]
    with pytest.raises(FramingError):
        Inbound(FakeClock()).feed(Outbound(mac=mac).text("x")[0])  # flagged, no keys here


def test_inbound_surfaces_envelope_errors():
    (bad,) = framing.encode("sync", "binary", 0, b"\x07" + bytes(12))
    with pytest.raises(EnvelopeError):
        Inbound(FakeClock()).feed(bad)


def test_inbound_times_out_partials_on_its_clock():
    clock = FakeClock()
    inbound = Inbound(clock)
    first, _ = Outbound().binary(bytes(20000))
    assert inbound.feed(first) is None
    clock.advance(6)
    inbound.gc()
    assert inbound.reassembler.inflight_messages == 0


# --- extensions ----------------------------------------------------------------------------


def test_extension_topics():
    assert extensions.topic_for("ack") == "beach.manager.ack"
    with pytest.raises(ValueError):
        extensions.topic_for("chunk")
    cases = {
        "beach.manager.action": "action",
        "beach.manager.health": "health",
        "custom.state": "state",
        "controller/input": "action",
        "action": None,
        ".ack": None,
        "beach.manager.other": None,
    }
    for topic, expected in cases.items():
        assert extensions.envelope_type_for_topic(topic) == expected


def test_extension_encodings():
    assert extensions.encode_to_host(extensions.TOPIC_ACTION, ACTION_JSON) == ACTION_FRAME
    head = extensions.encode_from_host(extensions.TOPIC_ACK, b"{}")
    fixed = extensions.encode_from_host(extensions.TOPIC_ACK, b"{}", head_layout=False)
    assert head[0] == 0x44 and fixed[0] == 0x4A and head[1:] == fixed[1:]
    expected = wire.Extension("manager", "beach.manager.ack", b"{}")
    assert wire.decode_from_host(head) == wire.decode_from_host(fixed) == expected
    assert head == h("44 07") + b"manager" + h("11") + b"beach.manager.ack" + h("02") + b"{}"


def test_random_chunk_order_with_interleaved_text():
    rnd = random.Random(5)
    out = Outbound(chunk_size=512)
    big = out.binary(bytes(range(256)) * 10)
    small = out.text("between")
    mixed = big + small
    rnd.shuffle(mixed)
    inbound = Inbound(FakeClock(), chunk_size=512)
    got = {m.seq: m for m in map(inbound.feed, mixed) if m}
    assert got[0].data == bytes(range(256)) * 10 and got[1].text == "between"
