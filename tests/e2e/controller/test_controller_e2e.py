"""End to end: REST action -> queue -> bus (aiortc) -> devstack host harness (real shell) -> ack.

Every mark written through the controller must appear exactly once in the host's terminal,
also across a Redis restart and a manager restart mid-stream.
"""

import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from beachmanager.controller.commands import system_time
from tests.support.eventually import eventually
from tests.support.servers import MACHINE_REDIS, temporary_database, throwaway_redis

from .stack import (
    acked,
    attach,
    dropped_not_connected,
    host_lines,
    manager,
    marks,
    mirror_lines,
    post,
    write,
)

pytestmark = pytest.mark.slow


@pytest_twisted.ensureDeferred
async def test_marks_reach_the_terminal_once_and_every_ack_status(road, start_host):
    host = await start_host()
    mgr = await manager(road.url, action_queue_bound=20)
    try:
        token = await attach(mgr, host)
        hid = host.session_id
        started = time.monotonic()
        r = await post(mgr, hid, token, [write(i) for i in range(1, 6)])
        assert r.status == 200 and r.body["enqueued"] == [f"MARK-{i}" for i in range(1, 6)]
        views = await acked(mgr, hid, r.body["action_ids"])
        waited_ms = (time.monotonic() - started) * 1000  # accepted..acked lies within this
        assert {v["ack_status"] for v in views.values()} == {"ok"}
        assert all(0 < v["latency_ms"] <= waited_ms and v["attempts"] == 1 for v in views.values())
        await eventually(lambda: marks(host_lines(host)) == {i: 1 for i in range(1, 6)},
                         timeout=20, what="each mark once in the host's terminal")
        await eventually(lambda: all(marks(mirror_lines(mgr, hid))[i] == 1 for i in range(1, 6)),
                         timeout=20, what="the marks in the manager's mirror")

        # unsupported -> rejected; past expires_at -> expired (never delivered)
        past = system_time(mgr.ctx.clock.seconds() - 10)
        r = await post(mgr, hid, token, [
            {"id": "odd-1", "action_type": "launch_rockets", "payload": {}},
            {**write(99), "id": "late-1", "expires_at": past}])
        assert r.status == 200
        views = await acked(mgr, hid, ["odd-1", "late-1"])
        assert views["odd-1"]["ack_status"] == "rejected"
        assert views["odd-1"]["error_code"] == "unsupported_action"
        assert views["late-1"]["ack_status"] == "expired" and "delivered_at_ms" not in views["late-1"]
        await deferLater(reactor, 0.3, lambda: None)  # nothing arrives within 0.3 s
        assert marks(host_lines(host))[99] == 0

        # 429 at the bound (all or nothing), with Retry-After
        r = await post(mgr, hid, token, [write(i, "BIG") for i in range(21)])
        assert r.status == 429 and r.error_code == "too_many_requests"
        assert int(r.headers.getRawHeaders("retry-after")[0]) >= 1
        await deferLater(reactor, 0.3, lambda: None)  # nothing arrives within 0.3 s
        assert sum(marks(host_lines(host), "BIG").values()) == 0

        # state and health arrive from the host's harness
        state = await eventually(lambda: _get(mgr, f"/sessions/{hid}/state"), timeout=20,
                                 what="a state diff")
        assert state["payload"]["type"] == "terminal_full" and state["sequence"] >= 1
        reg = mgr.metrics.registry
        assert reg.get_sample_value("action_latency_seconds_count") >= 7
    finally:
        await mgr.stop()


async def _get(mgr, path):
    r = await mgr.call("GET", path)
    return r.body if r.status == 200 else None


