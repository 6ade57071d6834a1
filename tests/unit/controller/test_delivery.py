"""The delivery engine against a fake publisher, the in-memory queue and a fake clock."""

import json

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from beachmanager.controller.commands import system_time
from beachmanager.controller.delivery import DeliveryEngine
from beachmanager.controller.queue import NewAction
from beachmanager.controller.queue_memory import MemoryActionQueue
from beachmanager.protocol import harness as hj
from beachmanager.telemetry.metrics import Metrics


class FakePublisher:
    def __init__(self, ready=("h1",)):
        self.ready = set(ready)
        self.sent: list[tuple[str, dict]] = []
        self.refuse = False

    def publish_action(self, host, payload):
        if self.refuse or host not in self.ready:
            return False
        self.sent.append((host, json.loads(payload)))
        return True

    def is_ready(self, host):
        return host in self.ready

    def ids(self, host="h1"):
        return [p["payload"]["id"] for h, p in self.sent if h == host]


def cmd(i, **extra):
    return {"id": f"a-{i}", "action_type": "terminal_write",
            "payload": {"bytes": f"echo MARK-{i}\r"}, "expires_at": None, **extra}


class Rig:
    def __init__(self, window=2, ack_timeout=1.0, consumer="m1", queue=None, clock=None,
                 publisher=None, lease_check=None):
        if clock is None:
            clock = Clock()
            clock.advance(1000)
        self.clock = clock
        self.queue = queue or MemoryActionQueue(self.clock, bound=50)
        self.pub = publisher or FakePublisher()
        self.finals = []
        self.repeats = []
        self.metrics = Metrics(CollectorRegistry())
        self.engine = DeliveryEngine(self.queue, self.pub, self.clock, consumer=consumer,
                                     window=window, ack_timeout=ack_timeout, claim_timeout=10.0,
                                     read_block=0.5, on_final=self._final,
                                     lease_check=lease_check, metrics=self.metrics)
        self.engine.start()

    def _final(self, final):
        (self.repeats if final.repeat else self.finals).append(final)

    def submit(self, *ids, host="h1", token="tok-a", **extra):
        actions = [NewAction(f"a-{i}", cmd(i, **extra), token, self.clock.seconds()) for i in ids]
        d = ensureDeferred(self.queue.enqueue(host, actions))
        result = d.result
        entries = [a for a in self.queue._hosts[host].entries.values()
                   if a.action_id in result.accepted]
        self.engine.adopt(host, entries)
        return result

    def ack(self, i, status="ok", host="h1", **extra):
        return self.engine.on_ack(host, hj.ActionAck(f"a-{i}", hj.AckStatus(status),
                                                     hj.Timestamp(1, 0), **extra))

    def stop(self):
        self.engine.stop()
        self.clock.advance(1)


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.stop()


def test_window_and_ack_matching(rig):
    rig.submit(1, 2, 3, 4, 5)
    assert rig.pub.ids() == ["a-1", "a-2"]  # window 2
    env = rig.pub.sent[0][1]
    assert env == {"type": "action", "payload": cmd(1)}
    rig.clock.advance(0.25)  # gauges are refreshed every tick
    assert rig.metrics.acks_pending._value.get() == 2
    assert rig.metrics.actions_inflight._value.get() == 5
    assert rig.ack(2)
    assert rig.pub.ids() == ["a-1", "a-2", "a-3"]
    assert [f.action.action_id for f in rig.finals] == ["a-2"]
    final = rig.finals[0]
    assert final.status == "ok" and final.attempts == 1 and not final.synthesized
    assert final.latency == pytest.approx(0.25)
    assert rig.ack(1, "rejected", error_code="unsupported_action", error_message="nope")
    assert rig.finals[-1].error_code == "unsupported_action"
    # a repeated ack finishes nothing; an unknown one neither
    assert not rig.ack(1)
    assert not rig.ack(99)
    assert rig.engine.counters["duplicate_acks"] == 1 and rig.engine.counters["unknown_acks"] == 1
    for i in (3, 4, 5):
        rig.ack(i)
    rig.clock.advance(0.25)
    assert len(rig.finals) == 5 and rig.metrics.actions_inflight._value.get() == 0


