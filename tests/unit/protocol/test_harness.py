"""Harness JSON: serde-compatible output, strict input, timestamps, envelopes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import harness as hj
from beachmanager.protocol.harness import (
    AckStatus,
    ActionAck,
    ActionCommand,
    Envelope,
    HarnessError,
    HealthHeartbeat,
    StateDiff,
    Timestamp,
)
from tests.unit.protocol.support import ACTION_JSON

TS = {"secs_since_epoch": 1733300000, "nanos_since_epoch": 123}


def test_example_a_action_envelope_bytes():
    cmd = ActionCommand("a-1", "terminal_write", {"bytes": "echo hi\r"})
    assert hj.to_json(Envelope.wrap(cmd)) == ACTION_JSON
    env = hj.from_json(ACTION_JSON)
    assert env == Envelope("action", cmd)
    assert hj.parse_action_envelope(ACTION_JSON) == cmd


def test_serde_layout_of_each_struct():
    t = Timestamp(1733300000, 123)
    ts = '{"secs_since_epoch":1733300000,"nanos_since_epoch":123}'
    assert (
        hj.to_json(ActionAck("a-1", AckStatus.REJECTED, t, 5, "unsupported_action", "nope"))
        == (
            '{"id":"a-1","status":"rejected","applied_at":' + ts + ',"latency_ms":5,'
            '"error_code":"unsupported_action","error_message":"nope"}'
        ).encode()
    )
    assert (
        hj.to_json(StateDiff(1, t, {"type": "terminal_full", "lines": ["ü"]}))
        == (
            '{"sequence":1,"emitted_at":'
            + ts
            + ',"payload":{"type":"terminal_full","lines":["ü"]}}'
        ).encode()
    )
    assert hj.to_json(HealthHeartbeat(2, 0.5, None, True, ["slow"])) == (
        b'{"queue_depth":2,"cpu_load":0.5,"memory_bytes":null,"degraded":true,"warnings":["slow"]}'
    )
    assert hj.to_json(Envelope.wrap(HealthHeartbeat(0))).startswith(b'{"type":"health","payload":')
    assert hj.to_json(ActionCommand("x", "y", "\x01\t/", Timestamp(1, 2))) == (
        b'{"id":"x","action_type":"y","payload":"\\u0001\\t/","expires_at":'
        b'{"secs_since_epoch":1,"nanos_since_epoch":2}}'
    )


# --- round trips ---------------------------------------------------------------------------

u64 = st.integers(0, (1 << 64) - 1)
timestamps = st.builds(Timestamp, st.integers(0, (1 << 63) - 1), st.integers(0, 999_999_999))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), 1 << 63)
    | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
opt_text = st.none() | st.text(max_size=20)
structs = st.one_of(
    st.builds(
        ActionCommand,
        st.text(max_size=20),
        st.text(max_size=20),
        json_values,
        st.none() | timestamps,
    ),
    st.builds(
        ActionAck,
        st.text(max_size=20),
        st.sampled_from(list(AckStatus)),
        timestamps,
        st.none() | u64,
        opt_text,
        opt_text,
    ),
    st.builds(StateDiff, u64, timestamps, json_values),
    st.builds(
        HealthHeartbeat,
        u64,
        st.none() | st.floats(-1e6, 1e6),
        st.none() | u64,
        st.booleans(),
        st.lists(st.text(max_size=10), max_size=3),
    ),
)


@given(structs)
def test_structs_round_trip_bare_and_in_envelopes(value):
    assert hj.from_json(hj.to_json(value), type(value)) == value
    env = Envelope.wrap(value)
    assert hj.from_json(hj.to_json(env)) == env
    assert json.loads(hj.to_json(env))["type"] == env.type


# --- timestamps ----------------------------------------------------------------------------


def ack_with(applied_at) -> bytes:
    return json.dumps({"id": "a", "status": "ok", "applied_at": applied_at}).encode()


def test_timestamp_forms():
    assert hj.from_json(ack_with(TS), ActionAck).applied_at == Timestamp(1733300000, 123)
    assert hj.from_json(ack_with([5, 6]), ActionAck).applied_at == Timestamp(5, 6)
    assert hj.from_json(ack_with([5, 1_500_000_000]), ActionAck).applied_at == Timestamp(
        6, 500_000_000
    )


@pytest.mark.parametrize(
    "applied_at",
    [
        "2024-12-04T08:13:20Z",
        1733300000000,
        1733300000.5,
        None,
        [1],
        [1, 2, 3],
        [1, -2],
        [-1, 0],
        [1, 1 << 32],
        [1.0, 0],
        {"secs_since_epoch": 1},
        {"nanos_since_epoch": 1},
        {**TS, "extra": 1},
        {"secs_since_epoch": 1, "nanos_since_epoch": True},
        [(1 << 63), 0],
        [(1 << 63) - 1, 1_000_000_000],
    ],
)
def test_bad_timestamps(applied_at):
    with pytest.raises(HarnessError):
        hj.from_json(ack_with(applied_at), ActionAck)


def test_duplicate_timestamp_key_rejected():
    raw = b'{"id":"a","status":"ok","applied_at":{"secs_since_epoch":1,"secs_since_epoch":2,"nanos_since_epoch":0}}'
    with pytest.raises(HarnessError, match="duplicate"):
        hj.from_json(raw, ActionAck)


def test_timestamp_helpers():
    t = Timestamp.from_seconds(1733300000.25)
    assert t == Timestamp(1733300000, 250_000_000)
    assert t.to_millis() == 1733300000250
    assert t.to_seconds() == pytest.approx(1733300000.25)
    assert Timestamp.now(lambda: 2.5) == Timestamp(2, 500_000_000)
    assert Timestamp(1, 2_000_000_001) == Timestamp(3, 1)
    with pytest.raises(HarnessError):
        Timestamp.from_seconds(-1)
    with pytest.raises(HarnessError):
        Timestamp(-1)
    assert hj.to_value(Timestamp(1, 2)) == {"secs_since_epoch": 1, "nanos_since_epoch": 2}
    assert hj.from_value([1, 2], Timestamp) == Timestamp(1, 2)


# --- struct strictness ---------------------------------------------------------------------


def test_unknown_fields_ignored_and_options_default_to_none():
    raw = b'{"id":"a","action_type":"t","payload":null,"new_field":[1,2],"id2":1}'
    assert hj.from_json(raw, ActionCommand) == ActionCommand("a", "t", None, None)
    raw = b'{"queue_depth":1,"degraded":false,"warnings":[],"x":{"y":1}}'
    assert hj.from_json(raw, HealthHeartbeat) == HealthHeartbeat(1)
    raw = b'{"id":"a","status":"expired","applied_at":[1,2],"latency_ms":null}'
    assert hj.from_json(raw, ActionAck) == ActionAck("a", AckStatus.EXPIRED, Timestamp(1, 2))


def test_duplicate_unknown_keys_are_fine_but_known_ones_fail():
    assert hj.from_json(b'{"id":"a","action_type":"t","payload":1,"z":1,"z":2}', ActionCommand)
    with pytest.raises(HarnessError, match="duplicate"):
        hj.from_json(b'{"id":"a","id":"b","action_type":"t","payload":1}', ActionCommand)


@pytest.mark.parametrize(
    ("raw", "cls"),
    [
        (b'{"action_type":"t","payload":1}', ActionCommand),  # missing id
        (b'{"id":"a","action_type":"t"}', ActionCommand),  # missing payload
        (b'{"id":1,"action_type":"t","payload":1}', ActionCommand),
        (b'{"id":"a","action_type":"t","payload":1,"expires_at":"soon"}', ActionCommand),
        (b'{"id":"a","status":"OK","applied_at":[1,2]}', ActionAck),
        (b'{"id":"a","status":"ok"}', ActionAck),
        (b'{"id":"a","status":"ok","applied_at":[1,2],"latency_ms":1.0}', ActionAck),
        (b'{"id":"a","status":"ok","applied_at":[1,2],"latency_ms":-1}', ActionAck),
        (b'{"id":"a","status":"ok","applied_at":[1,2],"error_code":5}', ActionAck),
        (b'{"sequence":true,"emitted_at":[1,2],"payload":{}}', StateDiff),
        (b'{"sequence":18446744073709551616,"emitted_at":[1,2],"payload":{}}', StateDiff),
        (b'{"sequence":1,"emitted_at":[1,2]}', StateDiff),
        (b'{"queue_depth":1,"degraded":false}', HealthHeartbeat),
        (b'{"queue_depth":1,"degraded":0,"warnings":[]}', HealthHeartbeat),
        (b'{"queue_depth":1,"degraded":false,"warnings":[1]}', HealthHeartbeat),
        (b'{"queue_depth":1,"degraded":false,"warnings":"w"}', HealthHeartbeat),
        (b'{"queue_depth":1,"cpu_load":"1","degraded":false,"warnings":[]}', HealthHeartbeat),
        (b'{"queue_depth":1,"cpu_load":NaN,"degraded":false,"warnings":[]}', HealthHeartbeat),
        (b'{"queue_depth":1,"cpu_load":1e400,"degraded":false,"warnings":[]}', HealthHeartbeat),
        (b'{"queue_depth":1,"cpu_load":Infinity,"degraded":false,"warnings":[]}', HealthHeartbeat),
        (b"[1]", HealthHeartbeat),
        (b'"a string"', ActionCommand),
        (b'{"id":"\\ud800","action_type":"t","payload":1}', ActionCommand),
        (b'{"id":"a","action_type":"t","payload":"\\udc00x"}', ActionCommand),
        (b"\xff", ActionCommand),
        (b"", ActionCommand),
        (b'{"id":"a","action_type":"t","payload":1} x', ActionCommand),
        (b'{"type":"action"}', Envelope),
        (b'{"payload":{}}', Envelope),
        (b'{"type":1,"payload":{}}', Envelope),
        (b'{"type":"ack","payload":{}}', Envelope),
        (b'\xef\xbb\xbf{"type":"x","payload":1}', Envelope),
    ],
)
def test_bad_structs(raw, cls):
    with pytest.raises(HarnessError):
        hj.from_json(raw, cls)


def test_accepted_edge_values():
    raw = b'{"queue_depth":18446744073709551615,"cpu_load":1,"degraded":false,"warnings":[]}'
    hb = hj.from_json(raw, HealthHeartbeat)
    assert hb.queue_depth == (1 << 64) - 1 and hb.cpu_load == 1.0
    assert (
        hj.from_json(
            b'{"id":"\\u00e9\\ud83d\\ude00","action_type":"t","payload":1}', ActionCommand
        ).id
        == "é😀"
    )
    assert hj.from_json(' {"type":"x","payload":1} ') == Envelope("x", 1)


def test_structs_as_positional_arrays():
    assert hj.from_json(b'["a","t",{"k":1},null]', ActionCommand) == ActionCommand(
        "a", "t", {"k": 1}
    )
    assert hj.from_json(b'["state",[1,[1,2],null]]') == Envelope(
        "state", StateDiff(1, Timestamp(1, 2))
    )
    with pytest.raises(HarnessError):
        hj.from_json(b'["a","t",{"k":1}]', ActionCommand)


# --- envelopes -----------------------------------------------------------------------------


def test_unknown_envelope_type_keeps_raw_payload():
    env = hj.from_json(b'{"type":"chunk","payload":{"index":0},"version":1}')
    assert env == Envelope("chunk", {"index": 0})
    assert hj.to_json(env) == b'{"type":"chunk","payload":{"index":0}}'


def test_envelope_type_must_match_payload():
    with pytest.raises(HarnessError):
        hj.to_json(Envelope("ack", ActionCommand("a", "t")))
    with pytest.raises(HarnessError, match="action envelope"):
        hj.parse_action_envelope(hj.to_json(Envelope.wrap(HealthHeartbeat(1))))


@pytest.mark.parametrize(
    "value",
    [
        ActionCommand(1, "t"),
        ActionCommand("a", "t", float("nan")),
        ActionCommand("a", "t", object()),
        ActionCommand("a", "t", "\ud800"),
        ActionAck("a", "fine", Timestamp(1)),
        ActionAck("a", "ok", 5),
        StateDiff(-1, Timestamp(1)),
        HealthHeartbeat(1, cpu_load=float("inf")),
        HealthHeartbeat(1, degraded=1),
        HealthHeartbeat(True),
        "not a struct",
    ],
)
def test_to_json_rejects_bad_values(value):
    with pytest.raises(HarnessError):
        hj.to_json(value)


def test_from_json_rejects_non_text_and_unknown_classes():
    with pytest.raises(HarnessError):
        hj.from_json(12)  # type: ignore[arg-type]
    with pytest.raises(HarnessError):
        hj.from_json(b"{}", dict)
    assert hj.from_json(bytearray(b'{"type":"x","payload":null}')) == Envelope("x", None)


def test_ack_status_is_a_str():
    assert AckStatus.PREEMPTED == "preempted"
    assert hj.to_json(ActionAck("a", "preempted", Timestamp(0))).count(b'"preempted"') == 1


def test_method_shorthands_and_timestamp_values():
    ack = ActionAck("a", "ok", {"secs_since_epoch": 1, "nanos_since_epoch": 2})
    raw = ack.to_json()
    assert ActionAck.from_json(raw) == ActionAck("a", AckStatus.OK, Timestamp(1, 2))
    assert ActionAck.from_json(hj.to_json(ActionAck("a", "ok", [1, 2]))).applied_at == Timestamp(
        1, 2
    )
    assert Envelope.from_json(Envelope.wrap(StateDiff(1, Timestamp(0))).to_json()).type == "state"
    with pytest.raises(HarnessError):
        ActionAck("a", "ok", {"secs_since_epoch": 1}).to_json()
