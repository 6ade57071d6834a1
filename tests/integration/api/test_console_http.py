"""The operator console over real HTTP on a whole manager that trusts the Gate/Clerk stand-ins:
the page, its assets and the live stream need ``pb:manager.debug`` on every request; the page
loads nothing from another origin; the stream pushes a new view when the session stream
changes, refuses bad queries and opens at most ``max_streams`` at once."""

import re

import pytest_twisted

from beachmanager.api.ui.routes import ASSETS
from beachmanager.protocol.session import SessionState
from tests.support.eventually import eventually
from tests.support.sse_reader import SseReader

DEBUG = "pb:manager.debug"


@pytest_twisted.ensureDeferred
async def test_the_page_and_its_assets_need_the_debug_scope_and_name_no_other_origin(manager, gate):
    for path in ("/ui/", "/ui/static/console.js"):
        r = await manager.call("GET", path)
        assert (r.status, r.error_code) == (401, "missing_token"), path
        r = await manager.call("GET", path, token=gate.token(scope="pb:manager.read"))
        assert (r.status, r.error_code) == (403, "missing_scope"), path
    r = await manager.call("GET", "/ui/", token=gate.token(scope=DEBUG))
    assert r.status == 200
    assert r.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    csp = r.headers.getRawHeaders("content-security-policy")[0]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "script-src 'self'" in csp
    html = r.body.decode()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs and all(not re.match(r"^[a-z]+:|^//", ref) for ref in refs), refs
    assets = sorted(ref.split("/", 1)[1] for ref in refs if ref.startswith("static/"))
    assert assets == sorted(ASSETS)
    for name in assets:
        r = await manager.call("GET", f"/ui/static/{name}", token=gate.token(scope=DEBUG))
        assert r.status == 200 and r.headers.getRawHeaders("content-type")[0] == ASSETS[name].decode()
        text = r.body if isinstance(r.body, bytes) else str(r.body).encode()
        text = text.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")  # a name, not a load
        assert b"http://" not in text and b"https://" not in text and b"url(" not in text, name
    r = await manager.call("GET", "/ui/static/secrets.txt", token=gate.token(scope=DEBUG))
    assert (r.status, r.error_code) == (404, "asset_not_found")
    r = await manager.call("GET", "/ui/static/..%2Froutes.py", token=gate.token(scope=DEBUG))
    assert r.status == 404


@pytest_twisted.ensureDeferred
async def test_the_stream_needs_the_scope_and_pushes_the_session_stream_live(manager, gate):
    refused = await SseReader.open(manager.base, "/ui/stream")
    assert refused.status == 401 and (await refused.error())["error_code"] == "missing_token"
    refused = await SseReader.open(manager.base, "/ui/stream", gate.token(scope="pb:sessions.read"))
    assert refused.status == 403 and (await refused.error())["error_code"] == "missing_scope"

    reader = await SseReader.open(manager.base, "/ui/stream", gate.token(scope=DEBUG))
    try:
        assert reader.status == 200
        assert reader.headers["content-type"] == "text/event-stream; charset=utf-8"
        await eventually(reader.views, timeout=10, what="the first view")
        first = reader.views()[0]
        assert first["this_instance"] == manager.ctx.config.instance_id
        assert [m["id"] for m in first["members"]] == [manager.ctx.config.instance_id]
        assert first["refusals"] == {"requests refused: missing_token": 1,
                                     "requests refused: missing_scope": 1}  # the two above
        # a session change (the hub follows the session stream): a new view, no reload
        manager.parts.events.publish("h-live-1", SessionState.ATTACHING)
        await eventually(lambda: any(v["counts"].get("attaching") == 1 for v in reader.views()),
                         timeout=10, what="a view counting the attaching host")
        latest = reader.views()[-1]
        assert latest["changes"][0]["host_session_id"] == "h-live-1"
        assert latest["changes"][0]["new"] == "attaching"
        manager.parts.events.publish("h-live-1", SessionState.STOPPED, removed=True)
        await eventually(lambda: reader.views()[-1]["changes"][0]["removed"], timeout=10,
                         what="a view after the host is no longer managed")
    finally:
        await reader.close()
    await eventually(lambda: manager.parts.console.streams == [], timeout=10,
                     what="the closed stream forgotten")


@pytest_twisted.ensureDeferred
async def test_once_a_host_detail_bad_queries_and_the_stream_cap(manager, gate):
    token = gate.token(scope=DEBUG)
    r = await manager.call("GET", "/ui/stream?once=1&host=h-nowhere", token=token)
    assert r.status == 200
    body = r.body.decode() if isinstance(r.body, bytes) else r.body
    assert "event: view\n" in body and "event: host\n" in body
    assert '"message":"host h-nowhere has no session on this instance"' in body
    for query, word in (("once=yes", "once must be 0 or 1"), ("host=", "host must be"),
                        ("host=a%00b", "host must be"), ("host=a&host=b", "more than once")):
        r = await manager.call("GET", "/ui/stream?" + query, token=token)
        assert (r.status, r.error_code) == (400, "invalid_query"), query
        assert word in r.body["message"]

    console = manager.parts.console
    console.max_streams = 2
    readers = [await SseReader.open(manager.base, "/ui/stream", token) for _ in range(2)]
    try:
        assert [x.status for x in readers] == [200, 200]
        third = await SseReader.open(manager.base, "/ui/stream", token)
        assert third.status == 503 and third.headers["retry-after"] == "5"
        assert (await third.error())["error_code"] == "console_busy"
    finally:
        for x in readers:
            await x.close()
    await eventually(lambda: console.streams == [], timeout=10, what="the streams closed")
    ready, report = manager.root.readiness()
    assert report["console"]["refused"] == 1 and report["console"]["streams"] == 0
