"""Two whole managers in one process on a private Redis (and PostgreSQL): the debug view,
redirects for reads about hosts owned by the other, actions answered anywhere, drain, and the audit tables."""

from __future__ import annotations

import json

import psycopg
import pytest
import pytest_twisted
import treq

from beachmanager.assign.rendezvous import rank
from beachmanager.registry.store import Op, SessionRegistration, Tenant
from tests.support.api_client import start_manager
from tests.support.eventually import eventually
from tests.support.servers import least_privilege_database, throwaway_redis

IDS = ["mgr-a", "mgr-b"]
HOSTS = [f"host-{n}" for n in range(20)]


@pytest.fixture
def redis_url():
    with throwaway_redis() as server:
        yield server.url


@pytest.fixture
def database():
    """(owner URL, least-privilege login URL): the owner migrates, the managers log in."""
    with least_privilege_database() as urls:
        yield urls


async def pair(redis_url, **extra):
    common = dict(auth_bypass=True, redis_url=redis_url, heartbeat_interval=1.0, membership_ttl=5.0,
                  stop_timeout=3.0, webrtc_disable_stun=True, road_url="http://127.0.0.1:9", **extra)
    a = await start_manager(instance_id="mgr-a", **common)
    b = await start_manager(instance_id="mgr-b", **common)
    for m in (a, b):
        await m.parts.assign.whenReady()

    async def both_live():
        r = await a.call("GET", "/debug/assignments")
        return r.status == 200 and [x["id"] for x in r.body["members"] if x["live"]] == IDS

    await eventually(both_live, timeout=10, what="both members live")
    return a, b


def owner(host):
    return rank(host, IDS)[0]


def know_codes(*managers):
    """Every instance knows every host's join code (as with a shared --hosts-file); without one,
    the owner could not attach a host and would release it."""
    for m in managers:
        for h in HOSTS:
            m.parts.assign.attacher.remember(h, "ABCDEF")


