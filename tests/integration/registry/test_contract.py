"""One contract, two stores: the in-memory twin must behave exactly like PostgreSQL."""

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock

from beachmanager.controller.leases import LeaseError, Leases
from beachmanager.registry.store import (
    MAX_ACTION_BATCH,
    REGISTER_REASON,
    ActionLogged,
    ActionRecord,
    AttachState,
    Op,
    ReleaseOutcome,
    SessionNotFound,
    SessionRegistration,
    Tenant,
)

NOW = 1_700_000_000_000
A = Tenant("pb-a", "acct-a")
B = Tenant("pb-b", "acct-b")
REG = SessionRegistration("host-1", harness_type="terminal_shim", capabilities=("pty",), location_hint="lab",
                          metadata={"x": [1, 2]}, version="0.1", transport_mode="fast_path",
                          viewer_passcode="PASS-1")


@pytest_twisted.ensureDeferred
async def test_register_upserts_and_renews_the_same_lease(store):
    first = await store.register_session(A, REG, Op.new(), NOW)
    s = first.session
    assert (s.private_beach_id, s.host_session_id, s.harness_type, s.capabilities, s.metadata) == (
        "pb-a", "host-1", "terminal_shim", ("pty",), {"x": [1, 2]})
    assert (s.attach_method, s.attach_state, s.has_join_code, s.created_at_ms) == (
        "register", "registered", True, NOW)
    lease = first.lease
    assert (lease.reason, lease.controller_account_id, lease.issued_by_account_id) == (REGISTER_REASON, "acct-a", "acct-a")
    assert (lease.issued_at_ms, lease.expires_at_ms) == (NOW, NOW + 30_000)
    again = await store.register_session(A, SessionRegistration("host-1", capabilities=("a", "b")), Op.new(), NOW + 5)
    assert again.lease.token == lease.token and again.lease.expires_at_ms == NOW + 5 + 30_000
    assert again.session.harness_id == s.harness_id and again.session.capabilities == ("a", "b")
    assert again.session.created_at_ms == NOW and again.session.updated_at_ms == NOW + 5
    assert await store.join_code(A, "host-1") == "PASS-1"  # kept: the second registration named none
    assert [x.host_session_id for x in await store.list_sessions(A)] == ["host-1"]


@pytest_twisted.ensureDeferred
async def test_a_retried_write_is_a_no_op(store):
    op = Op.new()
    one = await store.register_session(A, REG, op, NOW)
    two = await store.register_session(A, REG, op, NOW)  # the same op: a retry after a lost answer
    assert one.lease.token == two.lease.token
    events = await store.controller_events(A, "host-1")
    assert sorted(e.event_type for e in events) == ["lease_acquired", "registered"]
    lease = await store.acquire_lease(A, "host-1", "c", "ui", 5_000, op2 := Op.new(), NOW)
    assert (await store.acquire_lease(A, "host-1", "c", "ui", 5_000, op2, NOW)).token == lease.token
    rel = Op.new()
    assert await store.release_lease(A, "host-1", lease.token, rel, NOW + 1) is ReleaseOutcome.RELEASED
    assert await store.release_lease(A, "host-1", lease.token, rel, NOW + 1) is ReleaseOutcome.ALREADY_RELEASED
    kinds = [e.event_type for e in await store.controller_events(A, "host-1")]
    assert kinds.count("lease_acquired") == 2 and kinds.count("lease_released") == 1


