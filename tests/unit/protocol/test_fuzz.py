"""Fuzzing: arbitrary and mutated bytes into every decoder raise only the module's error type,
declared lengths allocate nothing, and pathological inputs stay linear."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beachmanager.protocol import envelope, framing, harness, wire
from beachmanager.protocol.channel import Inbound, Outbound
from beachmanager.protocol.envelope import EnvelopeError
from beachmanager.protocol.errors import ProtocolError
from beachmanager.protocol.framing import FramingError, MacConfig, Reassembler
from beachmanager.protocol.harness import HarnessError
from beachmanager.protocol.wire import WireError
from tests.support.clock import FakeClock
from tests.unit.protocol import strategies as s
from tests.unit.protocol.support import ACTION_JSON, h

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, source):
    """A valid encoding with a few random byte edits, truncations or insertions."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        if op == "cut" and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] = (
                draw(st.integers(0, 255))
                if op == "set"
                else data[at] ^ (1 << draw(st.integers(0, 7)))
            )
    return bytes(data)


def only(error_type, fn, data):
    try:
        return fn(data)
    except error_type:
        return None
    except Exception as exc:  # pragma: no cover - the assertion is the point
        pytest.fail(f"{fn.__qualname__} raised {type(exc).__name__}: {exc!r} for {data!r}")


wire_bytes = st.one_of(
    st.binary(max_size=80),
    mutated(s.host_frames.map(wire.encode_host)),
    mutated(s.client_frames.map(wire.encode_client)),
)


@FUZZ
@given(wire_bytes)
def test_wire_decoders_raise_only_wire_error(data):
    for decode in (wire.decode_host, wire.decode_client, wire.decode_from_host):
        frame = only(WireError, decode, data)
        if frame is not None and decode is wire.decode_host:
            wire.encode_host(frame)  # anything decoded can be encoded again


def _chunks():
    return st.builds(
        lambda ns, kind, seq, payload, mac: framing.encode(
            ns, kind, seq, payload, 512, mac=MacConfig.single(b"k") if mac else None
        )[0],
        st.sampled_from(["sync", "controller", "é"]),
        st.sampled_from(["text", "binary"]),
        s.u64,
        st.binary(max_size=600),
        st.booleans(),
    )


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=60), mutated(_chunks())), max_size=8))
def test_reassembler_raises_only_framing_error(chunks):
    r = Reassembler(FakeClock(), chunk_size=512, mac=MacConfig.single(b"k"))
    for chunk in chunks:
        only(FramingError, framing.parse_chunk, chunk)
        only(FramingError, r.feed, chunk)
    assert r.inflight_bytes == sum(a.size for a in r._assemblies.values())
    assert r.inflight_bytes == sum(len(p) for a in r._assemblies.values() for p in a.parts.values())


envelopes = st.one_of(
    st.builds(envelope.encode, st.just("binary"), s.u64, st.binary(max_size=20)),
    st.builds(envelope.encode, st.just("text"), s.u64, st.text(max_size=10)),
)


@FUZZ
@given(st.one_of(st.binary(max_size=40), mutated(envelopes)))
def test_envelope_decode_raises_only_envelope_error(data):
    only(EnvelopeError, envelope.decode, data)


json_docs = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=60),
    mutated(st.just(ACTION_JSON)),
    mutated(
        st.just(
            b'{"type":"ack","payload":{"id":"a","status":"ok","applied_at":'
            b'{"secs_since_epoch":1,"nanos_since_epoch":2},"latency_ms":3}}'
        )
    ),
    mutated(st.just(b'{"type":"health","payload":[1,0.5,null,false,["w"]]}')),
)


@FUZZ
@given(json_docs)
def test_harness_from_json_raises_only_harness_error(data):
    for cls in (harness.Envelope, harness.ActionCommand, harness.ActionAck, harness.StateDiff):
        value = only(HarnessError, lambda d, cls=cls: harness.from_json(d, cls), data)
        if value is not None:
            assert harness.from_json(harness.to_json(value), cls) == value


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=60), mutated(_chunks())), max_size=6))
def test_inbound_pipeline_raises_only_protocol_errors(chunks):
    inbound = Inbound(FakeClock(), chunk_size=512)
    for chunk in chunks:
        try:
            msg = inbound.feed(chunk)
        except (FramingError, EnvelopeError):
            continue
        if msg is not None:
            only(WireError, lambda m: m.host_frame(), msg)


def test_every_error_type_is_a_protocol_error():
    for error in (FramingError, EnvelopeError, WireError, HarnessError):
        assert issubclass(error, ProtocolError)


# --- declared lengths never allocate -------------------------------------------------------

HUGE_CLAIMS = [
    (wire.decode_client, "40 01 ff ff ff ff 0f 61"),  # Input data of 4 GiB - 1
    (wire.decode_host, "4a ff ff ff ff 0f 61"),  # extension namespace of 4 GiB - 1
    (wire.decode_host, "45 01 00 00 ff ff ff ff 0f 00"),  # 2**32 - 1 updates
    (wire.decode_host, "45 01 00 00 01 02 00 00 ff ff ff ff 0f 00"),  # a row of 2**32 - 1 cells
    (wire.decode_host, "41 01 01 ff ff ff ff 0f 00 00"),  # 2**32 - 1 lane budgets
    (wire.decode_from_host, "44 ff ff ff ff 0f 61"),
    (envelope.decode, "01 00 00 00 00 00 00 00 00 ff ff ff ff 61"),
]


@pytest.mark.parametrize(("decode", "raw"), HUGE_CLAIMS)
def test_huge_declared_lengths_allocate_nothing(decode, raw):
    data = h(raw)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError):
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.timeout(60)
def test_pathological_inputs_stay_linear():
    mib = 1 << 20
    # A megabyte of continuation bytes where a cell run is declared: the regex must fail fast.
    row = h("45 01 00 00 01 02 00 00 ff ff 3f") + b"\x80" * mib
    with pytest.raises(WireError):
        wire.decode_host(row)
    # Almost valid: a long run of 9-byte continuations each closed by a terminator, then junk.
    run = (b"\x80" * 9 + b"\x01") * 20000
    with pytest.raises(WireError):
        wire.decode_host(h("45 01 00 00 01 02 00 00 a1 9c 01") + run + b"\x80" * 11)
    # Many tiny updates.
    many = h("45 01 00 00") + wire.varint(mib // 4) + h("04 00 00 00") * (mib // 4)
    frame = wire.decode_host(many)
    assert len(frame.updates) == mib // 4
    # Deeply nested JSON (serde_json allows 127 levels).
    with pytest.raises(HarnessError):
        harness.from_json(b"[" * 100000 + b"]" * 100000)
    nested = b'{"type":"x","payload":' + b"[" * 126 + b"]" * 126 + b"}"
    assert harness.from_json(nested).type == "x"
    with pytest.raises(HarnessError, match="deep"):
        harness.from_json(nested.replace(b"[", b"[[", 1).replace(b"]", b"]]", 1))
    # A flood of single-chunk messages through the pipeline keeps the dedup window bounded.
    out, inbound = Outbound(), Inbound(FakeClock())
    for _ in range(5000):
        (chunk,) = out.binary(b"x")
        inbound.feed(chunk)
    assert len(inbound.reassembler._recent) == framing.RECENT_HISTORY


def test_json_that_python_accepts_but_serde_does_not():
    for raw in (b"NaN", b'{"type":"x","payload":-Infinity}', b'{"type":"x","payload":1e999}'):
        with pytest.raises(HarnessError):
            harness.from_json(raw)
    assert json.loads(b"NaN") != 0  # Python's default would have accepted it
