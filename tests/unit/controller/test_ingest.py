"""Ack writer (durable before dequeue, retried, bounded) and host payload ingestion."""


from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock

from beachmanager.controller.delivery import FinalAck
from beachmanager.controller.ingest import AckWriter, Ingest
from beachmanager.controller.queue import NewAction
from beachmanager.controller.queue_memory import MemoryActionQueue
from beachmanager.controller.runtime import MemoryRuntimeCache
from beachmanager.protocol import harness as hj
from beachmanager.registry.store import StoreUnavailable
from beachmanager.telemetry.metrics import Metrics


class FlakyStore:
    def __init__(self, failures=0):
        self.failures = failures
        self.records = {}
        self.together = []  # the beaches of each record_actions_by_beach call

    def record_actions_by_beach(self, groups):
        """The ack writer's call: each group through ``record_actions``, in order."""
        self.together.append([tenant.private_beach_id for tenant, _ in groups])

        async def run():
            return [await self.record_actions(tenant, records) for tenant, records in groups]

        return ensureDeferred(run())

    def record_actions(self, tenant, records):
        """The registry store's batch call; fails the first *failures* calls."""
        if self.failures:
            self.failures -= 1
            return fail(StoreUnavailable("database down"))
        out = []
        for r in records:
            key = (tenant.private_beach_id, r.host_session_id, r.action_id)
            out.append("duplicate" if key in self.records else "stored")
            self.records.setdefault(key, r)
        return succeed(out)


def setup(failures=0, bound=100):
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = FlakyStore(failures)
    cache = MemoryRuntimeCache(clock)
    metrics = Metrics(CollectorRegistry())
    writer = AckWriter(queue, clock, store=store, cache=cache, metrics=metrics, bound=bound)
    writer.start()
    return clock, queue, store, cache, metrics, writer


def enqueue_and_read(clock, queue, n):
    actions = [NewAction(f"a-{i}", {"id": f"a-{i}", "action_type": "terminal_write",
                                    "payload": {"bytes": "x"}, "expires_at": None},
                         "tok", clock.seconds(), "pb-1") for i in range(n)]
    ensureDeferred(queue.enqueue("h1", actions))
    return ensureDeferred(queue.read_new("h1", "m1", n)).result


def final(action, clock, status="ok", repeat=False):
    return FinalAck("h1", action, status, clock.seconds(), 1, clock.seconds(), repeat=repeat)


def one_final_each(clock, queue, *hosts):
    """One action queued, read and finished ("ok") per ``(host, beach)``: their final acks."""
    finals = []
    for host, beach in hosts:
        ensureDeferred(queue.enqueue(host, [NewAction(f"{host}-a", {"id": f"{host}-a"}, "tok",
                                                      clock.seconds(), beach)]))
        for a in ensureDeferred(queue.read_new(host, "m1", 1)).result:
            finals.append(FinalAck(host, a, "ok", clock.seconds(), 1, clock.seconds()))
    return finals


def latency_count(metrics):
    return metrics.registry.get_sample_value("action_latency_seconds_count")


def test_acks_are_logged_then_dequeued_then_cached():
    clock, queue, store, cache, metrics, writer = setup()
    actions = enqueue_and_read(clock, queue, 3)
    clock.advance(0.004)
    for a in actions:
        writer.submit(final(a, clock))
    assert store.records == {}  # written together on the next reactor turn, as one batch
    clock.advance(0)
    assert len(store.records) == 3
    rec = store.records[("pb-1", "h1", "a-0")]
    assert rec.status == "ok" and rec.acked_at_ms == round(clock.seconds() * 1000)
    assert ensureDeferred(queue.depth("h1")).result == 0
    assert ensureDeferred(queue.lookup("h1", "a-0")).result == "done:ok"
    view = ensureDeferred(cache.get_ack("h1", "a-1")).result
    assert view["status"] == "acked" and view["ack_status"] == "ok" and view["latency_ms"] == 4.0
    assert latency_count(metrics) == 3
    # a repeat (claimed again after a lost write) is written again but not measured twice
    writer.submit(final(actions[0], clock, repeat=True))
    clock.advance(0)
    assert latency_count(metrics) == 3 and writer.written == 3


