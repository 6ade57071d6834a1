"""Session and lease routes over real HTTP on the in-memory registry: legacy shapes, lease
semantics, tenancy, and 4xx (never 500) for bad input."""

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred

from beachmanager import config
from beachmanager.registry.store import Tenant
from tests.support.api_client import start_manager

REG = {"session_id": "host-a", "private_beach_id": "pb-1", "harness_type": "terminal_shim",
       "capabilities": ["pty"], "version": "1.2", "metadata": {"k": "v"}, "viewer_passcode": "SECRET1"}


@pytest.fixture(autouse=True)
def _acct_1_owns_pb_1_and_pb_2(request):
    """acct-1, the test issuer's default account, owns the beaches these tests act in."""
    if "manager" not in request.fixturenames:
        return
    m = request.getfixturevalue("manager")
    for pb in ("pb-1", "pb-2"):
        pytest_twisted.blockon(m.parts.registry.store.create_beach(Tenant(pb, "acct-1"), None, 0))


async def register(m, token, **overrides):
    r = await m.call("POST", "/sessions/register", token=token, body={**REG, **overrides})
    assert r.status == 200, r.body
    return r.body


@pytest_twisted.ensureDeferred
async def test_register_is_idempotent_and_listed(manager, gate):
    token = gate.token()
    first = await register(manager, token)
    assert set(first) == {"harness_id", "controller_token", "lease_ttl_ms", "state_cache_url", "transport_hints"}
    assert first["lease_ttl_ms"] == 30_000 and first["state_cache_url"] is None
    # the compatibility hint of the plan: the unified bus, namespace "manager" only
    assert first["transport_hints"] == {"extensions": {"namespaces": ["manager"], "preferred": True}}
    again = await register(manager, token, capabilities=["pty", "resize"])
    assert (again["harness_id"], again["controller_token"]) == (first["harness_id"], first["controller_token"])
    r = await manager.call("GET", "/private-beaches/pb-1/sessions", token=token)
    assert r.status == 200 and len(r.body) == 1
    s = r.body[0]
    assert (s["session_id"], s["private_beach_id"], s["harness_type"], s["capabilities"], s["metadata"]) == (
        "host-a", "pb-1", "terminal_shim", ["pty", "resize"], {"k": "v"})
    assert s["controller_token"] == first["controller_token"] and s["controller_expires_at_ms"] > 0
    assert "SECRET1" not in str(r.body)
    reader = gate.token(scope="pb:sessions.read")
    r = await manager.call("GET", "/private-beaches/pb-1/sessions", token=reader)
    assert r.body[0]["controller_token"] is None  # the token is a capability: control.write only
    r = await manager.call("GET", "/private-beaches/pb-2/sessions", token=token)
    assert r.body == []


@pytest_twisted.ensureDeferred
async def test_lease_acquire_renew_release_mismatch_and_events(manager, gate):
    token = gate.token()
    reg = await register(manager, token)
    url = "/sessions/host-a/controller/lease"
    r = await manager.call("POST", url, token=token, body={"reason": "ui", "ttl_ms": 10})
    assert r.status == 200 and set(r.body) == {"controller_token", "expires_at_ms"}
    ui = r.body
    now_ms = manager.ctx.clock.seconds() * 1000
    assert now_ms < ui["expires_at_ms"] <= now_ms + 1000 + 50  # ttl raised to the 1 s minimum
    r = await manager.call("POST", url, token=token, body={"reason": "ui"})
    assert r.body["controller_token"] == ui["controller_token"]  # renewed: same account and reason
    assert r.body["expires_at_ms"] > ui["expires_at_ms"]
    other = await manager.call("POST", url, token=token, body={"reason": "e2e"})
    assert other.body["controller_token"] not in (ui["controller_token"], reg["controller_token"])
    acct = await manager.call("POST", url, token=token, body={"reason": "ui", "requesting_account_id": "acct-9"})
    assert acct.body["controller_token"] != ui["controller_token"]
    r = await manager.call("POST", url, token=token)  # empty body: defaults
    assert r.status == 200

    r = await manager.call("DELETE", url, token=token, body={"controller_token": ui["controller_token"]})
    assert (r.status, r.body) == (200, {"released": True})
    r = await manager.call("DELETE", url, token=token, body={"controller_token": ui["controller_token"]})
    assert (r.status, r.body) == (200, {"released": True})  # a repeat is harmless
    for bad in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        r = await manager.call("DELETE", url, token=token, body={"controller_token": bad})
        assert (r.status, r.error_code, r.body["error"]) == (409, "controller_mismatch", "conflict")

    r = await manager.call("GET", "/sessions/host-a/controller-events", token=token)
    assert r.status == 200
    kinds = [e["event_type"] for e in r.body]
    assert kinds[0] == "lease_released" and kinds[-1] == "registered"
    assert kinds.count("lease_acquired") == 6 and kinds.count("lease_released") == 1
    times = [e["timestamp_ms"] for e in r.body]
    assert times == sorted(times, reverse=True)
    released = r.body[0]
    assert released["controller_token"] == ui["controller_token"] and released["reason"] == "ui"
    assert released["issued_by_account_id"] == "acct-1"
    r = await manager.call("GET", "/sessions/host-a/controller-events?event_type=lease_released&limit=5",
                           token=token)
    assert [e["event_type"] for e in r.body] == ["lease_released"]
    r = await manager.call("GET", "/sessions/host-a/controller-events?limit=2", token=token)
    assert len(r.body) == 2
    r = await manager.call("GET", f"/sessions/host-a/controller-events?since_ms={times[0] + 1}", token=token)
    assert r.body == []


