"""Concurrent claims on real Redis from many connections never overshoot capacity or double-own."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred

from beachmanager.assign.model import InstanceInfo

from .conftest import DEAD_AFTER_MS, Harness


@pytest.fixture
def redis_harness():
    h = Harness("redis")
    yield h
    pytest_twisted.blockon(ensureDeferred(h.cleanup()))


async def register(store, instance_id, capacity):
    await store.heartbeat(InstanceInfo(instance_id, "http://x", capacity), 10_000, "i1")


@pytest_twisted.ensureDeferred
async def test_concurrent_assignment_from_several_instances_never_overshoots(redis_harness):
    h = redis_harness
    stores = [h.redis_store() for _ in range(4)]  # four "instances", four connections
    caps = {"mgr-a": 30, "mgr-b": 25, "mgr-c": 20}
    for i, (mid, cap) in enumerate(caps.items()):
        await register(stores[i], mid, cap)
    hosts = [f"host-{n}" for n in range(100)]
    # Every connection asks for every host, all at once: 400 racing placements.
    calls = [ensureDeferred(s.assign(host)) for host in hosts for s in stores]
    results = await DeferredList(calls, consumeErrors=True)
    assert all(ok for ok, _ in results)
    decisions = [r for _, r in results]
    placed = {d.host_session_id: d.owner for d in decisions if d is not None}
    refused = {hosts[i // len(stores)] for i, d in enumerate(decisions) if d is None}
    assert len(placed) == 75 and refused == set(hosts) - set(placed)
    # Every answer for one host names the same owner (no double ownership) ...
    for d in decisions:
        if d is not None:
            assert placed[d.host_session_id] == d.owner
    # ... exactly one "assigned" per placed host, and the capacities hold exactly.
    assert sum(1 for d in decisions if d is not None and d.status == "assigned") == 75
    for mid, cap in caps.items():
        assert len(await stores[0].owned(mid)) == cap
    owned = [x for mid in caps for x in await stores[0].owned(mid)]
    assert len(owned) == len(set(owned)) == 75


@pytest_twisted.ensureDeferred
async def test_concurrent_sweeps_move_each_orphan_exactly_once(redis_harness):
    h = redis_harness
    stores = [h.redis_store() for _ in range(3)]
    await register(stores[0], "doomed", 100)
    for n in range(60):
        await stores[0].assign(f"host-{n}")
    await h.wait(DEAD_AFTER_MS / 1000 + 0.2)
    await register(stores[1], "mgr-b", 40)
    await register(stores[2], "mgr-c", 40)
    results = await DeferredList([ensureDeferred(s.sweep()) for s in stores for _ in range(3)])
    moves = [m for ok, r in results for m in r.moves]
    assert sorted(m.host_session_id for m in moves) == sorted(f"host-{n}" for n in range(60))
    assert {m.from_ for m in moves} == {"doomed"}
    b, c = await stores[0].owned("mgr-b"), await stores[0].owned("mgr-c")
    assert len(b) + len(c) == 60 and not b & c and len(b) <= 40 and len(c) <= 40