def test_store_outage_loses_no_ack_and_keeps_entries_until_logged():
    clock, queue, store, cache, metrics, writer = setup(failures=5)
    actions = enqueue_and_read(clock, queue, 2)
    for a in actions:
        writer.submit(final(a, clock))
    clock.advance(0)
    assert store.records == {} and writer.failures == 1
    assert ensureDeferred(queue.depth("h1")).result == 2  # still queued: nothing lost on a crash now
    for _ in range(200):
        clock.advance(0.5)
    assert len(store.records) == 2 and writer.failures == 0
    assert ensureDeferred(queue.depth("h1")).result == 0
    assert writer.status() == {"buffered": 0, "written": 2, "overflowed": 0}


def test_buffer_is_bounded_and_overflow_stays_in_the_queue():
    clock, queue, store, cache, metrics, writer = setup(failures=1000, bound=2)
    actions = enqueue_and_read(clock, queue, 3)
    for a in actions:
        writer.submit(final(a, clock))
    assert len(writer.buffer) == 2 and writer.overflowed == 1
    assert ensureDeferred(queue.depth("h1")).result == 3


class FakeEngine:
    def __init__(self):
        self.acks = []

    def on_ack(self, host, ack):
        self.acks.append((host, ack))


def test_ingest_routes_acks_and_keeps_latest_state_and_health():
    """Typed values in (the bus subscriber decoded and validated them once)."""
    clock = Clock()
    clock.advance(50)
    cache = MemoryRuntimeCache(clock)
    engine = FakeEngine()
    ingest = Ingest(engine, cache, clock)
    ack = hj.ActionAck("a-1", hj.AckStatus.OK, hj.Timestamp(1, 0))
    ingest.ack_value("h1", ack)
    assert engine.acks == [("h1", ack)]  # typed end to end: no dict round trip
    t = hj.Timestamp(5, 0)
    ingest.state_value("h1", hj.StateDiff(2, t, {"lines": ["b"]}))
    ingest.state_value("h1", hj.StateDiff(1, t, {"lines": ["r"]}))  # a restarted harness: kept
    assert ensureDeferred(cache.get_snapshot("h1", "state")).result["payload"] == {"lines": ["r"]}
    ingest.state_value("h1", hj.StateDiff(3, t, {"lines": ["c"]}))
    ingest.state_value("h1", hj.StateDiff(2, t, {"lines": ["old"]}))  # older: dropped
    assert ensureDeferred(cache.get_snapshot("h1", "state")).result["sequence"] == 3

    ingest.health_value("h1", hj.HealthHeartbeat(0))
    health = ensureDeferred(cache.get_snapshot("h1", "health")).result
    assert health["degraded"] is False and health["received_at_ms"] == 50_000
    assert ensureDeferred(cache.get_snapshot("h2", "health")).result is None
    ingest.forget("h1")
    assert ingest.last_state_seq == {}


class BatchStore(FlakyStore):
    def __init__(self):
        super().__init__()
        self.calls = []

    def record_actions(self, tenant, records):
        self.calls.append((tenant.private_beach_id, [r.action_id for r in records]))
        out = []
        for r in records:
            key = (tenant.private_beach_id, r.host_session_id, r.action_id)
            out.append("no_session" if r.host_session_id == "gone" else
                       "duplicate" if key in self.records else "stored")
            self.records.setdefault(key, r)
        return succeed(out)


def test_a_batch_of_one_beach_is_one_group():
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = BatchStore()
    writer = AckWriter(queue, clock, store=store, metrics=Metrics(CollectorRegistry()))
    actions = enqueue_and_read(clock, queue, 3)
    for a in actions:  # buffered before the loop runs: one batch
        writer.submit(final(a, clock))
    writer.start()
    assert store.calls == [("pb-1", ["a-0", "a-1", "a-2"])]
    assert ensureDeferred(queue.depth("h1")).result == 0 and writer.written == 3