@pytest_twisted.ensureDeferred
async def test_register_revokes_other_controllers(manager, gate):
    token = gate.token()
    await register(manager, token)
    url = "/sessions/host-a/controller/lease"
    ui = (await manager.call("POST", url, token=token, body={"reason": "ui"})).body
    await register(manager, token)
    r = await manager.call("GET", "/private-beaches/pb-1/sessions", token=token)
    assert r.body[0]["controller_token"] != ui["controller_token"]
    lease = await manager.parts.leases.store.find_lease(Tenant("pb-1", "acct-1"), "host-a",
                                                               ui["controller_token"])
    assert lease.revoke_reason == "session_register"


@pytest_twisted.ensureDeferred
async def test_tenancy_of_session_routes(manager, gate):
    token = gate.token()
    await register(manager, token)
    await register(manager, token, private_beach_id="pb-2")
    url = "/sessions/host-a/controller/lease"
    r = await manager.call("POST", url, token=token, body={})
    assert (r.status, r.error_code) == (409, "ambiguous_session")
    assert r.body["private_beach_ids"] == ["pb-1", "pb-2"]
    r = await manager.call("POST", url + "?private_beach_id=pb-2", token=token, body={})
    assert r.status == 200
    bound = gate.token(private_beach_id="pb-2")
    assert (await manager.call("POST", url, token=bound, body={})).status == 200  # the claim picks pb-2
    bound3 = gate.token(private_beach_id="pb-3")
    r = await manager.call("POST", url, token=bound3, body={})
    assert (r.status, r.error_code) == (404, "session_not_found")  # invisible, not forbidden
    r = await manager.call("GET", "/sessions/host-a/controller-events?private_beach_id=pb-3", token=token)
    assert (r.status, r.error_code) == (404, "session_not_found")


@pytest_twisted.ensureDeferred
async def test_bad_input_is_4xx_never_500(manager, gate):
    token = gate.token()
    await register(manager, token)
    cases = [
        ("POST", "/sessions/register", b"{not json", 400, "malformed_json"),
        ("POST", "/sessions/register", b'{"session_id": 5, "private_beach_id": "pb"}', 400, "invalid_body"),
        ("POST", "/sessions/register", b'{"private_beach_id": "pb"}', 400, "invalid_body"),
        ("POST", "/sessions/register", b'{"session_id": "a/b", "private_beach_id": "pb"}', 400, "invalid_body"),
        ("POST", "/sessions/register", b'{"session_id": "a", "private_beach_id": "pb", "harness_type": "x"}',
         400, "invalid_body"),
        ("POST", "/sessions/register", b'{"session_id": "a", "private_beach_id": "pb", "metadata": "' +
         b"m" * 70_000 + b'"}', 413, "payload_too_large"),
        ("POST", "/sessions/host-a/controller/lease", b'{"ttl_ms": "soon"}', 400, "invalid_body"),
        ("POST", "/sessions/host-a/controller/lease", b"[]", 400, "invalid_body"),
        ("DELETE", "/sessions/host-a/controller/lease", b"{}", 400, "invalid_body"),
        ("DELETE", "/sessions/host-a/controller/lease", b'{"controller_token": 7}', 400, "invalid_body"),
        ("POST", "/sessions/nobody/controller/lease", b"{}", 404, "session_not_found"),
        ("DELETE", "/sessions/nobody/controller/lease", b'{"controller_token": "x"}', 404, "session_not_found"),
        ("GET", "/sessions/nobody/controller-events", None, 404, "session_not_found"),
        ("GET", "/sessions/host-a/controller-events?limit=0", None, 400, "invalid_query"),
        ("GET", "/sessions/host-a/controller-events?limit=ten", None, 400, "invalid_query"),
        ("GET", "/sessions/host-a/controller-events?event_type=boom", None, 400, "invalid_body"),
        ("GET", "/sessions/host-a/controller-events?since_ms=-5", None, 400, "invalid_query"),
        ("GET", "/sessions/.hidden/controller-events", None, 400, "invalid_id"),
        ("GET", "/private-beaches/.x/sessions", None, 400, "invalid_id"),
        ("POST", "/private-beaches/pb-1/sessions/attach-by-code", b'{"session_id": "s"}', 400, "invalid_body"),
        ("POST", "/private-beaches/pb-1/sessions/attach-by-code", b'{"session_id": "s", "code": ""}', 400,
         "invalid_body"),
    ]
    for method, path, raw, status, code in cases:
        r = await manager.call(method, path, token=token, raw=raw,
                               headers={"Content-Type": "application/json"} if raw is not None else None)
        assert (r.status, r.error_code) == (status, code), (method, path, raw[:60] if raw else None, r.body)
        assert set(r.body) >= {"error", "message", "error_code"} and r.body["message"]


@pytest_twisted.ensureDeferred
async def test_dev_bypass_accepts_everything_and_says_so():
    running = await start_manager(auth_bypass=True)
    try:
        r = await running.call("POST", "/sessions/register", body=REG)
        assert r.status == 200 and r.headers.getRawHeaders("x-beach-auth-bypass") == ["1"]
        assert (await running.call("GET", "/debug/info")).status == 200
        assert running.root.readiness()[1]["auth"]["bypass"] is True
    finally:
        await ensureDeferred(running.stop())


@pytest_twisted.ensureDeferred
async def test_dev_bypass_is_refused_in_production():
    with pytest.raises(config.ConfigError, match="refused when BEACH_ENV=production"):
        config.load({}, {"AUTH_BYPASS": "1", "BEACH_ENV": "production"})
    with pytest.raises(Exception, match="refused when BEACH_ENV=production"):
        await start_manager(auth_bypass=True, beach_env="production")
