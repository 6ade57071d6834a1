"""Every route of the real router: 401 without a token, 403 without its scope; table, router and
/openapi.json agree; each refusal is counted in auth_failure_total{reason}."""

import re

import pytest_twisted

from beachmanager.api.app import build_app
from beachmanager.api.route_table import ROUTES, lookup

SAMPLE = {"session_id": "s-guard", "private_beach_id": "pb-guard", "host_session_id": "h-guard"}


def router_routes(ctx):
    app = build_app(ctx)
    out = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method, rule.rule))
    return out


def fill(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: SAMPLE.get(m.group(1), "x-1"), rule)


def broad_but_wrong(scope: str) -> list[str]:
    """Grants that look close to *scope* but must not cover it."""
    head, _, tail = scope.rpartition(".")
    return [f"{head}X", f"{head}.{tail}X", f"{head}.other", head, f"{scope}.sub", f"{head}*"]


def test_table_and_router_match_both_ways(manager):
    routes = router_routes(manager.root.api)
    table = {(r.method, r.path) for r in ROUTES}
    assert routes - table == set(), "routes without a row in api/route_table.py"
    assert table - routes == set(), "rows in api/route_table.py without a route"
    public = {(r.method, r.path) for r in ROUTES if r.public}
    assert public == {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@pytest_twisted.ensureDeferred
async def test_every_protected_route_refuses_no_token_and_wrong_scope(manager, gate, clerk):
    routes = sorted(router_routes(manager.root.api))
    assert len(routes) >= 11
    for method, rule in routes:
        row = lookup(method, rule)
        path = fill(rule)
        if row.public:
            r = await manager.call(method, path)
            assert r.status not in (401, 403), (method, rule)
            continue
        before = manager.failures("missing_token")
        r = await manager.call(method, path)
        assert r.status == 401, (method, rule, r.body)
        assert r.error_code == "missing_token" and r.body["error"] == "unauthorized"
        assert r.headers.getRawHeaders("www-authenticate")[0].startswith("Bearer")
        assert manager.failures("missing_token") == before + 1

        for issuer in (gate, clerk):
            for grants in (["pb:unrelated.read"], broad_but_wrong(row.scope)):
                before = manager.failures("missing_scope")
                r = await manager.call(method, path, token=issuer.token(scope=" ".join(grants)),
                                       body={} if method in ("POST", "DELETE") else None)
                assert r.status == 403, (method, rule, grants, r.body)
                assert r.error_code == "missing_scope" and r.body["scope"] == row.scope
                assert manager.failures("missing_scope") == before + 1

        if row.content_type == "text/event-stream":
            path += "?once=1"  # (a live stream would not end: ask for its first frames only)
        for grant in (row.scope, "*", row.scope.rsplit(".", 1)[0] + ".*"):
            r = await manager.call(method, path, token=gate.token(scope=grant),
                                   body={} if method in ("POST", "DELETE") else None)
            assert r.status not in (401, 403, 500), (method, rule, grant, r.body)


@pytest_twisted.ensureDeferred
async def test_a_token_bound_to_a_private_beach_cannot_name_another(manager, gate):
    token = gate.token(private_beach_id="pb-mine")
    before = manager.failures("wrong_private_beach")
    r = await manager.call("GET", "/private-beaches/pb-other/sessions", token=token)
    assert (r.status, r.error_code) == (403, "wrong_private_beach")
    assert manager.failures("wrong_private_beach") == before + 1
    r = await manager.call("POST", "/sessions/register", token=token,
                           body={"session_id": "s1", "private_beach_id": "pb-other"})
    assert (r.status, r.error_code) == (403, "wrong_private_beach")
    r = await manager.call("GET", "/private-beaches/pb-mine/sessions", token=token)
    assert (r.status, r.body) == (200, [])


@pytest_twisted.ensureDeferred
async def test_openapi_describes_exactly_the_router(manager, gate):
    r = await manager.call("GET", "/openapi.json", token=gate.token(scope="pb:manager.read"))
    assert r.status == 200
    doc = r.body
    described = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    actual = {(m, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)) for m, rule in router_routes(manager.root.api)}
    assert described == actual
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            row = lookup(method.upper(), re.sub(r"\{([^}]+)\}", r"<\1>", path))
            if row.public:
                assert op["security"] == []
            else:
                assert op["security"] == [{"bearer": [row.scope]}] and {"401", "403"} <= set(op["responses"])
            params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert params == set(re.findall(r"\{([^}]+)\}", path))


@pytest_twisted.ensureDeferred
async def test_unknown_paths_and_methods_are_json_errors(manager, gate):
    r = await manager.call("GET", "/nope")
    assert (r.status, r.error_code) == (404, "route_not_found")
    r = await manager.call("PUT", "/sessions/register", token=gate.token())
    assert (r.status, r.error_code) == (405, "method_not_allowed")
    assert "POST" in r.headers.getRawHeaders("allow")[0]


@pytest_twisted.ensureDeferred
async def test_probes_stay_public_and_metrics_list_every_reason(manager):
    assert (await manager.call("GET", "/healthz")).status == 200
    assert (await manager.call("GET", "/readyz")).status == 200
    text = (await manager.call("GET", "/metrics")).body.decode()
    for reason in ("missing_token", "unknown_kid", "unsupported_alg", "wrong_audience", "missing_scope"):
        assert f'auth_failure_total{{reason="{reason}"}}' in text
