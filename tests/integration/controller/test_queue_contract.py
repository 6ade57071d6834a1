"""One contract for both action queues: the in-memory twin and Redis Streams (real Redis)."""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from beachmanager.controller.queue import QueueError, QueueFull

from .support import action, close_queue, make_queue

KINDS = ["memory", "redis"]


@pytest.fixture(params=KINDS)
def q(request):
    queue = make_queue(request.param, bound=5)
    yield queue
    close_queue(queue)


@pytest.fixture(params=KINDS)
def q_small_memory(request):
    queue = make_queue(request.param, bound=50, done_memory=3)
    yield queue
    close_queue(queue)


@pytest_twisted.ensureDeferred
async def test_enqueue_read_in_order_once(q):
    r = await q.enqueue("h1", [action(1), action(2)])
    assert r.accepted == ["a-1", "a-2"] and r.duplicates == [] and r.depth == 2
    assert set(r.entries) == {"a-1", "a-2"}
    got = await q.read_new("h1", "m1", 10)
    assert [a.action_id for a in got] == ["a-1", "a-2"]
    assert got[0].command["payload"]["bytes"] == "echo MARK-1\r"
    assert got[0].controller_token == "tok-a" and got[0].enqueued_at > 0 and got[0].beach == "pb-1"
    assert got[0].entry_id == r.entries["a-1"]
    assert await q.read_new("h1", "m1", 10) == []
    assert await q.read_new("h1", "m2", 10) == []  # one group: read once, whoever reads
    assert await q.read_new("other", "m1", 10) == []
    assert await q.depth("h1") == 2


@pytest_twisted.ensureDeferred
async def test_ids_are_idempotent_per_host(q):
    await q.enqueue("h1", [action(1)])
    r = await q.enqueue("h1", [action(1), action(2)])
    assert r.accepted == ["a-2"] and r.duplicates == ["a-1"] and r.depth == 2
    # another host has its own ids
    r = await q.enqueue("h2", [action(1)])
    assert r.accepted == ["a-1"]
    assert await q.lookup("h1", "a-1") == "queued"
    got = await q.read_new("h1", "m1", 10)
    await q.finish("h1", [(got[0].action_id, got[0].entry_id, "ok")])
    assert await q.lookup("h1", "a-1") == "done:ok"
    assert await q.lookup("h1", "nope") is None
    r = await q.enqueue("h1", [action(1)])  # finished ids stay duplicates
    assert r.accepted == [] and r.duplicates == ["a-1"] and await q.depth("h1") == 1


@pytest_twisted.ensureDeferred
async def test_bound_is_all_or_nothing(q):
    await q.enqueue("h1", [action(i) for i in range(4)])
    with pytest.raises(QueueFull) as info:
        await q.enqueue("h1", [action(10), action(11)])
    assert info.value.depth == 4 and info.value.bound == 5 and info.value.retry_after_seconds >= 1
    assert await q.depth("h1") == 4
    assert await q.lookup("h1", "a-10") is None
    r = await q.enqueue("h1", [action(10)])
    assert r.accepted == ["a-10"] and r.depth == 5
    # duplicates do not count against the bound
    r = await q.enqueue("h1", [action(10)])
    assert r.duplicates == ["a-10"]
    with pytest.raises(QueueFull):
        await q.enqueue("h1", [action(12)])
    # finishing frees room (read or not)
    await q.finish("h1", [("a-0", (await q.read_new("h1", "m1", 1))[0].entry_id, "ok")])
    assert (await q.enqueue("h1", [action(12)])).accepted == ["a-12"]
    # force (re-enqueueing accepted work) ignores the bound
    r = await q.enqueue("h1", [action(13)], force=True)
    assert r.accepted == ["a-13"] and r.depth == 6


@pytest_twisted.ensureDeferred
async def test_batch_with_repeated_ids_is_refused(q):
    with pytest.raises(QueueError):
        await q.enqueue("h1", [action(1), action(1)])
    assert await q.depth("h1") == 0


@pytest_twisted.ensureDeferred
async def test_pending_and_stale_claims(q):
    await q.enqueue("h1", [action(1), action(2), action(3)])
    mine = await q.read_new("h1", "m1", 2)
    assert [a.action_id for a in mine] == ["a-1", "a-2"]
    assert [a.action_id for a in await q.read_pending("h1", "m1", 10)] == ["a-1", "a-2"]
    assert await q.read_pending("h1", "m2", 10) == []
    # not idle long enough: nothing to claim
    assert await q.claim_stale("h1", "m2", 5.0, 10) == []
    await deferLater(reactor, 0.15, lambda: None)  # the entries idle past 0.1 s (a duration)
    claimed = await q.claim_stale("h1", "m2", 0.1, 10)
    assert [a.action_id for a in claimed] == ["a-1", "a-2"]
    assert [a.action_id for a in await q.read_pending("h1", "m2", 10)] == ["a-1", "a-2"]
    assert await q.read_pending("h1", "m1", 10) == []
    # a finished entry is gone from every list
    await q.finish("h1", [(claimed[0].action_id, claimed[0].entry_id, "ok")])
    assert [a.action_id for a in await q.read_pending("h1", "m2", 10)] == ["a-2"]
    assert [a.action_id for a in await q.read_new("h1", "m1", 10)] == ["a-3"]
    assert await q.depth("h1") == 2