def test_redelivery_on_ack_timeout_with_backoff_and_no_stall_flip(rig):
    rig.submit(1)
    rig.clock.advance(0.9)
    assert rig.pub.ids() == ["a-1"]
    rig.clock.advance(0.2)  # past 1 s
    assert rig.pub.ids() == ["a-1", "a-1"]
    rig.clock.advance(1.5)  # second wait is 2 s
    assert rig.pub.ids() == ["a-1", "a-1"]
    rig.clock.advance(0.6)
    assert rig.pub.ids() == ["a-1"] * 3
    # an hour without any ack: still the bus, still ready, delivered again at most every 8 s
    for _ in range(3600 * 4):
        rig.clock.advance(0.25)
    sends = len(rig.pub.ids())
    assert 3600 / 8 - 2 <= sends <= 3600 / 8 + 5
    assert rig.engine.lanes["h1"].ready
    assert rig.ack(1)
    assert rig.finals[0].attempts == sends


def test_expired_actions_are_never_delivered(rig):
    past = system_time(rig.clock.seconds() - 1)
    soon = system_time(rig.clock.seconds() + 5)
    rig.submit(1, expires_at=past)
    assert rig.pub.ids() == []
    assert [(f.action.action_id, f.status, f.synthesized) for f in rig.finals] == [("a-1", "expired", True)]
    # an action waiting for the transport expires where it waits
    rig.pub.ready.clear()
    rig.engine.transport_changed("h1", False)
    rig.submit(2, expires_at=soon)
    rig.clock.advance(4)
    assert len(rig.finals) == 1
    rig.clock.advance(1.5)
    assert [f.status for f in rig.finals] == ["expired", "expired"]
    rig.pub.ready.add("h1")
    rig.engine.transport_changed("h1", True)
    assert rig.pub.ids() == []


def test_actions_wait_for_the_transport_and_flow_on_reconnect(rig):
    rig.submit(1, 2)
    assert rig.pub.ids() == ["a-1", "a-2"]
    rig.pub.ready.clear()
    rig.engine.transport_changed("h1", False)
    rig.submit(3)
    rig.clock.advance(60)  # no redelivery, no loss while down
    assert rig.pub.ids() == ["a-1", "a-2"] and rig.finals == []
    assert rig.engine.depth("h1") == 3
    rig.pub.ready.add("h1")
    rig.engine.transport_changed("h1", True)
    # the in-flight ones go again first, in order, then the rest as the window allows
    assert rig.pub.ids() == ["a-1", "a-2", "a-1", "a-2"]
    rig.ack(1)
    rig.ack(2)
    assert rig.pub.ids()[-1] == "a-3"


def test_refused_send_on_a_full_buffer_is_retried_soon(rig):
    rig.pub.refuse = True  # still ready: backpressure
    rig.submit(1, 2)
    assert rig.pub.ids() == [] and rig.engine.lanes["h1"].ready
    rig.clock.advance(0.005)
    assert rig.pub.ids() == []
    rig.pub.refuse = False
    rig.clock.advance(0.005)
    assert rig.pub.ids() == ["a-1", "a-2"]
    assert rig.engine.counters["backpressure"] >= 2


def test_refused_send_on_a_lost_transport_marks_the_lane_down_without_loss(rig):
    rig.pub.ready.clear()
    rig.submit(1)
    assert rig.pub.ids() == [] and not rig.engine.lanes["h1"].ready
    rig.clock.advance(30)
    rig.pub.ready.add("h1")
    rig.engine.transport_changed("h1", True)
    assert rig.pub.ids() == ["a-1"]


def test_preemption_of_pending_actions(rig):
    rig.submit(1, 2, token="old")
    rig.submit(3, 4, token="old")
    rig.submit(5, token="new")
    # a-1, a-2 were delivered: the harness may have applied them; they are not preempted
    n = rig.engine.preempt("h1", lambda a: a.controller_token == "new", "lease released")
    assert n == 2
    assert [(f.action.action_id, f.status, f.error_code) for f in rig.finals] == [
        ("a-3", "preempted", "controller_preempted"), ("a-4", "preempted", "controller_preempted")]
    rig.ack(1)
    assert rig.pub.ids() == ["a-1", "a-2", "a-5"]


