"""The action routes over real HTTP on a whole manager, with a recording bus end handed to the
composition in place of the hosts' publisher, and host sessions announced on the manager's own
session stream (the end-to-end tests use a real devstack host).  Runs on the in-memory stores
and on real Redis + PostgreSQL."""

import json
import time
import uuid

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from beachmanager.protocol import harness as hj
from beachmanager.registry.store import Op, SessionRegistration, Tenant
from beachmanager.transport.events import SessionState
from tests.support.api_client import start_manager
from tests.support.eventually import eventually
from tests.support.servers import MACHINE_REDIS, least_privilege_database


class FakeHostBus:
    """The controller's bus end: records envelopes; a host's session is announced on the
    manager's stream (``up``/``down``), which is what readiness means everywhere."""

    def __init__(self):
        self.events = None  # the manager's session stream, once it runs
        self.sent: list[tuple[str, dict]] = []

    def up(self, host):
        self.events.publish(host, SessionState.READY)

    def down(self, host):
        self.events.publish(host, SessionState.BACKOFF, reason="the test took it down")

    def publish_action(self, host, payload):
        if not self.is_ready(host):
            return False
        self.sent.append((host, json.loads(payload)))
        return True

    def is_ready(self, host):
        return self.events is not None and self.events.is_ready(host)

    def ids(self, host):
        return [p["payload"]["id"] for h, p in self.sent if h == host]


@pytest.fixture(params=["memory", "redis+postgres"])
def stores(request):
    if request.param == "memory":
        yield {}
    else:
        with least_privilege_database() as (owner_url, login_url):
            yield {"redis_url": MACHINE_REDIS, "database_url": login_url,
                   "database_migrate_url": owner_url}


async def setup(stores, **overrides):
    bus = FakeHostBus()
    mgr = await start_manager(auth_bypass=True, publisher=bus, **stores, **overrides)
    bus.events = mgr.parts.events
    controller = mgr.parts.controller
    await controller.whenReady()
    return mgr, controller, bus


async def session_with_lease(mgr, host):
    store = mgr.parts.registry.store
    tenant = Tenant("pb-" + uuid.uuid4().hex[:8], "acct-1")
    now_ms = int(mgr.ctx.clock.seconds() * 1000)
    result = await store.register_session(tenant, SessionRegistration(host), Op.new(), now_ms)
    return tenant, result.lease.token


def cmd(i, **extra):
    return {"id": f"a-{i}", "action_type": "terminal_write",
            "payload": {"bytes": f"echo MARK-{i}\r"}, **extra}


def ack(i, status="ok", **extra):
    """An ActionAck as the bus subscriber hands it on (decoded once, typed)."""
    return hj.ActionAck(f"a-{i}", hj.AckStatus(status), hj.Timestamp(1, 0), **extra)