@pytest_twisted.ensureDeferred
async def test_leases_renew_expire_release_and_mismatch(store):
    await store.register_session(A, REG, Op.new(), NOW)
    ui = await store.acquire_lease(A, "host-1", "ctl", "ui", 1_000, Op.new(), NOW)
    renewed = await store.acquire_lease(A, "host-1", "ctl", "ui", 1_000, Op.new(), NOW + 900)
    assert renewed.token == ui.token and renewed.expires_at_ms == NOW + 1_900
    e2e = await store.acquire_lease(A, "host-1", "ctl", "e2e", 1_000, Op.new(), NOW + 900)
    anon = await store.acquire_lease(A, "host-1", None, None, 1_000, Op.new(), NOW + 900)
    assert len({ui.token, e2e.token, anon.token}) == 3
    live = await store.live_leases(A, NOW + 1_000)
    assert {x.token for x in live} >= {ui.token, e2e.token, anon.token}
    # expiry: the same account and reason after expiry gets a new token; the old is marked expired
    fresh = await store.acquire_lease(A, "host-1", "ctl", "ui", 1_000, Op.new(), NOW + 1_900)
    assert fresh.token != ui.token
    old = await store.find_lease(A, "host-1", ui.token)
    assert (old.revoke_reason, old.revoked_at_ms) == ("expired", NOW + 1_900)
    assert ui.token not in {x.token for x in await store.live_leases(A, NOW + 1_901)}
    # release and mismatch
    assert await store.release_lease(A, "host-1", e2e.token, Op.new(), NOW + 1_950) is ReleaseOutcome.RELEASED
    released = await store.find_lease(A, "host-1", e2e.token)
    assert (released.revoke_reason, released.expires_at_ms) == ("released", NOW + 1_900)
    for bad in ("00000000-0000-0000-0000-000000000000", "garbage", fresh.token.upper().replace("-", "")):
        outcome = await store.release_lease(A, "host-1", bad, Op.new(), NOW + 2_000)
        assert outcome is (ReleaseOutcome.UNKNOWN if bad != fresh.token.upper().replace("-", "")
                           else ReleaseOutcome.RELEASED)
    with pytest.raises(SessionNotFound):
        await store.acquire_lease(A, "nobody", "c", None, 1_000, Op.new(), NOW)
    with pytest.raises(SessionNotFound):
        await store.release_lease(A, "nobody", fresh.token, Op.new(), NOW)
    kinds = [e.event_type for e in await store.controller_events(A, "host-1")]
    assert kinds[:3] == ["lease_released", "lease_released", "lease_acquired"]
    assert "lease_expired" in kinds and kinds[-1] == "registered"


@pytest_twisted.ensureDeferred
async def test_events_filters_order_and_limit(store):
    await store.register_session(A, REG, Op.new(), NOW)
    for i in range(5):
        await store.acquire_lease(A, "host-1", f"c{i}", None, 1_000, Op.new(), NOW + 10 * (i + 1))
    events = await store.controller_events(A, "host-1")
    assert [e.occurred_at_ms for e in events] == [NOW + 50, NOW + 40, NOW + 30, NOW + 20, NOW + 10, NOW, NOW]
    assert [e.event_type for e in events[-2:]] == ["lease_acquired", "registered"]  # same time: newest first
    assert len(await store.controller_events(A, "host-1", limit=3)) == 3
    since = await store.controller_events(A, "host-1", since_ms=NOW + 30)
    assert [e.controller_account_id for e in since] == ["c4", "c3", "c2"]
    only = await store.controller_events(A, "host-1", event_type="registered")
    assert [(e.event_type, e.reason, e.issued_by_account_id) for e in only] == [
        ("registered", REGISTER_REASON, "acct-a")]
    assert await store.controller_events(A, "nobody") == []
    assert only[0].as_json()["timestamp_ms"] == NOW


@pytest_twisted.ensureDeferred
async def test_attach_by_code_records_and_states(store):
    s = await store.attach_session(A, "host-2", "JOIN-2", Op.new(), NOW)
    assert (s.attach_method, s.attach_state, s.has_join_code, s.harness_type, s.capabilities) == (
        "code", "pending_attach", True, None, ())
    assert await store.join_code(A, "host-2") == "JOIN-2"
    assert await store.set_attach_state(A, "host-2", AttachState.ATTACHED, NOW + 1) is True
    assert (await store.get_session(A, "host-2")).attach_state == "attached"
    assert await store.set_attach_state(A, "nobody", AttachState.ATTACHED, NOW) is False
    # a registered session attached by code afterwards keeps its harness fields
    await store.register_session(A, REG, Op.new(), NOW)
    s = await store.attach_session(A, "host-1", "JOIN-1", Op.new(), NOW + 2)
    assert (s.attach_method, s.attach_state, s.harness_type) == ("code", "pending_attach", "terminal_shim")
    assert await store.join_code(A, "host-1") == "JOIN-1"
    events = await store.controller_events(A, "host-2")
    assert [(e.event_type, e.reason) for e in events] == [("registered", "attach_by_code")]