def test_lease_check_preempts_at_delivery_time():
    live = {"tok-a": True}
    r = Rig(lease_check=lambda host, a: live.get(a.controller_token, False))
    try:
        r.submit(1)
        live["tok-a"] = False
        r.submit(2)
        assert r.pub.ids() == ["a-1"]
        assert [(f.action.action_id, f.status) for f in r.finals] == [("a-2", "preempted")]
    finally:
        r.stop()


def test_reader_delivers_entries_enqueued_elsewhere(rig):
    rig.engine.transport_changed("h1", True)  # owns h1
    actions = [NewAction("x-1", {"id": "x-1", "action_type": "terminal_write",
                                 "payload": {"bytes": "x"}, "expires_at": None}, "t", 1000.0)]
    ensureDeferred(rig.queue.enqueue("h1", actions))
    rig.clock.advance(0.6)
    assert rig.pub.ids() == ["x-1"]


def test_restart_redelivers_pending_entries():
    r1 = Rig(window=4, consumer="m1")
    r1.submit(1, 2, 3)
    r1.ack(1)
    assert r1.pub.ids() == ["a-1", "a-2", "a-3"]
    r1.stop()  # dies without acks for a-2, a-3 (their entries stay pending for m1)
    ensureDeferred(r1.queue.finish("h1", [(f.action.action_id, f.action.entry_id, f.status)
                                          for f in r1.finals]))

    # the restarted process reads what it had adopted but never read
    r2 = Rig(window=4, consumer="m1", queue=r1.queue, clock=r1.clock)
    r2.engine.transport_changed("h1", True)
    r2.clock.advance(0.6)
    assert r2.pub.ids() == ["a-2", "a-3"]
    r2.stop()

    # same instance id again: its own pending entries come back at once
    r2b = Rig(window=4, consumer="m1", queue=r1.queue, clock=r1.clock)
    r2b.engine.transport_changed("h1", True)
    assert r2b.pub.ids() == ["a-2", "a-3"]
    r2b.stop()

    # another instance taking the host: claims the previous owner's pending entries at once
    r3 = Rig(window=4, consumer="m2", queue=r1.queue, clock=r1.clock, ack_timeout=100)
    r3.engine.transport_changed("h1", True)
    assert r3.pub.ids() == ["a-2", "a-3"]
    r3.ack(2)
    r3.ack(3)
    assert [f.action.action_id for f in r3.finals] == ["a-2", "a-3"]
    r3.stop()


def test_describe_reports_queued_delivered_and_acked(rig):
    rig.pub.ready.clear()
    rig.engine.transport_changed("h1", False)
    rig.submit(1)
    assert rig.engine.describe("h1", "a-1")["status"] == "queued"
    rig.pub.ready.add("h1")
    rig.engine.transport_changed("h1", True)
    view = rig.engine.describe("h1", "a-1")
    assert view["status"] == "delivered" and view["attempts"] == 1
    rig.clock.advance(0.02)
    rig.ack(1)
    view = rig.engine.describe("h1", "a-1")
    assert view["status"] == "acked" and view["ack_status"] == "ok"
    assert view["latency_ms"] == pytest.approx(20, abs=0.01)
    assert rig.engine.describe("h1", "nope") is None


def test_a_slow_host_that_keeps_acking_gets_no_redelivery():
    r = Rig(window=4, ack_timeout=1.0)
    try:
        r.submit(1, 2, 3, 4)
        r.clock.advance(0.8)
        r.ack(1)
        for _ in range(4):
            r.clock.advance(0.25)  # t = 1.8: a-2..a-4 overdue, but the host is busy acking
        r.ack(2)
        for _ in range(3):
            r.clock.advance(0.25)
        assert r.pub.ids() == ["a-1", "a-2", "a-3", "a-4"]
        assert r.engine.counters["redelivered"] == 0
        # then the host goes silent for a whole timeout: a-3 and a-4 go again
        for _ in range(8):
            r.clock.advance(0.25)
        assert r.pub.ids()[4:] == ["a-3", "a-4"]
    finally:
        r.stop()


def test_an_action_dropped_on_the_way_is_delivered_again_once_a_later_one_is_acked():
    r = Rig(window=2, ack_timeout=1.0)
    try:
        r.submit(1, 2)
        r.clock.advance(0.5)
        r.ack(2)  # the channel is ordered: a-1 was dropped on the host
        r.clock.advance(0.25)
        assert r.pub.ids() == ["a-1", "a-2"]
        r.clock.advance(0.5)
        assert r.pub.ids() == ["a-1", "a-2", "a-1"]
        r.ack(1)
        assert [f.action.action_id for f in r.finals] == ["a-2", "a-1"]
        assert r.finals[1].attempts == 2
    finally:
        r.stop()


