"""The assignment store contract, run against real Redis (Lua scripts) and the in-memory twin."""

from __future__ import annotations

import pytest_twisted

from beachmanager.assign.model import DRAINING, SERVING, InstanceInfo
from beachmanager.assign.rendezvous import Candidate, choose, rank

from .conftest import DEAD_AFTER_MS

TTL_MS = 5_000


async def join(store, instance_id, capacity=10, state=SERVING, fresh=False, incarnation="i1"):
    info = InstanceInfo(instance_id, f"http://{instance_id}.test:8081", capacity, state)
    return await store.heartbeat(info, TTL_MS, incarnation, fresh=fresh)


@pytest_twisted.ensureDeferred
async def test_heartbeat_registers_a_live_member(harness):
    s = harness.store
    hb = await join(s, "mgr-a", capacity=7)
    assert hb.load == 0 and not hb.existed and hb.now_ms > 1_600_000_000_000
    again = await join(s, "mgr-a", capacity=7, incarnation="i2")
    assert again.existed and again.previous_incarnation == "i1"
    [m] = await s.members()
    assert (m.id, m.endpoint, m.capacity, m.load, m.state, m.live) == (
        "mgr-a", "http://mgr-a.test:8081", 7, 0, SERVING, True)
    await harness.wait(DEAD_AFTER_MS / 1000 + 0.2)
    [m] = await s.members()
    assert not m.live and m.age_ms > DEAD_AFTER_MS


@pytest_twisted.ensureDeferred
async def test_placement_follows_the_hash_and_is_sticky(harness):
    s = harness.store
    ids = ["mgr-a", "mgr-b", "mgr-c"]
    for i in ids:
        await join(s, i, capacity=1000)
    for n in range(120):
        host = f"host-{n}"
        d = await s.assign(host)
        assert d.status == "assigned" and d.owner == rank(host, ids)[0], host
        assert d.move.reason == "attach" and d.move.from_ is None
    # Placement is sticky: asking again keeps the owner, even after membership grows.
    await join(s, "mgr-d", capacity=1000)
    for n in range(120):
        d = await s.assign(f"host-{n}")
        assert d.status == "kept" and d.owner == rank(f"host-{n}", ids)[0]
    owned = {i: await s.owned(i) for i in ids}
    assert sum(len(v) for v in owned.values()) == 120
    assert {m.id: m.load for m in await s.members()} == {**{i: len(owned[i]) for i in ids}, "mgr-d": 0}
    rec = await s.lookup("host-0")
    assert rec.owner == rank("host-0", ids)[0] and rec.reason == "attach" and rec.reassigned_from is None


@pytest_twisted.ensureDeferred
async def test_capacity_spills_in_rank_order_and_refuses_when_all_full(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=2)
    await join(s, "mgr-b", capacity=3)
    await join(s, "mgr-c", capacity=4, state=DRAINING)
    loads = {"mgr-a": 0, "mgr-b": 0}
    for n in range(5):
        host = f"h{n}"
        expected = choose(host, [Candidate(i, c, loads[i]) for i, c in (("mgr-a", 2), ("mgr-b", 3))])
        d = await s.assign(host)
        assert d.owner == expected.id
        loads[d.owner] += 1
    assert loads == {"mgr-a": 2, "mgr-b": 3}
    assert await s.assign("one-too-many") is None
    assert await s.lookup("one-too-many") is None


@pytest_twisted.ensureDeferred
async def test_a_dead_owner_loses_its_host_on_the_next_placement(harness):
    s = harness.store
    await join(s, "mgr-a")
    d = await s.assign("h1")
    assert d.owner == "mgr-a"
    await harness.wait(DEAD_AFTER_MS / 1000 + 0.2)
    await join(s, "mgr-b")
    d = await s.assign("h1")
    assert (d.status, d.owner, d.move.from_, d.move.reason) == ("assigned", "mgr-b", "mgr-a", "failover")
    assert await s.owned("mgr-a") == set() and await s.owned("mgr-b") == {"h1"}