@pytest_twisted.ensureDeferred
async def test_tenants_cannot_see_or_touch_each_other(store):
    ra = await store.register_session(A, REG, Op.new(), NOW)
    await store.register_session(B, SessionRegistration("host-b"), Op.new(), NOW)
    await store.attach_session(B, "host-1", "B-CODE", Op.new(), NOW)  # the same host in another beach
    assert [s.host_session_id for s in await store.list_sessions(A)] == ["host-1"]
    assert sorted(s.host_session_id for s in await store.list_sessions(B)) == ["host-1", "host-b"]
    assert await store.get_session(A, "host-b") is None
    assert await store.join_code(A, "host-1") == "PASS-1" and await store.join_code(B, "host-1") == "B-CODE"
    assert await store.find_lease(B, "host-1", ra.lease.token) is None
    assert await store.release_lease(B, "host-1", ra.lease.token, Op.new(), NOW) is ReleaseOutcome.UNKNOWN
    assert (await store.find_lease(A, "host-1", ra.lease.token)).revoked_at_ms is None
    with pytest.raises(SessionNotFound):
        await store.acquire_lease(A, "host-b", None, None, 1_000, Op.new(), NOW)
    assert {x.private_beach_id for x in await store.live_leases(B, NOW)} == {"pb-b"}
    assert await store.session_beaches("host-1") == ["pb-a", "pb-b"]
    assert await store.session_beaches("host-b") == ["pb-b"]
    assert await store.session_beaches("nobody") == []


@pytest_twisted.ensureDeferred
async def test_action_log_is_idempotent_on_the_action_id(store):
    await store.register_session(A, REG, Op.new(), NOW)
    action = ActionRecord("host-1", "act-1", "terminal_write", {"bytes": "ls\n"}, NOW, controller_token=None)
    assert await store.record_action(A, action) is True
    assert await store.record_action(A, action) is False
    results = await gatherResults([store.record_action(A, ActionRecord("host-1", f"x{i % 3}", "t", None, NOW))
                                   for i in range(9)])
    assert sorted(results) == [False] * 6 + [True] * 3
    with pytest.raises(SessionNotFound):
        await store.record_action(B, action)


@pytest_twisted.ensureDeferred
async def test_controller_leases_on_an_injected_clock(store):
    clock = Clock()
    clock.advance(NOW / 1000)
    leases = Leases(store, clock)
    await store.register_session(A, REG, Op.new(), NOW)
    lease = await leases.acquire(A, "host-1", reason="ui", ttl_ms=5)  # raised to 1 s
    assert lease.expires_at_ms == NOW + 1_000 and lease.controller_account_id == "acct-a"
    assert (await leases.check(A, "host-1", lease.token)).token == lease.token
    clock.advance(0.999)
    await leases.check(A, "host-1", lease.token)
    clock.advance(0.001)
    with pytest.raises(LeaseError) as info:
        await leases.check(A, "host-1", lease.token)
    assert info.value.code == "lease_expired"
    again = await leases.acquire(A, "host-1", reason="ui", ttl_ms=10**12)  # lowered to 24 h
    assert again.token != lease.token and again.expires_at_ms == NOW + 1_000 + 86_400_000
    await leases.release(A, "host-1", again.token)
    await leases.release(A, "host-1", again.token)
    with pytest.raises(LeaseError) as info:
        await leases.check(A, "host-1", again.token)
    assert info.value.code == "lease_revoked"
    for bad in ("nope", "00000000-0000-0000-0000-000000000001"):
        with pytest.raises(LeaseError) as info:
            await leases.release(A, "host-1", bad)
        assert info.value.code == "controller_mismatch"
        with pytest.raises(LeaseError) as info:
            await leases.check(A, "host-1", bad)
        assert info.value.code == "missing_lease"


def rec(host, action_id, status="ok", **kw):
    return ActionRecord(host, action_id, "terminal_write", {"bytes": action_id}, NOW, status=status,
                        acked_at_ms=NOW + 5, **kw)