def test_a_finished_entry_read_again_is_resubmitted_only_until_its_ack_is_stored(rig):
    rig.engine.lane("h1")  # taken (and recovered) before the action arrives
    rig.submit(1)
    rig.ack(1)
    rig.clock.advance(0.6)  # the reader reads the entry the REST path had adopted
    assert [f.action.action_id for f in rig.repeats] == ["a-1"]  # not stored yet: again
    rig.engine.confirm(rig.finals[0])
    for _ in range(60):  # stale claims bring it back while the queue still holds it
        rig.clock.advance(0.25)
    assert len(rig.repeats) == 1  # stored: a read that raced the removal is ignored


def test_a_live_owner_keeps_its_entries_a_dead_ones_are_claimed_once_stale():
    a = Rig(window=4, consumer="m1", ack_timeout=100)
    b = Rig(window=4, consumer="m2", queue=a.queue, clock=a.clock, ack_timeout=100)
    try:
        b.engine.transport_changed("h1", True)  # b already holds a lane for h1
        a.submit(1)
        for _ in range(4):
            a.clock.advance(0.25)  # a's reader reads the entry: pending with m1
        assert a.pub.ids() == ["a-1"] and b.pub.ids() == []
        for _ in range(80):
            a.clock.advance(0.25)  # 20 s: a keeps claiming its own idle entry (it is alive)
        assert b.pub.ids() == []
        a.stop()  # a dies without an ack
        for _ in range(24):
            a.clock.advance(0.25)  # 6 s: not idle long enough (claim timeout 10 s)
        assert b.pub.ids() == []
        for _ in range(40):
            a.clock.advance(0.25)
        assert b.pub.ids() == ["a-1"]
    finally:
        b.stop()


def test_entries_enqueued_elsewhere_before_the_lane_existed_go_out_when_it_opens():
    """A host promoted here (hot failover) or taken over: what another instance put into its
    stream meanwhile is read when the lane opens, not when the reader's blocking read ends."""
    rig = Rig(window=4)
    try:
        actions = [NewAction(f"a-{i}", cmd(i), "tok-a", rig.clock.seconds()) for i in (1, 2)]
        assert ensureDeferred(rig.queue.enqueue("h1", actions)).result.accepted == ["a-1", "a-2"]
        rig.pub.ready.add("h1")
        rig.engine.transport_changed("h1", True)  # no clock advance: at once
        assert rig.pub.ids() == ["a-1", "a-2"]
    finally:
        rig.stop()


def test_an_action_refused_for_a_stale_epoch_is_left_for_the_owner_and_the_lane_closes():
    rig = Rig(window=4)
    epochs = {"h1": 3}
    rig.engine.epoch_of = epochs.get
    try:
        rig.pub.ready.add("h1")
        rig.engine.transport_changed("h1", True)
        rig.submit(1, 2)
        assert [p.get("epoch") for h, p in rig.pub.sent] == [3, 3]  # stamped
        # a refusal of a former owner's older epoch (acks reach every peer): not for us
        older = hj.ActionAck("a-1", hj.AckStatus.REJECTED, hj.Timestamp(1, 0),
                             error_code="stale_epoch", error_message="epoch 2 is older than 3")
        assert rig.engine.on_ack("h1", older) is False and rig.engine.lanes["h1"].ready
        assert rig.engine.counters["others_fenced"] == 1 and rig.engine.counters["fenced"] == 0
        finished = rig.engine.on_ack("h1", hj.ActionAck("a-1", hj.AckStatus.REJECTED,
                                                        hj.Timestamp(1, 0), error_code="stale_epoch",
                                                        error_message="epoch 3 is older than 4"))
        assert finished is False and rig.finals == []  # not finished here: the owner delivers it
        assert rig.engine.counters["fenced"] == 1 and not rig.engine.lanes["h1"].ready
        assert rig.metrics.registry.get_sample_value("fenced_actions_total") == 1
        assert ensureDeferred(rig.queue.depth("h1")).result == 2  # both entries stay queued
    finally:
        rig.stop()