@pytest_twisted.ensureDeferred
async def test_sweep_moves_a_dead_members_hosts_and_strands_what_does_not_fit(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=20)
    for n in range(12):
        assert (await s.assign(f"h{n}")).owner == "mgr-a"
    assert (await s.sweep()).moves == []
    await harness.wait(DEAD_AFTER_MS / 1000 + 0.2)
    await join(s, "mgr-b", capacity=5)
    await join(s, "mgr-c", capacity=4)
    result = await s.sweep()
    assert len(result.moves) == 9 and len(result.stranded) == 3
    assert all(m.from_ == "mgr-a" and m.reason == "failover" for m in result.moves)
    assert {h for h, owner in result.stranded} == await s.owned("mgr-a")
    assert len(await s.owned("mgr-b")) == 5 and len(await s.owned("mgr-c")) == 4
    for m in result.moves:
        rec = await s.lookup(m.host_session_id)
        assert (rec.owner, rec.reassigned_from, rec.reason) == (m.to, "mgr-a", "failover")
    # Room appears: the next sweep places the stranded hosts.
    await join(s, "mgr-d", capacity=10)
    again = await s.sweep()
    assert len(again.moves) == 3 and again.stranded == []
    assert await s.owned("mgr-a") == set()


@pytest_twisted.ensureDeferred
async def test_expired_members_without_hosts_are_pruned(harness):
    s = harness.store
    info = InstanceInfo("mgr-short", "http://x", 3)
    await s.heartbeat(info, 100, "i1")
    await harness.wait(0.3)
    await s.sweep()
    assert [m.id for m in await s.members()] == []


@pytest_twisted.ensureDeferred
async def test_handover_moves_hosts_to_their_next_owner(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=10)
    for n in range(6):
        await s.assign(f"h{n}")
    await join(s, "mgr-b", capacity=4)
    await join(s, "mgr-a", capacity=10, state=DRAINING)
    result = await s.handover("mgr-a")
    assert len(result.moves) == 4 and len(result.stranded) == 2
    assert all((m.from_, m.to, m.reason) == ("mgr-a", "mgr-b", "drain") for m in result.moves)
    # A draining member is live: its remaining hosts stay with it (no failover) ...
    assert (await s.sweep()).moves == []
    # ... and is never chosen for new hosts.
    assert await s.assign("new-host") is None


@pytest_twisted.ensureDeferred
async def test_release_adopt_ready_and_leave(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=3)
    await join(s, "mgr-b", capacity=3)
    d = await s.assign("h1")
    other = "mgr-b" if d.owner == "mgr-a" else "mgr-a"
    assert await s.mark_ready("h1", other, True) is False
    assert await s.mark_ready("h1", d.owner, True) is True
    assert (await s.lookup("h1")).ready
    assert await s.release("h1", expected_owner=other) is None
    moved = await s.release("h1", expected_owner=d.owner)
    assert moved.from_ == d.owner and moved.to is None
    assert await s.lookup("h1") is None and await s.owned(d.owner) == set()

    adopted = await s.adopt("mgr-a", 2, ["x1", "x2", "x3"])
    assert [m.host_session_id for m in adopted] == ["x1", "x2"]
    assert all(m.reason == "restore" for m in adopted)
    assert (await s.adopt("mgr-b", 3, ["x1"])) == []  # owned already: untouched

    # Leaving with hosts orphans them at once: the next sweep moves them to a survivor.
    assert await s.leave("mgr-a") == 2
    result = await s.sweep()
    assert {m.host_session_id for m in result.moves} == {"x1", "x2"}
    assert all(m.to == "mgr-b" for m in result.moves)
    assert (await s.lookup("x1")).ready is False
    moves = await s.recent_moves(10)
    assert moves[0].reason == "failover" and moves[-1].reason in ("attach", "release", "restore")


@pytest_twisted.ensureDeferred
async def test_fresh_start_clears_the_old_record_but_keeps_hosts(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=5, state=DRAINING)
    await join(s, "mgr-b", capacity=5)
    d = await s.assign("h1")
    assert d.owner == "mgr-b"
    hb = await join(s, "mgr-b", capacity=5, fresh=True, incarnation="i2")
    assert hb.existed and hb.load == 1 and hb.previous_incarnation == "i1"
    assert (await s.assign("h1")).status == "kept"


@pytest_twisted.ensureDeferred
async def test_holdings_say_whether_the_store_still_knows_us(harness):
    s = harness.store
    assert await s.holdings("mgr-a") == (False, set())
    await join(s, "mgr-a")
    await s.assign("h1")
    assert await s.holdings("mgr-a") == (True, {"h1"})
    await s.leave("mgr-a")
    assert await s.holdings("mgr-a") == (False, {"h1"})


