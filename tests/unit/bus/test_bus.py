"""HostBus: namespace-scoped pub/sub, no local echo, unknown topics warned and counted."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from twisted.logger import LogLevel, globalLogPublisher

from beachmanager.bus.bus import HostBus, TopicTable
from beachmanager.telemetry.metrics import Metrics

TABLE = TopicTable.merge(
    {"manager": {"beach.manager.action": "control_ordered"}},
    {"manager": {"beach.manager.ack": "control_ordered", "beach.manager.state": "state_unordered"}},
)


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics():
    return Metrics(CollectorRegistry())


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_publish_sends_without_local_echo_and_counts_bytes(metrics):
    sent, heard = [], []
    bus = HostBus("h1", TABLE, metrics)
    bus.subscribe("manager", "beach.manager.action", heard.append)
    bus.attach(lambda ns, topic, payload: sent.append((ns, topic, payload)) or True)
    assert bus.publish("manager", "beach.manager.action", b'{"type":"action"}')
    assert sent == [("manager", "beach.manager.action", b'{"type":"action"}')]
    assert heard == []  # the upstream bus echoed publishes to local subscribers; this one doesn't
    assert sample(metrics, "extension_sent_bytes_total", namespace="manager",
                  topic="beach.manager.action") == 17
    assert bus.stats()["sent_frames"] == 1


def test_publish_when_not_connected_or_refused_is_dropped_and_counted(metrics):
    bus = HostBus("h1", TABLE, metrics)
    assert not bus.publish("manager", "beach.manager.action", b"x")
    bus.attach(lambda *a: False)
    assert not bus.publish("manager", "beach.manager.action", b"x")
    assert bus.dropped == {"not_connected": 1, "backpressure": 1}
    assert sample(metrics, "extension_dropped_total", namespace="manager",
                  topic="beach.manager.action", reason="backpressure") == 1
    with pytest.raises(TypeError):
        bus.publish("manager", "beach.manager.action", "text")  # type: ignore[arg-type]


def test_delivery_is_scoped_by_namespace_and_topic(metrics):
    acks, states = [], []
    bus = HostBus("h1", TABLE, metrics)
    bus.subscribe("manager", "beach.manager.ack", acks.append)
    sub = bus.subscribe("manager", "beach.manager.state", states.append)
    assert bus.deliver("manager", "beach.manager.ack", b"a1") == 1
    assert bus.deliver("manager", "beach.manager.state", b"s1") == 1
    sub.cancel()
    assert bus.deliver("manager", "beach.manager.state", b"s2") == 0
    assert [m.payload for m in acks] == [b"a1"] and [m.payload for m in states] == [b"s1"]
    assert acks[0].host_session_id == "h1" and states[0].lane == "state_unordered"
    assert bus.dropped == {"no_subscriber": 1}
    assert sample(metrics, "extension_received_bytes_total", namespace="manager",
                  topic="beach.manager.state") == 4


def test_unknown_namespace_and_topic_are_warned_once_and_counted_with_bounded_labels(metrics, logged):
    bus = HostBus("h1", TABLE, metrics)
    for _ in range(3):
        bus.deliver("manager", "beach.manager.surprise", b"??")
        bus.deliver("fastpath", "action", b"!!")
    warnings = [e for e in logged if e.get("log_level") == LogLevel.warn
                and e.get("log_namespace", "").startswith("beachmanager.bus")]
    assert len(warnings) == 2
    assert {w["reason"] for w in warnings} == {"unknown topic", "unknown namespace"}
    assert all(w["host_session_id"] == "h1" for w in warnings)
    assert sample(metrics, "extension_dropped_total", namespace="manager", topic="unknown",
                  reason="unknown_topic") == 3
    assert sample(metrics, "extension_dropped_total", namespace="unknown", topic="unknown",
                  reason="unknown_namespace") == 3


def test_a_failing_handler_does_not_stop_the_others(metrics, logged):
    got = []
    bus = HostBus("h1", TABLE, metrics)

    def boom(message):
        raise RuntimeError("handler bug")

    bus.subscribe("manager", "beach.manager.ack", boom)
    bus.subscribe("manager", "beach.manager.ack", got.append)
    assert bus.deliver("manager", "beach.manager.ack", b"a") == 1
    assert len(got) == 1 and bus.dropped == {"handler_error": 1}
    assert any(e.get("log_failure") is not None for e in logged)


def test_frames_are_traced_at_debug_with_size_and_lane_but_no_payload(metrics, logged):
    bus = HostBus("h1", TABLE, metrics)
    bus.trace_frames = True  # off by default: not a per-frame cost on the hot path
    bus.attach(lambda *a: True)
    bus.publish("manager", "beach.manager.action", b"secret-bytes")
    bus.subscribe("manager", "beach.manager.ack", lambda m: None)
    bus.deliver("manager", "beach.manager.ack", b"secret-ack")
    traces = [e for e in logged if e.get("log_level") == LogLevel.debug
              and "bus frame" in e.get("log_format", "")]
    assert [(t["direction"], t["size"], t["lane"]) for t in traces] == [
        ("out", 12, "control_ordered"), ("in", 10, "control_ordered")]
    assert not any(b"secret" in repr(v).encode() for t in traces for v in t.values()
                   if not callable(v))


def test_frames_are_not_traced_by_default_and_still_counted(metrics, logged):
    bus = HostBus("h1", TABLE, metrics)
    bus.attach(lambda *a: True)
    for _ in range(3):
        bus.publish("manager", "beach.manager.action", b"1234")
    bus.subscribe("manager", "beach.manager.ack", lambda m: None)
    bus.deliver("manager", "beach.manager.ack", b"12")
    assert not [e for e in logged if "bus frame" in e.get("log_format", "")]
    reg = metrics.registry
    assert reg.get_sample_value("extension_sent_bytes_total",
                                {"namespace": "manager", "topic": "beach.manager.action"}) == 12
    assert reg.get_sample_value("extension_received_bytes_total",
                                {"namespace": "manager", "topic": "beach.manager.ack"}) == 2