@pytest_twisted.ensureDeferred
async def test_finish_checks_the_entry_belongs_to_the_action(q):
    r = await q.enqueue("h1", [action(1), action(2)])
    # a stale entry id (e.g. from before a Redis restart) pointing at another action
    await q.finish("h1", [("a-1", r.entries["a-2"], "ok")])
    assert await q.depth("h1") == 2
    assert await q.lookup("h1", "a-1") == "done:ok"
    assert await q.lookup("h1", "a-2") == "queued"


@pytest_twisted.ensureDeferred
async def test_finish_many_finishes_each_host_as_finish_would(q):
    r1 = await q.enqueue("h1", [action(1), action(2)])
    r2 = await q.enqueue("h2", [action(1)])
    await q.enqueue("h3", [action(1)])
    await q.finish_many({"h1": [("a-1", r1.entries["a-1"], "ok"), ("a-2", r1.entries["a-1"], "late")],
                         "h2": [("a-1", r2.entries["a-1"], "rejected")], "h3": []})
    assert await q.depth("h1") == 1 and await q.depth("h2") == 0 and await q.depth("h3") == 1
    # a-2's entry id was a-1's: marked done, its entry left (as finish checks)
    assert [await q.lookup("h1", a) for a in ("a-1", "a-2")] == ["done:ok", "done:late"]
    assert await q.lookup("h2", "a-1") == "done:rejected" and await q.lookup("h3", "a-1") == "queued"
    assert [a.action_id for a in await q.read_new("h1", "m1", 10)] == ["a-2"]
    await q.finish_many({})


@pytest_twisted.ensureDeferred
async def test_blocking_read_wakes_on_enqueue_and_times_out(q):
    t0 = reactor.seconds()
    assert await q.read_new_many(["h1", "h2"], "m1", 10, 0.2) == {}
    assert reactor.seconds() - t0 >= 0.15

    d = ensureDeferred(q.read_new_many(["h1", "h2"], "m1", 10, 5.0))
    await deferLater(reactor, 0.05, lambda: None)  # nothing arrives within 50 ms
    assert not d.called
    await q.enqueue("h2", [action(7)])
    got = await d
    assert list(got) == ["h2"] and [a.action_id for a in got["h2"]] == ["a-7"]


@pytest_twisted.ensureDeferred
async def test_finished_ids_are_remembered_boundedly(q_small_memory):
    q = q_small_memory
    r = await q.enqueue("h1", [action(i) for i in range(5)])
    await q.finish("h1", [(f"a-{i}", r.entries[f"a-{i}"], "ok") for i in range(5)])
    assert await q.lookup("h1", "a-0") is None and await q.lookup("h1", "a-1") is None
    assert [await q.lookup("h1", f"a-{i}") for i in (2, 3, 4)] == ["done:ok"] * 3
    assert (await q.enqueue("h1", [action(0)])).accepted == ["a-0"]


@pytest_twisted.ensureDeferred
async def test_enqueue_for_a_consumer_hands_the_entries_over_at_once(q):
    await q.enqueue("h1", [action(1)])  # enqueued elsewhere, nobody read it yet
    r = await q.enqueue("h1", [action(2), action(3)], consumer="m1")
    assert r.accepted == ["a-2", "a-3"]
    assert [a.action_id for a in r.claimed] == ["a-1"]  # the unread entry ahead of them
    assert r.claimed[0].command["payload"]["bytes"] == "echo MARK-1\r"
    assert await q.read_new("h1", "m2", 10) == []  # nothing left for the readers
    pending = await q.read_pending("h1", "m1", 10)
    assert [a.action_id for a in pending] == ["a-1", "a-2", "a-3"]
    assert [a.entry_id for a in pending[1:]] == [r.entries["a-2"], r.entries["a-3"]]
    # still claimable when m1 dies, and finished as usual
    await deferLater(reactor, 0.02, lambda: None)  # the entries idle past 0.01 s (a duration)
    stale = await q.claim_stale("h1", "m2", 0.01, 10)
    assert [a.action_id for a in stale] == ["a-1", "a-2", "a-3"]
    await q.finish("h1", [(a.action_id, a.entry_id, "ok") for a in stale])
    assert await q.depth("h1") == 0
    # duplicates and a full queue hand nothing over
    r = await q.enqueue("h1", [action(2)], consumer="m1")
    assert r.accepted == [] and r.claimed == []
    await q.enqueue("h1", [action(i) for i in range(10, 15)], consumer="m1")
    with pytest.raises(QueueFull):
        await q.enqueue("h1", [action(20)], consumer="m1")
    assert await q.read_new("h1", "m1", 10) == []
