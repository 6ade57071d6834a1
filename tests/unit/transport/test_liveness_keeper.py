"""The manager's end of the bus heartbeat: one timer pings every ready session; answers make
the session watch closely and, on a standby, report a silent owner (injected clock)."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from beachmanager.bus.bus import HostBus, TopicTable
from beachmanager.protocol import liveness as lv
from beachmanager.protocol.extensions import NAMESPACE, TOPIC_HEARTBEAT
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.events import Role
from beachmanager.transport.liveness import LIVENESS_TOPICS, LivenessKeeper


class FakeSession:
    def __init__(self, host: str, role: Role, up: bool = True):
        self.role = role
        self.is_up = up
        self.sent: list[dict] = []
        self.watched: list[float] = []
        self.bus = HostBus(host, TopicTable.merge(LIVENESS_TOPICS), Metrics(CollectorRegistry()))
        self.bus.attach(lambda ns, topic, payload: self.sent.append(json.loads(payload)) or True)

    def watch_liveness(self, timeout: float) -> None:
        self.watched.append(timeout)

    def answer(self, pong: lv.Pong) -> None:
        self.bus.deliver(NAMESPACE, TOPIC_HEARTBEAT, pong.to_json())


def keeper(sessions: dict, epochs: dict):
    clock = Clock()
    k = LivenessKeeper(clock, instance_id="me", interval=0.25, timeout=1.0,
                       sessions=lambda: sessions, epoch_of=epochs.get)
    for s in sessions.values():
        k.watch(s.bus)
    reports: list[tuple[str, lv.Pong]] = []
    k.on_owner_silent(lambda host, pong: reports.append((host, pong)))
    k.start()
    return clock, k, reports


def test_every_ready_session_is_pinged_with_its_role_and_epoch_each_interval():
    sessions = {"h-a": FakeSession("h-a", Role.ACTIVE), "h-s": FakeSession("h-s", Role.STANDBY),
                "h-down": FakeSession("h-down", Role.ACTIVE, up=False)}
    clock, k, _ = keeper(sessions, {"h-a": 7})
    clock.advance(0.25)
    clock.advance(0.25)
    assert [p["payload"] for p in sessions["h-a"].sent] == [
        {"seq": 1, "manager_instance_id": "me", "role": "active", "epoch": 7},
        {"seq": 2, "manager_instance_id": "me", "role": "active", "epoch": 7}]
    assert sessions["h-s"].sent[0]["payload"]["role"] == "standby"
    assert sessions["h-down"].sent == []
    k.stop()
    clock.advance(5)
    assert k.sent == 4


def test_an_answer_makes_the_session_watch_closely_and_a_silent_owner_is_reported_once():
    sessions = {"h-a": FakeSession("h-a", Role.ACTIVE), "h-s": FakeSession("h-s", Role.STANDBY)}
    clock, k, reports = keeper(sessions, {})
    sessions["h-a"].answer(lv.Pong(1, "me", 3, 0))
    assert sessions["h-a"].watched == [1.0]
    # a standby hears that the owner went silent: reported, then not again within the timeout
    sessions["h-s"].answer(lv.Pong(1, "other", 5, 900))  # not yet the whole timeout
    sessions["h-s"].answer(lv.Pong(2, "other", 5, 1000))
    sessions["h-s"].answer(lv.Pong(3, "other", 5, 1250))
    assert reports == [("h-s", lv.Pong(2, "other", 5, 1000))]
    clock.advance(1.0)
    sessions["h-s"].answer(lv.Pong(4, "other", 5, 2250))
    assert len(reports) == 2
    # an active session is never told to take over; nor a standby about itself; junk is counted
    sessions["h-a"].answer(lv.Pong(5, "other", 5, 5000))
    sessions["h-s"].answer(lv.Pong(5, "me", 5, 5000))
    sessions["h-s"].bus.deliver(NAMESPACE, TOPIC_HEARTBEAT, b'{"type":"heartbeat_reply","payload":{}}')
    assert len(reports) == 2 and k.unparsable == 1


def test_standby_sessions_are_pinged_less_often_and_watched_more_loosely():
    clock = Clock()
    sessions = {"h-a": FakeSession("h-a", Role.ACTIVE), "h-s": FakeSession("h-s", Role.STANDBY)}
    k = LivenessKeeper(clock, instance_id="me", interval=0.25, timeout=1.0, standby_interval=1.0,
                       sessions=lambda: sessions, epoch_of=lambda h: None)
    for s in sessions.values():
        k.watch(s.bus)
    k.start()
    for _ in range(8):
        clock.advance(0.25)
    assert len(sessions["h-a"].sent) == 8 and len(sessions["h-s"].sent) == 2
    sessions["h-s"].answer(lv.Pong(1, "other", 1, 0))
    assert sessions["h-s"].watched == [3.0]