@pytest_twisted.ensureDeferred
async def test_record_actions_is_one_idempotent_batch_per_tenant(store):
    await store.register_session(A, REG, Op.new(), NOW)
    await store.register_session(A, SessionRegistration("host-2"), Op.new(), NOW)
    lease = (await store.register_session(B, SessionRegistration("host-b"), Op.new(), NOW)).lease
    assert await store.record_action(A, rec("host-1", "old")) is True
    batch = [rec("host-1", "old"), rec("host-1", "n1", controller_token=lease.token),
             rec("host-2", "n1", status="rejected"), rec("host-1", "n1", status="later"),
             rec("host-b", "n2"), rec("host-1", "n3", controller_token="not-a-uuid")]
    out = await store.record_actions(A, batch)
    assert out == [ActionLogged.DUPLICATE, ActionLogged.STORED, ActionLogged.STORED, ActionLogged.DUPLICATE,
                   ActionLogged.NO_SESSION, ActionLogged.STORED]
    # the same batch again, and concurrently: nothing new, each key stored once
    again = await gatherResults([store.record_actions(A, batch) for _ in range(3)])
    assert all(o == [ActionLogged.DUPLICATE] * 4 + [ActionLogged.NO_SESSION, ActionLogged.DUPLICATE]
               for o in again)
    # the first of a repeated key won; single writes see the batch's rows
    assert await store.record_action(A, rec("host-1", "n1")) is False
    assert await store.record_action(A, rec("host-2", "n1")) is False
    # RLS both ways: B's session is invisible to A, and A's rows to B
    assert await store.record_actions(B, [rec("host-1", "x1"), rec("host-b", "n2")]) == [
        ActionLogged.NO_SESSION, ActionLogged.STORED]
    assert await store.record_action(B, rec("host-b", "n2")) is False
    assert await store.record_actions(A, []) == []
    with pytest.raises(ValueError, match="at most"):
        await store.record_actions(A, [rec("host-1", f"z{i}") for i in range(MAX_ACTION_BATCH + 1)])
    big = await store.record_actions(A, [rec("host-2", f"y{i}") for i in range(MAX_ACTION_BATCH)])
    assert big == [ActionLogged.STORED] * MAX_ACTION_BATCH


@pytest_twisted.ensureDeferred
async def test_record_actions_by_beach_writes_each_group_as_its_own_tenant(store):
    await store.register_session(A, REG, Op.new(), NOW)
    await store.register_session(B, SessionRegistration("host-b"), Op.new(), NOW)
    assert await store.record_actions_by_beach([]) == []
    out = await store.record_actions_by_beach([
        (A, [rec("host-1", "m1"), rec("host-b", "m2"), rec("host-1", "m1")]),
        (B, [rec("host-b", "m2"), rec("host-1", "m3")]),
        (A, [rec("host-1", "m1")])])
    # each group sees only its own tenant's sessions (row security per group, not per call)
    assert out == [[ActionLogged.STORED, ActionLogged.NO_SESSION, ActionLogged.DUPLICATE],
                   [ActionLogged.STORED, ActionLogged.NO_SESSION],
                   [ActionLogged.DUPLICATE]]
    assert await store.record_action(A, rec("host-1", "m1")) is False
    assert await store.record_action(B, rec("host-b", "m2")) is False
    assert await store.record_action(A, rec("host-1", "m3")) is True  # B's group wrote nothing of A's
    with pytest.raises(ValueError, match="at most"):
        await store.record_actions_by_beach([(A, [rec("host-1", f"z{i}") for i in range(MAX_ACTION_BATCH)]),
                                             (B, [rec("host-b", "z")])])


@pytest_twisted.ensureDeferred
async def test_no_reason_and_an_empty_reason_are_one_lease(store):
    """Found by schemathesis: the unique index coalesces NULL to '', so must the lookup."""
    await store.register_session(A, REG, Op.new(), NOW)
    one = await store.acquire_lease(A, "host-1", "acct-a", None, 5_000, Op.new(), NOW)
    two = await store.acquire_lease(A, "host-1", "acct-a", "", 5_000, Op.new(), NOW + 1)
    three = await store.acquire_lease(A, "host-1", "", None, 5_000, Op.new(), NOW + 2)
    four = await store.acquire_lease(A, "host-1", None, "", 5_000, Op.new(), NOW + 3)
    assert one.token == two.token and two.expires_at_ms == NOW + 1 + 5_000
    assert three.token == four.token != one.token
