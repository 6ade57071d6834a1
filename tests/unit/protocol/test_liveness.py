"""The bus heartbeat's messages and the harness's view of its managers (sans-I/O)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import liveness as lv


def test_ping_and_pong_round_trip_and_are_routed_by_kind():
    ping = lv.Ping(7, "mgr-a", "standby", 3)
    assert lv.read_ping(ping.to_json()) == ping
    assert lv.kind_of(ping.to_json()) == lv.PING
    pong = lv.Pong(7, "mgr-b", 3, 1250)
    assert lv.read_pong(pong.to_json()) == pong
    assert lv.kind_of(pong.to_json()) == lv.PONG
    assert lv.read_pong(lv.Pong(1, None, 0, None).to_json()) == lv.Pong(1, None, 0, None)
    assert lv.kind_of(b'{"type":"ack","payload":{}}') is None


@pytest.mark.parametrize("body, error", [
    (b"nope", "not JSON"),
    (b'{"type":"heartbeat"}', "payload must be an object"),
    (b'{"type":"heartbeat","payload":{"seq":-1,"manager_instance_id":"a","role":"active","epoch":0}}',
     "seq must be an unsigned integer"),
    (b'{"type":"heartbeat","payload":{"seq":1,"manager_instance_id":"","role":"active","epoch":0}}',
     "manager_instance_id must be a string"),
    (b'{"type":"heartbeat","payload":{"seq":1,"manager_instance_id":"a","role":"boss","epoch":0}}',
     "role must be one of"),
    (b'{"type":"heartbeat","payload":{"seq":1,"manager_instance_id":"a","role":"active","epoch":true}}',
     "epoch must be an unsigned integer"),
    (b'{"type":"heartbeat_reply","payload":{}}', "not a heartbeat envelope"),
    (b"x" * 2000, "at most 1024"),
])
def test_a_bad_ping_gets_a_clear_error(body, error):
    with pytest.raises(lv.LivenessError, match=error):
        lv.read_ping(body)


@given(st.binary(max_size=300))
def test_the_decoders_never_raise_anything_but_their_error(data):
    for read in (lv.read_ping, lv.read_pong):
        try:
            read(data)
        except lv.LivenessError:
            pass


def test_the_silence_report_names_the_owner_and_needs_the_whole_timeout():
    assert lv.Pong(1, "a", 2, 1000).reports_silent("a", 1.0)
    assert not lv.Pong(1, "a", 2, 999).reports_silent("a", 1.0)
    assert not lv.Pong(1, "b", 2, 5000).reports_silent("a", 1.0)
    assert not lv.Pong(1, "a", 2, None).reports_silent("a", 1.0)


def test_the_watch_reports_how_long_the_active_manager_has_been_silent():
    w = lv.ActiveWatch()
    # before any active manager pinged: nothing to report
    assert w.answer(lv.Ping(1, "b", "standby", 0), "peer-b", 10.0, active="a", epoch=4).active_silent_ms is None
    w.answer(lv.Ping(1, "a", "active", 4), "peer-a", 10.0, active="a", epoch=4)
    pong = w.answer(lv.Ping(2, "b", "standby", 0), "peer-b", 11.25, active="a", epoch=4)
    assert pong == lv.Pong(2, "a", 4, 1250)
    # a ping that says "active" from a manager the fence does not name changes nothing
    w.answer(lv.Ping(3, "old", "active", 3), "peer-old", 11.3, active="a", epoch=4)
    assert w.active_peer == "peer-a"
    # the active manager's transport goes: silent for good until it pings again
    w.forget("peer-a")
    assert w.answer(lv.Ping(4, "b", "standby", 0), "peer-b", 11.4, active="a", epoch=4).active_silent_ms >= 10**9
    w.answer(lv.Ping(5, "a", "active", 4), "peer-a2", 11.5, active="a", epoch=4)
    assert w.answer(lv.Ping(6, "b", "standby", 0), "peer-b", 11.5, active="a", epoch=4).active_silent_ms == 0


def test_the_watch_remembers_a_bounded_number_of_peers():
    w = lv.ActiveWatch(max_peers=3)
    for i in range(10):
        w.answer(lv.Ping(i, f"m{i}", "standby", 0), f"p{i}", float(i), active=None, epoch=0)
    assert len(w.heard) == 3 and set(w.heard) == {"p7", "p8", "p9"}


def test_ping_json_is_compact_and_documented():
    body = json.loads(lv.Ping(1, "a", "active", 2).to_json())
    assert body == {"type": "heartbeat", "payload": {"seq": 1, "manager_instance_id": "a",
                                                     "role": "active", "epoch": 2}}