@pytest_twisted.ensureDeferred
async def test_rebalance_moves_hosts_up_their_ranking_only(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=100)
    hosts = [f"h{n}" for n in range(60)]
    for h in hosts:
        await s.assign(h)
    await join(s, "mgr-b", capacity=100)
    await join(s, "mgr-c", capacity=5)
    first = await s.rebalance("mgr-a", 7)
    assert len(first.moves) == 7 and all(m.reason == "rebalance" for m in first.moves)
    total = list(first.moves)
    while True:
        more = await s.rebalance("mgr-a", 100)
        if not more.moves:
            break
        total += more.moves
    for m in total:
        assert rank(m.host_session_id, ["mgr-a", m.to]).index(m.to) == 0  # moved up its ranking
    owned = {i: await s.owned(i) for i in ("mgr-a", "mgr-b", "mgr-c")}
    assert len(owned["mgr-c"]) == 5  # full: the rest of its first choices went to mgr-b or stay
    for h in owned["mgr-a"]:
        better = rank(h, ["mgr-a", "mgr-b", "mgr-c"])
        assert better.index("mgr-a") < better.index("mgr-b")  # mgr-a keeps only hosts it outranks b on
    # mgr-b outranks mgr-a on every host it got; mgr-c is full: nothing more moves.
    assert (await s.rebalance("mgr-b", 100)).moves == []


@pytest_twisted.ensureDeferred
async def test_take_over_on_the_hosts_word_is_a_compare_and_set_that_bumps_the_epoch(harness):
    s = harness.store
    for i in ("mgr-a", "mgr-b", "mgr-c"):
        await join(s, i, capacity=10)
    d = await s.assign("host-1")
    owner = d.owner
    others = sorted({"mgr-a", "mgr-b", "mgr-c"} - {owner})
    epoch = (await s.lookup("host-1")).epoch
    # the owner took it just now: the flap guard refuses
    r = await s.take_over("host-1", others[0], owner, epoch, 60_000)
    assert (r.status, r.owner, r.epoch) == ("recent", owner, epoch)
    # the host named an epoch that is not the store's (a report about an older owner)
    assert (await s.take_over("host-1", others[0], owner, epoch - 1, 0)).status == "stale"
    # nobody can claim on behalf of the owner itself, nor name the wrong owner
    assert (await s.take_over("host-1", owner, owner, epoch, 0)).status == "moved"
    assert (await s.take_over("host-1", others[0], others[1], epoch, 0)).status == "moved"
    # two standbys race: exactly one wins, at epoch + 1
    r1 = await s.take_over("host-1", others[0], owner, epoch, 0)
    r2 = await s.take_over("host-1", others[1], owner, epoch, 0)
    assert (r1.status, r1.owner, r1.epoch) == ("taken", others[0], epoch + 1)
    assert r2.status == "moved" and r2.owner == others[0]
    rec = await s.lookup("host-1")
    assert (rec.owner, rec.epoch, rec.reason, rec.reassigned_from) == (
        others[0], epoch + 1, "failover", owner)
    assert "host-1" in await s.owned(others[0]) and "host-1" not in await s.owned(owner)


@pytest_twisted.ensureDeferred
async def test_take_over_refuses_a_full_claimant(harness):
    s = harness.store
    await join(s, "mgr-a", capacity=10)
    await join(s, "mgr-b", capacity=1)
    await s.assign("host-x")
    owner = (await s.lookup("host-x")).owner
    if owner == "mgr-b":  # make mgr-a the owner so that mgr-b is the claimant
        await s.release("host-x")
        await join(s, "mgr-b", capacity=0)
        await s.assign("host-x")
        await join(s, "mgr-b", capacity=1)
    await s.assign("host-y")  # fills mgr-b if it ranks first, else goes to mgr-a
    if "host-y" not in await s.owned("mgr-b"):
        await s.adopt("mgr-b", 1, ["host-z"])
    assert len(await s.owned("mgr-b")) == 1
    epoch = (await s.lookup("host-x")).epoch
    assert (await s.take_over("host-x", "mgr-b", "mgr-a", epoch, 0)).status == "full"