@pytest_twisted.ensureDeferred
async def test_debug_view_redirects_and_actions_answered_anywhere(redis_url):
    a, b = await pair(redis_url)
    try:
        by_id = {"mgr-a": a, "mgr-b": b}
        know_codes(a, b)
        for h in HOSTS:
            d = await a.parts.assign.place(h)
            assert d.owner == owner(h)
        r = await a.call("GET", "/debug/assignments")
        assert r.status == 200 and r.body["instance_id"] == "mgr-a" and r.body["hosts_total"] == 20
        assert {x["host_session_id"]: x["manager_instance_id"] for x in r.body["hosts"]} == {
            h: owner(h) for h in HOSTS}
        assert all(x["reason"] == "attach" for x in r.body["hosts"])
        members = {m["id"]: m for m in r.body["members"]}
        assert members["mgr-b"]["endpoint"] == b.base and members["mgr-a"]["endpoint"] == a.base
        assert members["mgr-a"]["load"] + members["mgr-b"]["load"] == 20
        mine = await a.call("GET", "/debug/assignments?mine=1&limit=5")
        assert all(x["manager_instance_id"] == "mgr-a" for x in mine.body["hosts"])
        assert len(mine.body["hosts"]) == min(5, members["mgr-a"]["load"])
        assert (await a.call("GET", "/debug/assignments?limit=0")).status == 400

        elsewhere = next(h for h in HOSTS if owner(h) == "mgr-b")
        here = next(h for h in HOSTS if owner(h) == "mgr-a")
        one = await a.call("GET", f"/debug/assignments/{elsewhere}")
        assert (one.status, one.body["manager_instance_id"], one.body["endpoint"]) == (200, "mgr-b", b.base)
        assert (await a.call("GET", "/debug/assignments/nobody")).status == 404

        # A read about B's host: 307 to B, Location and JSON naming it (after A's guard has
        # checked the caller in the session's private beach: the registry is shared in a
        # cluster; here each instance's in-memory twin is told of the session) ...
        for m in (a, b):
            await m.parts.registry.store.register_session(
                Tenant("pb-1", "acct-1"), SessionRegistration(elsewhere), Op.new(), 0)
        path = f"/sessions/{elsewhere}/state?private_beach_id=pb-1"
        raw = await treq.get(a.base + path, allow_redirects=False)
        body = json.loads(await raw.content())
        assert raw.code == 307 and body["error_code"] == "owned_elsewhere"
        assert raw.headers.getRawHeaders("location") == [b.base + path]
        assert (body["manager_instance_id"], body["endpoint"]) == ("mgr-b", b.base)
        # ... which a client following redirects ends at B (B answers: no state yet).
        followed = await a.call("GET", path)
        assert (followed.status, followed.body) == (200, None)
        assert followed.body == (await b.call("GET", path)).body
        # Our own host is answered here.
        assert (await a.call("GET", f"/sessions/{here}/state")).status != 307

        # An action for B's host sent to A is answered by A itself (actions go into the
        # host's shared queue stream; the end-to-end test shows B delivering one): here
        # no lease was taken, and both say so alike.
        body = {"controller_token": "00000000-0000-0000-0000-000000000000",
                "actions": [{"id": "x1", "action_type": "terminal_write", "payload": {"bytes": "hi"}}]}
        via_a = await a.call("POST", f"/sessions/{elsewhere}/actions", body=body)
        direct = await b.call("POST", f"/sessions/{elsewhere}/actions", body=body)
        assert (via_a.status, via_a.error_code) == (409, "missing_lease")
        assert (via_a.status, via_a.body) == (direct.status, direct.body)
        assert by_id[owner(here)] is a
    finally:
        await b.stop()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_drain_hands_every_host_over_and_the_audit_tables_agree(redis_url, database):
    owner_url, login_url = database
    a, b = await pair(redis_url, database_url=login_url, database_migrate_url=owner_url)
    know_codes(a, b)
    try:
        for h in HOSTS:
            await b.parts.assign.place(h)
        await b.stop()  # SIGTERM path: drain, hand over, leave
        r = await a.call("GET", "/debug/assignments")
        assert [m["id"] for m in r.body["members"]] == ["mgr-a"]
        assert {x["manager_instance_id"] for x in r.body["hosts"]} == {"mgr-a"}
        moved = {x["host_session_id"] for x in r.body["hosts"] if x["reason"] == "drain"}
        assert moved == {h for h in HOSTS if owner(h) == "mgr-b"}
        assert all(x["reassigned_from"] == "mgr-b" for x in r.body["hosts"] if x["reason"] == "drain")
        drained = a.metrics.registry.get_sample_value("assignment_rebalance_total", {"reason": "drain"})
        assert drained in (None, 0.0)  # counted by the instance that moved them
        await a.parts.assign.audit.flush()

        def rows(sql):
            with psycopg.connect(owner_url) as conn:
                return conn.execute(sql).fetchall()

        async def audited():
            await a.parts.assign.audit.flush()
            got = rows("SELECT host_session_id, manager_instance_id FROM beach_manager.manager_assignment")
            return dict(got) == dict.fromkeys(HOSTS, "mgr-a")

        await eventually(audited, timeout=10, what="manager_assignment rows owned by mgr-a")
        events = rows("SELECT host_session_id, manager_instance_id, reassigned_from, reason "
                      "FROM beach_manager.manager_assignment_event ORDER BY id")
        assert {(h, to, frm) for h, to, frm, why in events if why == "drain"} == {
            (h, "mgr-a", "mgr-b") for h in moved}
        assert sorted(h for h, _, _, why in events if why == "attach") == sorted(HOSTS)
        assert {i for (i,) in rows("SELECT id FROM beach_manager.manager_instance")} == set(IDS)
    finally:
        if a.root.running:
            await a.stop()
