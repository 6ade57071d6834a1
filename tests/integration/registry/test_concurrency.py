"""Duplicate submissions arriving together: one row per natural id, one live lease, same token."""

import pytest_twisted
from twisted.internet.defer import gatherResults

from beachmanager.registry.store import Op, SessionRegistration, Tenant

NOW = 1_700_000_000_000
A = Tenant("pb-a", "acct-a")
N = 24


@pytest_twisted.ensureDeferred
async def test_concurrent_duplicate_registrations(store):
    reg = SessionRegistration("host-1", harness_type="custom", viewer_passcode="CODE")
    results = await gatherResults([store.register_session(A, reg, Op.new(), NOW + i) for i in range(N)],
                                  consumeErrors=True)
    assert len({r.lease.token for r in results}) == 1
    assert len({r.session.harness_id for r in results}) == 1
    assert [s.host_session_id for s in await store.list_sessions(A)] == ["host-1"]
    live = await store.live_leases(A, NOW + N)
    assert [lease.token for lease in live] == [results[0].lease.token]
    events = await store.controller_events(A, "host-1", limit=1000)
    assert sum(e.event_type == "registered" for e in events) == N  # one per request, none doubled


@pytest_twisted.ensureDeferred
async def test_concurrent_acquires_for_the_same_controller_share_one_lease(store):
    await store.register_session(A, SessionRegistration("host-1"), Op.new(), NOW)
    ops = [store.acquire_lease(A, "host-1", "ctl", "ui", 30_000, Op.new(), NOW + 1) for _ in range(N)]
    ops += [store.acquire_lease(A, "host-1", f"ctl-{i}", "ui", 30_000, Op.new(), NOW + 1) for i in range(4)]
    leases = await gatherResults(ops, consumeErrors=True)
    assert len({lease.token for lease in leases[:N]}) == 1
    assert len({lease.token for lease in leases}) == 5
    live = await store.live_leases(A, NOW + 2)
    assert len([lease for lease in live if lease.reason == "ui"]) == 5


@pytest_twisted.ensureDeferred
async def test_concurrent_attaches_and_registrations_of_one_host(store):
    ops = [store.attach_session(A, "host-9", "CODE-9", Op.new(), NOW) for _ in range(N // 2)]
    ops += [store.register_session(A, SessionRegistration("host-9"), Op.new(), NOW) for _ in range(N // 2)]
    await gatherResults(ops, consumeErrors=True)
    sessions = await store.list_sessions(A)
    assert [s.host_session_id for s in sessions] == ["host-9"]
    assert await store.join_code(A, "host-9") == "CODE-9"
    assert len(await store.live_leases(A, NOW + 1)) == 1
