"""The Python beach-buggy: every ack status, replay dedup, state and health emission (injected clock)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from beachmanager.harness.buggy import Harness
from beachmanager.protocol import harness as hj
from beachmanager.protocol.extensions import (
    TOPIC_ACK,
    TOPIC_ACTION,
    TOPIC_HEALTH,
    TOPIC_STATE,
)


class FakeBus:
    def __init__(self):
        self.handlers = {}
        self.sent = []
        self.to_peer = []
        self.detach_listeners = []

    def send_to(self, peer, topic, payload):
        self.to_peer.append((peer, topic, json.loads(payload)))
        return True

    def on_detach(self, listener):
        self.detach_listeners.append(listener)

    def restrict_to(self, audience):
        self.audience = audience

    def subscribe(self, topic, handler):
        self.handlers.setdefault(topic, []).append(handler)
        return lambda: self.handlers[topic].remove(handler)

    def publish(self, topic, payload):
        self.sent.append((topic, json.loads(payload)))

    def deliver(self, topic, payload, peer=None):
        for h in list(self.handlers.get(topic, [])):
            h(topic, payload, peer)

    def of(self, topic):
        return [p for t, p in self.sent if t == topic]


class FakeTerminal:
    def __init__(self):
        self.written = []
        self.alive = True
        self.lines = ["$"]
        self.fail = False

    def write(self, data):
        if self.fail:
            raise OSError("pty closed")
        self.written.append(data)

    def terminal_full(self):
        return {"type": "terminal_full", "lines": list(self.lines), "cursor": {"row": 0, "col": 1}}


@pytest.fixture
def rig():
    clock = Clock()
    clock.advance(1_700_000_000)
    bus, term = FakeBus(), FakeTerminal()
    h = Harness(bus, term, clock, max_queue=2)
    h.start()
    return clock, bus, term, h


def action(aid, action_type="terminal_write", payload=None, expires_at=None):
    body = {"id": aid, "action_type": action_type,
            "payload": {"bytes": "echo hi\r"} if payload is None else payload, "expires_at": expires_at}
    return json.dumps({"type": "action", "payload": body}).encode()


def acks(bus):
    return [a["payload"] for a in bus.of(TOPIC_ACK)]


def test_terminal_write_acks_ok_after_writing(rig):
    clock, bus, term, _ = rig
    bus.deliver(TOPIC_ACTION, action("a-1"))
    assert acks(bus) == [] and term.written == []  # queued, applied on the next turn
    clock.advance(0)
    assert term.written == [b"echo hi\r"]
    [ack] = acks(bus)
    assert ack["id"] == "a-1" and ack["status"] == "ok" and ack["error_code"] is None
    assert ack["applied_at"] == {"secs_since_epoch": 1_700_000_000, "nanos_since_epoch": 0}
    assert ack["latency_ms"] is None


def test_legacy_topic_is_an_action_alias(rig):
    clock, bus, term, _ = rig
    bus.deliver("controller/input", action("legacy-1", payload={"bytes": "x"}))
    clock.advance(0)
    assert term.written == [b"x"] and acks(bus)[0]["status"] == "ok"


@pytest.mark.parametrize("kind,payload", [("click", None), ("terminal_write", {"text": "x"}),
                                          ("terminal_write", {"bytes": 5})])
def test_unsupported_actions_are_rejected(rig, kind, payload):
    clock, bus, term, _ = rig
    bus.deliver(TOPIC_ACTION, action("r-1", kind, payload))
    clock.advance(0)
    [ack] = acks(bus)
    assert ack["status"] == "rejected" and ack["error_code"] == "unsupported_action" and ack["error_message"]
    assert term.written == []


def test_expired_action_is_not_applied(rig):
    clock, bus, term, _ = rig
    bus.deliver(TOPIC_ACTION, action("e-1", expires_at={"secs_since_epoch": 1_699_999_999, "nanos_since_epoch": 0}))
    bus.deliver(TOPIC_ACTION, action("e-2", expires_at=[1_700_000_060, 0]))  # still valid
    clock.advance(0)
    assert [(a["id"], a["status"]) for a in acks(bus)] == [("e-1", "expired"), ("e-2", "ok")]
    assert term.written == [b"echo hi\r"]


def test_replayed_action_is_reacked_not_reapplied(rig):
    clock, bus, term, h = rig
    bus.deliver(TOPIC_ACTION, action("d-1"))
    bus.deliver(TOPIC_ACTION, action("d-1"))  # replay while still queued: no second ack yet
    clock.advance(0)
    bus.deliver(TOPIC_ACTION, action("d-1"))  # replay after: the same ack again
    assert term.written == [b"echo hi\r"]
    assert [a["id"] for a in acks(bus)] == ["d-1", "d-1"] and acks(bus)[0] == acks(bus)[1]
    assert h.subscriber.replays == 2


def test_dedup_memory_is_bounded():
    clock, bus, term = Clock(), FakeBus(), FakeTerminal()
    h = Harness(bus, term, clock, dedup_size=3)
    h.start()
    for i in range(5):
        bus.deliver(TOPIC_ACTION, action(f"id-{i}", payload={"bytes": str(i)}))
        clock.advance(0)
    assert list(h.subscriber.seen) == ["id-2", "id-3", "id-4"]
    bus.deliver(TOPIC_ACTION, action("id-0", payload={"bytes": "again"}))  # forgotten: applied again
    clock.advance(0)
    assert term.written[-1] == b"again"


def test_queue_full_and_write_failure(rig):
    clock, bus, term, h = rig
    for i in range(3):
        bus.deliver(TOPIC_ACTION, action(f"q-{i}"))
    assert [(a["id"], a["error_code"]) for a in acks(bus)] == [("q-2", "queue_full")]
    health = h.health()
    assert health.queue_depth == 2 and health.degraded and any("full queue" in w for w in health.warnings)
    term.fail = True
    clock.advance(0)
    assert [a["error_code"] for a in acks(bus)[1:]] == ["write_failed", "write_failed"]


def test_unparsable_action_gets_no_ack(rig):
    clock, bus, _, h = rig
    bus.deliver(TOPIC_ACTION, b"{not json")
    bus.deliver(TOPIC_ACTION, json.dumps({"type": "ack", "payload": {}}).encode())
    clock.advance(0)
    assert acks(bus) == [] and h.subscriber.unparsable == 2


def test_state_throttled_with_sequence_from_one(rig):
    clock, bus, term, h = rig
    h.screen_changed()
    [first] = bus.of(TOPIC_STATE)
    assert first["type"] == "state" and first["payload"]["sequence"] == 1
    assert first["payload"]["payload"] == {"type": "terminal_full", "lines": ["$"], "cursor": {"row": 0, "col": 1}}
    term.lines = ["$ ls"]
    for _ in range(5):
        h.screen_changed()
        clock.advance(0.01)
    assert len(bus.of(TOPIC_STATE)) == 1  # within 100 ms of the first
    clock.advance(0.06)
    states = bus.of(TOPIC_STATE)
    assert [s["payload"]["sequence"] for s in states] == [1, 2]
    assert states[1]["payload"]["payload"]["lines"] == ["$ ls"]
    clock.advance(1)
    assert len(bus.of(TOPIC_STATE)) == 2  # quiet screen: nothing more


def test_health_at_start_and_every_interval(rig):
    clock, bus, term, h = rig
    [first] = bus.of(TOPIC_HEALTH)
    assert first["type"] == "health"
    assert first["payload"]["queue_depth"] == 0 and first["payload"]["degraded"] is False
    assert first["payload"]["warnings"] == [] and first["payload"]["memory_bytes"] > 0
    term.alive = False
    clock.advance(5)
    second = bus.of(TOPIC_HEALTH)[1]["payload"]
    assert second["degraded"] is True and second["warnings"] == ["terminal program is not running"]
    h.stop()
    clock.advance(20)
    assert len(bus.of(TOPIC_HEALTH)) == 2
    assert bus.handlers[TOPIC_ACTION] == []


def test_published_payloads_parse_with_the_protocol_types(rig):
    clock, bus, _, h = rig
    bus.deliver(TOPIC_ACTION, action("p-1"))
    clock.advance(0)
    h.screen_changed()
    for topic, value in bus.sent:
        env = hj.from_value(value)
        assert env.type == {TOPIC_ACK: "ack", TOPIC_STATE: "state", TOPIC_HEALTH: "health"}[topic]


def stamped(aid, epoch):
    body = json.loads(action(aid))
    return json.dumps({**body, "epoch": epoch}).encode()


def test_fencing_an_older_epoch_is_refused_not_remembered_and_the_owner_still_applies(rig):
    from beachmanager.protocol.extensions import TOPIC_ASSOCIATION
    from beachmanager.protocol.fencing import STALE_EPOCH
    from tests.support.associations import signed

    clock, bus, term, h = rig
    bus.deliver(TOPIC_ACTION, action("legacy"))  # unstamped (a manager that does not fence)
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-b", 5), "peer-b")
    bus.deliver(TOPIC_ACTION, stamped("x-1", 4))  # the former owner, woken up
    clock.advance(0)
    assert [(a["id"], a["status"], a["error_code"]) for a in acks(bus)] == [
        ("x-1", "rejected", STALE_EPOCH), ("legacy", "ok", None)]
    assert term.written == [b"echo hi\r"]  # only the unstamped one ran
    bus.deliver(TOPIC_ACTION, stamped("x-1", 5))  # the same id from the owner: applied once
    clock.advance(0)
    assert acks(bus)[-1]["id"] == "x-1" and acks(bus)[-1]["status"] == "ok"
    assert len(term.written) == 2
    bus.deliver(TOPIC_ACTION, stamped("x-2", 7))  # a newer epoch moves the fence by itself
    bus.deliver(TOPIC_ACTION, stamped("x-3", 5))
    clock.advance(0)
    assert h.subscriber.fence.epoch == 7 and h.subscriber.fence.refused == 2
    assert [(a["id"], a["error_code"]) for a in acks(bus)[-2:]] == [("x-3", STALE_EPOCH), ("x-2", None)]
    assert h.status()["fenced"] == 2


def test_once_the_active_managers_transport_is_known_other_peers_cannot_drive_the_host(rig):
    from beachmanager.protocol.extensions import TOPIC_ASSOCIATION
    from beachmanager.protocol.fencing import STALE_EPOCH
    from tests.support.associations import signed

    clock, bus, term, h = rig
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3), "peer-a")
    bus.deliver(TOPIC_ACTION, action("viewer-1"), "peer-viewer")  # unstamped, another peer
    bus.deliver(TOPIC_ACTION, stamped("viewer-2", 3), "peer-viewer")  # a copied epoch
    bus.deliver(TOPIC_ACTION, stamped("old-1", 2), "peer-old")  # the former owner: told why
    bus.deliver(TOPIC_ACTION, stamped("a-1", 3), "peer-a")
    clock.advance(0)
    assert [(a["id"], a["error_code"]) for a in acks(bus)] == [("old-1", STALE_EPOCH), ("a-1", None)]
    assert term.written == [b"echo hi\r"]
    assert h.status()["foreign_dropped"] == 2
    # a newer owner takes over on its own transport; the old active peer is foreign now
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-b", 4), "peer-b")
    bus.deliver(TOPIC_ACTION, stamped("a-2", 3), "peer-a")
    bus.deliver(TOPIC_ACTION, stamped("b-1", 4), "peer-b")
    clock.advance(0)
    assert [(a["id"], a["error_code"]) for a in acks(bus)[-2:]] == [("a-2", STALE_EPOCH), ("b-1", None)]


def test_the_harness_answers_each_managers_heartbeat_on_its_own_transport(rig):
    from beachmanager.protocol import liveness as lv
    from beachmanager.protocol.extensions import TOPIC_ASSOCIATION, TOPIC_HEARTBEAT
    from tests.support.associations import signed

    clock, bus, term, h = rig
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3), "peer-a")
    bus.deliver(TOPIC_HEARTBEAT, lv.Ping(1, "mgr-a", "active", 3).to_json(), "peer-a")
    clock.advance(1.5)
    bus.deliver(TOPIC_HEARTBEAT, lv.Ping(1, "mgr-b", "standby", 0).to_json(), "peer-b")
    bus.deliver(TOPIC_HEARTBEAT, lv.Pong(1, "x", 0, 0).to_json(), "peer-b")  # not a ping: ignored
    bus.deliver(TOPIC_HEARTBEAT, b"{junk", "peer-b")  # unparsable: counted, no answer
    (to_a, to_b) = bus.to_peer
    assert to_a[0] == "peer-a" and to_a[2]["payload"]["active_silent_ms"] == 0
    assert to_b[0] == "peer-b" and to_b[2] == {"type": "heartbeat_reply", "payload": {
        "seq": 1, "active": "mgr-a", "epoch": 3, "active_silent_ms": 1500}}
    assert not [t for t, _ in bus.sent if t == TOPIC_HEARTBEAT]  # never broadcast
    # the active manager's transport closes: its peer is forgotten, and the fence lets its
    # next transport in (named by its next ping)
    for listener in bus.detach_listeners:
        listener("peer-a")
    assert h.subscriber.fence.peer is None
    bus.deliver(TOPIC_HEARTBEAT, lv.Ping(2, "mgr-a", "active", 3).to_json(), "peer-a2")
    assert h.subscriber.fence.peer == "peer-a2"
    assert h.status()["heartbeats_answered"] == 3


def test_manager_frames_go_only_to_the_managers_once_one_has_associated(rig):
    from beachmanager.protocol import liveness as lv
    from beachmanager.protocol.extensions import TOPIC_ASSOCIATION, TOPIC_HEARTBEAT
    from tests.support.associations import signed

    clock, bus, term, h = rig
    assert bus.audience() is None  # no manager yet: every peer (managers that never associate)
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 2), "peer-a")
    assert bus.audience() == {"peer-a"}
    bus.deliver(TOPIC_HEARTBEAT, lv.Ping(1, "mgr-b", "standby", 0).to_json(), "peer-b")
    assert bus.audience() == {"peer-a", "peer-b"}  # a standby gets state and health too
    for listener in bus.detach_listeners:
        listener("peer-b")
    assert bus.audience() == {"peer-a"}