@pytest_twisted.ensureDeferred
async def test_submit_deliver_ack_and_read_back(stores):
    mgr, controller, bus = await setup(stores)
    try:
        host = "host-" + uuid.uuid4().hex[:8]
        _, token = await session_with_lease(mgr, host)
        bus.up(host)
        started = time.monotonic()
        r = await mgr.call("POST", f"/sessions/{host}/actions",
                           body={"controller_token": token, "actions": [cmd(1), cmd(2)]})
        assert r.status == 200, r.body
        assert r.body == {"accepted": True, "action_ids": ["a-1", "a-2"], "enqueued": ["a-1", "a-2"],
                          "duplicates": [], "queue_depth": 2}
        assert bus.ids(host) == ["a-1", "a-2"]
        assert bus.sent[0][1] == {"type": "action", "payload": {**cmd(1), "expires_at": None}}
        r = await mgr.call("GET", f"/sessions/{host}/actions/a-1")
        assert r.status == 200 and r.body["status"] == "delivered" and r.body["attempts"] == 1

        controller.ingest.ack_value(host, ack(1))
        controller.ingest.ack_value(host, ack(2, "rejected", error_code="unsupported_action",
                                           error_message="nope"))
        await eventually(lambda: controller.writer.written == 2, what="both acks stored")
        r = await mgr.call("GET", f"/sessions/{host}/actions/a-1")
        assert r.body["status"] == "acked" and r.body["ack_status"] == "ok"
        # enqueue -> ack, measured by the manager: within what this test has waited
        assert 0 <= r.body["latency_ms"] <= (time.monotonic() - started) * 1000 + 1
        r = await mgr.call("GET", f"/sessions/{host}/actions/a-2")
        assert r.body["ack_status"] == "rejected" and r.body["error_code"] == "unsupported_action"
        r = await mgr.call("GET", f"/sessions/{host}/actions/nope")
        assert r.status == 404 and r.error_code == "action_not_found"
        assert await controller.queue.depth(host) == 0
        reg = mgr.metrics.registry
        assert reg.get_sample_value("action_latency_seconds_count") == 2
        assert reg.get_sample_value("actions_enqueued_total") == 2

        # resubmitting is idempotent
        r = await mgr.call("POST", f"/sessions/{host}/actions",
                           body={"controller_token": token, "actions": [cmd(1), cmd(3)]})
        assert r.status == 200 and r.body["enqueued"] == ["a-3"] and r.body["duplicates"] == ["a-1"]
        assert bus.ids(host) == ["a-1", "a-2", "a-3"]
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_refusals(stores):
    mgr, controller, bus = await setup(stores, action_queue_bound=3)
    try:
        host = "host-" + uuid.uuid4().hex[:8]
        _, token = await session_with_lease(mgr, host)
        path = f"/sessions/{host}/actions"

        async def post(actions, tok=token):
            return await mgr.call("POST", path, body={"controller_token": tok, "actions": actions})

        r = await post([])
        assert r.status == 400 and r.error_code == "empty_actions"
        r = await post([{"id": "x"}])
        assert r.status == 400
        r = await post([cmd(1), cmd(1)])
        assert r.status == 400 and r.error_code == "duplicate_action_id"
        r = await post([cmd(1, expires_at="tomorrow")])
        assert r.status == 400
        r = await mgr.call("POST", path, raw=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status == 400
        r = await post([cmd(1)], tok=str(uuid.uuid4()))
        assert r.status == 409 and r.error_code == "missing_lease"
        r = await post([cmd(1)])
        assert r.status == 409 and r.error_code == "child_not_attached"
        bus.down(host)
        r = await post([cmd(1)])
        assert r.status == 409 and r.error_code == "child_offline"
        r = await mgr.call("POST", "/sessions/no-such-host/actions",
                           body={"controller_token": token, "actions": [cmd(1)]})
        assert r.status == 404

        bus.up(host)
        r = await post([cmd(1), cmd(2), cmd(3)])
        assert r.status == 200
        r = await post([cmd(4)])
        assert r.status == 429 and r.error_code == "too_many_requests"
        assert int(r.headers.getRawHeaders("retry-after")[0]) >= 1
        assert r.body["queue_depth"] == 3 and r.body["queue_bound"] == 3
        controller.ingest.ack_value(host, ack(1))
        async def depth_is_two():
            return await controller.queue.depth(host) == 2

        await eventually(depth_is_two, what="the acked action leaves the queue")
        r = await post([cmd(4)])
        assert r.status == 200 and r.body["enqueued"] == ["a-4"]
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_state_and_health(stores):
    mgr, controller, bus = await setup(stores)
    try:
        host = "host-" + uuid.uuid4().hex[:8]
        await session_with_lease(mgr, host)
        r = await mgr.call("GET", f"/sessions/{host}/state")
        assert r.status == 200 and r.body is None
        t = {"secs_since_epoch": 7, "nanos_since_epoch": 0}
        controller.ingest.state_value(host, hj.StateDiff(4, hj.Timestamp(7, 0), {
            "type": "terminal_full", "lines": ["$ hi"]}))
        controller.ingest.health_value(host, hj.HealthHeartbeat(2, degraded=True, warnings=("slow",)))

        async def kept():
            state = await mgr.call("GET", f"/sessions/{host}/state")
            health = await mgr.call("GET", f"/sessions/{host}/health")
            return state.body is not None and health.body is not None

        await eventually(kept, what="the state and health snapshots are kept")
        r = await mgr.call("GET", f"/sessions/{host}/state")
        assert r.body == {"sequence": 4, "emitted_at": t,
                          "payload": {"type": "terminal_full", "lines": ["$ hi"]}}
        r = await mgr.call("GET", f"/sessions/{host}/health")
        assert r.body["queue_depth"] == 2 and r.body["degraded"] is True
        assert r.body["warnings"] == ["slow"] and r.body["received_at_ms"] > 0
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_cached_lease_and_session_lookups_never_outlive_what_they_cache(stores):
    """The request path keeps lease checks and session look-ups briefly: a release or a
    registration through this instance is seen at once, a release through another instance
    within the bound, and waiting actions of a released lease are still preempted."""
    from beachmanager.controller.leases import LEASE_CACHE_TTL, Leases

    mgr, controller, bus = await setup(stores, action_inflight_window=1)
    try:
        host = "host-" + uuid.uuid4().hex[:8]
        tenant, token = await session_with_lease(mgr, host)
        bus.up(host)
        path = f"/sessions/{host}/actions"

        async def post(actions, tok):
            return await mgr.call("POST", path, body={"controller_token": tok, "actions": actions})

        lease_url = f"/sessions/{host}/controller/lease"
        r = await mgr.call("POST", lease_url, body={"reason": "ui"})
        ui = r.body["controller_token"]
        assert (await post([cmd(1)], ui)).status == 200  # checked, and now cached
        r = await mgr.call("DELETE", lease_url, body={"controller_token": ui})
        assert r.status == 200
        r = await post([cmd(2)], ui)
        assert r.status == 409 and r.error_code == "lease_revoked"  # at once, not after the TTL

        # a release through another instance (same store, its own cache) ...
        other = Leases(mgr.parts.registry.store, mgr.ctx.clock)
        assert (await post([cmd(3), cmd(4), cmd(5)], token)).status == 200  # a-1 in flight: these wait
        await other.release(tenant, host, token)
        await deferLater(reactor, LEASE_CACHE_TTL + 0.05, lambda: None)  # the cache TTL runs out
        r = await post([cmd(6)], token)
        assert r.status == 409 and r.error_code == "lease_revoked"  # ... is seen within the bound
        async def preempted():  # the lease watch preempts what was waiting
            views = [(await mgr.call("GET", f"/sessions/{host}/actions/a-{i}")).body for i in (3, 4, 5)]
            return all(v.get("ack_status") == "preempted" for v in views)

        await eventually(preempted, what="the waiting actions of the released lease are preempted")
        assert bus.ids(host) == ["a-1"]  # none of them was delivered

        # joining a second private beach through this instance is seen at once
        r = await mgr.call("GET", f"/sessions/{host}/controller-events")
        assert r.status == 200  # the session's beaches are now kept
        r = await mgr.call("POST", "/sessions/register",
                           body={"session_id": host, "private_beach_id": tenant.private_beach_id + "-2"})
        assert r.status == 200
        r = await mgr.call("GET", f"/sessions/{host}/controller-events")
        assert r.status == 409 and r.error_code == "ambiguous_session"
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_over_its_admission_target_the_instance_refuses_before_queueing(stores):
    """Load shedding: with nothing acked the backlog stands over the limit (floor 4); the next
    requests get 429 overloaded with Retry-After and leave the queue as it was; once the acks
    come, actions are accepted again."""
    mgr, controller, bus = await setup(stores, action_admission_target=0.05,
                                       action_admission_floor=4)
    try:
        host = "host-" + uuid.uuid4().hex[:8]
        _, token = await session_with_lease(mgr, host)
        bus.up(host)
        path = f"/sessions/{host}/actions"
        n = iter(range(1, 10_000))

        async def post_one():
            return await mgr.call("POST", path, body={"controller_token": token,
                                                      "actions": [cmd(next(n))]})

        accepted: list[int] = []

        async def refused():
            r = await post_one()
            if r.status == 200:
                accepted.extend(int(i.split("-")[1]) for i in r.body["enqueued"])
                return None
            return r

        r = await eventually(refused, timeout=10, what="a refusal once the backlog stands")
        assert r.status == 429 and r.error_code == "overloaded", r.body
        assert int(r.headers.getRawHeaders("retry-after")[0]) >= 1
        assert r.body["backlog"] >= 4 and r.body["limit"] == 4
        depth = await controller.queue.depth(host)
        assert depth == len(accepted)  # the refused action was never queued
        assert mgr.metrics.registry.get_sample_value(
            "actions_refused_total", {"reason": "overloaded"}) >= 1
        for i in accepted:
            controller.ingest.ack_value(host, ack(i))
        await eventually(lambda: controller.writer.written == len(accepted), what="acks stored")

        async def admitted():
            return (await post_one()).status == 200

        await eventually(admitted, timeout=10, what="actions accepted again")
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_actions_waiting_for_a_host_that_is_down_are_not_load(stores):
    """A host whose transport is down costs nothing until it is back: the actions waiting for
    it do not count as this instance's backlog, so other hosts' actions are not shed for them
    (its queue bound governs that host)."""
    mgr, controller, bus = await setup(stores, action_admission_target=0.05,
                                       action_admission_floor=4)
    try:
        down, busy = ("host-" + uuid.uuid4().hex[:8] for _ in "ab")
        down_token = (await session_with_lease(mgr, down))[1]
        busy_token = (await session_with_lease(mgr, busy))[1]
        bus.up(down)
        bus.up(busy)
        r = await mgr.call("POST", f"/sessions/{down}/actions", body={
            "controller_token": down_token, "actions": [cmd(i) for i in range(1, 11)]})
        assert r.status == 200, r.body
        bus.down(down)  # ten actions now wait for it
        started, i = reactor.seconds(), 100
        while reactor.seconds() - started < 1.2:  # over two of admission's 0.5 s windows
            i += 1
            r = await mgr.call("POST", f"/sessions/{busy}/actions",
                               body={"controller_token": busy_token, "actions": [cmd(i)]})
            assert r.status == 200, (i, r.body)  # never "overloaded"
            controller.ingest.ack_value(busy, ack(i))
            await deferLater(reactor, 0.02, lambda: None)
        assert await controller.queue.depth(down) == 10
    finally:
        await mgr.stop()
