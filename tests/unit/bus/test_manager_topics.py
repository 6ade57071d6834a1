"""The manager's subscriber and publisher: topics, envelope parsing, listeners."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from beachmanager.bus.bus import HostBus, TopicTable
from beachmanager.bus.publisher import PUBLISHES, ManagerPublisher
from beachmanager.bus.subscriber import SUBSCRIBES, ManagerSubscriber
from beachmanager.protocol import harness as hj
from beachmanager.protocol.extensions import TOPIC_ACK, TOPIC_ACTION, TOPIC_HEALTH, TOPIC_STATE
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.events import SessionEvents, SessionState

TABLE = TopicTable.merge(SUBSCRIBES, PUBLISHES)
T0 = hj.Timestamp(1733300000, 0)


def env(value) -> bytes:
    return hj.to_json(hj.Envelope.wrap(value))


def setup():
    metrics = Metrics(CollectorRegistry())
    bus = HostBus("h1", TABLE, metrics)
    sub = ManagerSubscriber()
    sub.attach(bus)
    got = []
    for kind in ("ack", "state", "health"):
        sub.on(kind, lambda host, value, kind=kind: got.append((kind, host, value)))
    return metrics, bus, sub, got


def test_acks_state_and_health_reach_listeners_typed():
    _, bus, sub, got = setup()
    ack = hj.ActionAck("a-1", hj.AckStatus.OK, T0)
    state = hj.StateDiff(3, T0, {"type": "terminal_full", "lines": ["$ "]})
    health = hj.HealthHeartbeat(queue_depth=2, degraded=False, warnings=("slow",))
    bus.deliver("manager", TOPIC_ACK, env(ack))
    bus.deliver("manager", TOPIC_STATE, env(state))
    bus.deliver("manager", TOPIC_HEALTH, env(health))
    bus.deliver("manager", "controller/ack", env(ack))  # legacy alias
    assert got == [("ack", "h1", ack), ("state", "h1", state), ("health", "h1", health),
                   ("ack", "h1", ack)]
    assert sub.latest["h1"] == {"acks": 2, "state_sequence": 3,
                                "health": {"queue_depth": 2, "degraded": False, "warnings": ["slow"]}}


def test_bad_or_mismatched_envelopes_are_dropped_and_counted():
    metrics, bus, _, got = setup()
    bus.deliver("manager", TOPIC_ACK, b"{not json")
    bus.deliver("manager", TOPIC_ACK, env(hj.StateDiff(1, T0)))
    assert got == []
    assert bus.dropped == {"bad_envelope": 1, "type_mismatch": 1}
    assert metrics.registry.get_sample_value("extension_dropped_total", {
        "namespace": "manager", "topic": TOPIC_ACK, "reason": "type_mismatch"}) == 1


def test_the_manager_does_not_hear_its_own_actions():
    _, bus, _, got = setup()
    sent = []
    bus.attach(lambda ns, topic, payload: sent.append((ns, topic, payload)) or True)
    events = SessionEvents(lambda: 0.0)
    events.publish("h1", SessionState.READY)  # readiness is the session stream's answer
    pub = ManagerPublisher(lambda host: bus if host == "h1" else None, events)
    cmd = hj.ActionCommand("a-9", "terminal_write", {"bytes": "echo hi\r"})
    assert pub.is_ready("h1") and not pub.is_ready("h2")
    assert pub.publish_command("h1", cmd)
    assert not pub.publish_action("h2", b"{}")
    assert sent == [("manager", TOPIC_ACTION, env(cmd))]
    assert hj.parse_action_envelope(sent[0][2]) == cmd
    assert got == []