def test_batches_per_beach_skip_vanished_sessions_and_confirm_each_stored_ack():
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = BatchStore()
    writer = AckWriter(queue, clock, store=store, metrics=Metrics(CollectorRegistry()))
    confirmed = []
    writer.confirm = confirmed.append
    finals = one_final_each(clock, queue, ("h1", "pb-1"), ("gone", "pb-1"), ("h2", "pb-2"))
    for f in finals:
        writer.submit(f)
    writer.start()
    assert sorted(store.calls) == [("pb-1", ["h1-a", "gone-a"]), ("pb-2", ["h2-a"])]
    # the vanished session's ack is not logged anywhere, but it does not hold the batch back
    assert writer.orphans == 1 and writer.failures == 0 and writer.written == 3
    assert confirmed == finals
    assert all(ensureDeferred(queue.depth(h)).result == 0 for h in ("h1", "gone", "h2"))


def test_a_store_that_takes_several_beaches_gets_one_call_per_batch():
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = BatchStore()
    writer = AckWriter(queue, clock, store=store, metrics=Metrics(CollectorRegistry()))
    finals = one_final_each(clock, queue, ("h2", "pb-2"), ("gone", "pb-1"), ("h1", "pb-1"))
    for f in finals:
        writer.submit(f)
    writer.start()
    assert store.together == [["pb-1", "pb-2"]]  # one call, beaches in a fixed order
    assert writer.orphans == 1 and writer.written == 3
    assert all(ensureDeferred(queue.depth(h)).result == 0 for h in ("h1", "gone", "h2"))


def test_a_failed_beach_retries_the_whole_batch_without_duplicates():
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = BatchStore()
    failing = {"pb-2": 2}
    plain = store.record_actions

    def record_actions(tenant, records):
        if failing.get(tenant.private_beach_id):
            failing[tenant.private_beach_id] -= 1
            return fail(StoreUnavailable("database down"))
        return plain(tenant, records)

    store.record_actions = record_actions
    writer = AckWriter(queue, clock, store=store, metrics=Metrics(CollectorRegistry()))
    for f in one_final_each(clock, queue, ("h1", "pb-1"), ("h2", "pb-2")):
        writer.submit(f)
    writer.start()
    assert writer.failures == 1 and writer.written == 0
    assert ensureDeferred(queue.depth("h1")).result == 1  # nothing dequeued before the whole batch is logged
    for _ in range(20):
        clock.advance(0.5)
    assert writer.written == 2 and writer.failures == 0
    assert len(store.records) == 2 and ensureDeferred(queue.depth("h2")).result == 0


class SlowStore(BatchStore):
    """record_actions answers only when the test fires its Deferred."""

    def __init__(self):
        super().__init__()
        self.waiting = []

    def record_actions(self, tenant, records):
        answer = super().record_actions(tenant, records)
        d = Deferred()
        self.waiting.append(d)
        return d.addCallback(lambda _: answer)


def test_acks_arriving_during_a_write_start_the_next_batch_up_to_the_limit_and_count_in_the_bound():
    clock = Clock()
    clock.advance(1000)
    queue = MemoryActionQueue(clock)
    store = SlowStore()
    writer = AckWriter(queue, clock, store=store, metrics=Metrics(CollectorRegistry()), bound=5,
                       concurrency=2)
    writer.start()
    actions = enqueue_and_read(clock, queue, 6)
    for a in actions[:3]:
        writer.submit(final(a, clock))
        clock.advance(0)
    # a-0 went at once, a-1 started a second batch while a-0 was written; a-2 waits for a slot
    assert [c[1] for c in store.calls] == [["a-0"], ["a-1"]] and list(writer.buffer) != []
    writer.submit(final(actions[3], clock))
    writer.submit(final(actions[4], clock))
    writer.submit(final(actions[5], clock))  # 5 held (2 being written, 3 buffered): over the bound
    clock.advance(0)
    assert writer.overflowed == 1 and writer.status()["buffered"] == 5
    store.waiting[1].callback(None)  # the second batch finishes first; its slot goes to the rest
    assert [c[1] for c in store.calls][2] == ["a-2", "a-3", "a-4"] and writer.written == 1
    assert ensureDeferred(queue.lookup("h1", "a-1")).result == "done:ok"
    assert ensureDeferred(queue.lookup("h1", "a-0")).result == "queued"  # not before its log write
    store.waiting[0].callback(None)
    store.waiting[2].callback(None)
    assert writer.written == 5 and writer.status()["buffered"] == 0
    assert ensureDeferred(queue.depth("h1")).result == 1  # a-5 overflowed: still queued, claimed later
    ensureDeferred(writer.stop())
    clock.advance(1)
    assert not writer.running