@pytest_twisted.ensureDeferred
async def test_a_lease_change_preempts_pending_actions(road, start_host):
    host = await start_host()
    mgr = await manager(road.url, action_inflight_window=1)
    try:
        token = await attach(mgr, host)
        hid = host.session_id
        watch = mgr.parts.controller.lease_watch
        watch.stop()
        watch._loop.start(0.01, now=False)  # look leases up often: the race is with delivery
        ids = [f"P-{i}" for i in range(300)]
        r = await post(mgr, hid, token, [write(i, "P") for i in range(300)])
        assert r.status == 200
        r = await mgr.call("DELETE", f"/sessions/{hid}/controller/lease",
                           body={"controller_token": token})
        assert r.status == 200
        views = await acked(mgr, hid, ids, timeout=60)
        statuses = {i: v["ack_status"] for i, v in views.items()}
        preempted = [i for i, s in statuses.items() if s == "preempted"]
        applied = [i for i, s in statuses.items() if s == "ok"]
        assert preempted and applied and len(preempted) + len(applied) == 300
        assert all(views[i]["error_code"] == "controller_preempted" for i in preempted)
        last = max(int(i[2:]) for i in applied)  # acked ok: written; its output follows
        await eventually(lambda: marks(host_lines(host), "P")[last] == 1, timeout=20,
                         what="the last applied mark's output in the terminal")
        seen = marks(host_lines(host), "P")
        # what was acked ok shows once; what was preempted never ran (the terminal keeps the
        # last 1000 lines; the oldest marks may have scrolled out of its history)
        assert all(seen[int(i[2:])] <= 1 for i in applied)
        assert all(seen[int(i[2:])] == 0 for i in preempted)
        # the released token is refused from now on
        r = await post(mgr, hid, token, [write(1, "Q")])
        assert r.status == 409 and r.error_code in ("lease_revoked", "missing_lease")
    finally:
        await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_redis_restart_mid_stream_loses_no_accepted_action(road, start_host):
    host = await start_host()
    with throwaway_redis() as redis, temporary_database() as db:
        mgr = await manager(road.url, redis_url=redis.url, database_url=db, action_ack_timeout=1.0)
        try:
            token = await attach(mgr, host)
            hid = host.session_id
            accepted: list[str] = []
            for n in range(60):
                if n == 20:
                    redis.stop()
                if n == 26:
                    redis.start()
                r = await post(mgr, hid, token, [write(n)])
                if r.status == 200:
                    accepted += r.body["enqueued"]
                else:
                    assert r.status == 503, r.body  # refused, never silently lost
                await deferLater(reactor, 0.05, lambda: None)  # paced: the stream spans the restart
            assert len(accepted) >= 40
            views = await acked(mgr, hid, accepted, timeout=90)
            assert {v["ack_status"] for v in views.values()} == {"ok"}
            expect = {int(i.split("-")[1]) for i in accepted}
            await eventually(lambda: set(marks(host_lines(host))) >= expect, timeout=20,
                             what="every accepted mark")
            seen = marks(host_lines(host))
            assert all(seen[i] == 1 for i in expect), seen
            assert set(seen) == expect  # nothing refused ran either
        finally:
            await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_manager_restart_mid_stream_redelivers_and_applies_once(road, start_host):
    host = await start_host()
    with temporary_database() as db:
        settings = dict(redis_url=MACHINE_REDIS, database_url=db, instance_id="mgr-restart-e2e",
                        action_inflight_window=1)
        mgr = await manager(road.url, **settings)
        token = await attach(mgr, host)
        hid = host.session_id
        r = await post(mgr, hid, token, [write(i) for i in range(400)])
        assert r.status == 200 and len(r.body["enqueued"]) == 400
        await mgr.stop()  # mid-stream: some applied, maybe one delivered without ack, most queued
        applied_before = sum(marks(host_lines(host)).values())
        assert applied_before < 400

        mgr = await manager(road.url, **settings)
        try:
            await attach(mgr, host, register=False)
            views = await acked(mgr, hid, [f"MARK-{i}" for i in range(400)], timeout=90)
            assert {v["ack_status"] for v in views.values()} == {"ok"}
            await eventually(lambda: len(marks(host_lines(host))) == 400, timeout=20,
                             what="all 400 marks")
            seen = marks(host_lines(host))
            assert all(seen[i] == 1 for i in range(400)), {i: c for i, c in seen.items() if c != 1}
        finally:
            await mgr.stop()


@pytest_twisted.ensureDeferred
async def test_actions_wait_for_a_dropped_transport_and_flow_after_the_redo(road, start_host):
    host = await start_host()
    mgr = await manager(road.url, action_inflight_window=1, reconnect_max_delay=1.0)
    try:
        token = await attach(mgr, host)
        hid = host.session_id
        controller = mgr.parts.controller
        r = await post(mgr, hid, token, [write(i) for i in range(300)])
        assert r.status == 200
        readies = []
        mgr.parts.events.subscribe(lambda c: readies.append(c.seq)
                                   if c.host_session_id == hid and c.ready else None)
        (peer,) = host.host.serving_peers()
        down = mgr.parts.events.wait_for(lambda c: c.host_session_id == hid and c.was_ready,
                                         current=False)
        await peer.close("test: dropped by the host")
        await down.addTimeout(5, reactor)  # the session stream the controller follows
        assert controller.transport_state(hid) != "ready"
        r = await post(mgr, hid, token, [write(1000)])
        assert r.status == 409 and r.error_code == "child_offline"
        waiting = controller.engine.depth(hid)
        assert waiting > 0  # held, not dropped, while the transport is down
        views = await acked(mgr, hid, [f"MARK-{i}" for i in range(300)], timeout=60)
        assert {v["ack_status"] for v in views.values()} == {"ok"}
        await eventually(lambda: len(marks(host_lines(host))) == 300, timeout=20,
                         what="all 300 marks")
        seen = marks(host_lines(host))
        assert all(seen[i] == 1 for i in range(300)), {i: c for i, c in seen.items() if c != 1}
        # the backlog went out when the redo was announced, and nothing was refused: the
        # session attaches its bus sender before it announces ready (with the old order this
        # counts a not_connected drop)
        assert dropped_not_connected(mgr) == 0
        assert controller.engine.counters["backpressure"] == 0
        assert len(readies) == 1  # ready once after the redo: no flapping
    finally:
        await mgr.stop()
