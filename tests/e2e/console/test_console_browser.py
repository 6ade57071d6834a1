"""The operator console in a real headless Chromium (Debian's, driven by Playwright) against a
real manager with devstack hosts as their own processes (real PTYs, real aiortc), behind real
bearer-token auth: the page lists the hosts, shows one going from attaching to ready, follows
an action's ack onto the host's terminal and a host dropping, all live (never reloaded), works
from the keyboard, keeps text contrast readable, and loads nothing from elsewhere.

Screenshots are written under the test's temporary directory.
"""

import re
import signal

import pytest
import pytest_twisted
from playwright.async_api import expect
from twisted.internet import reactor

from beachmanager.devstack.process import spawn_host
from beachmanager.transport.events import ready_of
from tests.support import browser as br
from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings
from tests.support.browser import aio

pytestmark = pytest.mark.slow

BEACH = "pb-console"
SLOW = 30_000  # ms: an attach, a host's loss (expect() polls the page until then)


def row(page, host_id):
    return page.locator(f'#host-table tr[data-host="{host_id}"]')


async def attach_by_code(mgr, token, host):
    r = await mgr.call("POST", f"/private-beaches/{BEACH}/sessions/attach-by-code", token=token,
                       body={"session_id": host.info["session_id"], "code": host.info["join_code"]})
    assert r.status == 200, r.body
    return host.info["session_id"]


async def send_action(mgr, token, host_id, text):
    r = await mgr.call("POST", f"/sessions/{host_id}/controller/lease", token=token,
                       body={"reason": "console-e2e", "ttl_ms": 60_000})
    assert r.status == 200, r.body
    action = {"id": "console-1", "action_type": "terminal_write", "payload": {"bytes": text + "\r"}}
    r = await mgr.call("POST", f"/sessions/{host_id}/actions", token=token,
                       body={"controller_token": r.body["controller_token"], "actions": [action]})
    assert r.status == 200 and r.body["enqueued"] == ["console-1"], r.body


async def shot(b, tmp_path, name):
    path = tmp_path / f"console-{name}.png"
    await aio(b.page.screenshot(path=str(path), full_page=True))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


@pytest_twisted.ensureDeferred
async def test_the_console_follows_an_attach_an_action_and_a_dropped_host(road, jwks, gate, tmp_path):
    br.require()
    token = gate.token(scope="pb:manager.debug pb:sessions.write pb:control.write pb:control.read "
                             "pb:beaches.write")
    hosts = []
    mgr = b = None
    try:
        first = await spawn_host(road.url, command="/bin/sh")
        second = await spawn_host(road.url, command="/bin/sh")
        hosts += [first, second]
        mgr = await start_manager(road_url=road.url, webrtc_disable_stun=True, **auth_settings(jwks))
        r = await mgr.call("POST", "/private-beaches", token=token, body={"id": BEACH})
        assert r.status == 201, r.body  # the operator owns the beach its hosts join
        first_id = await attach_by_code(mgr, token, first)
        await mgr.parts.events.wait_for(ready_of(first_id)).addTimeout(30, reactor)

        b = await aio(br.launch(headers={"Authorization": f"Bearer {token}"}))
        page = b.page
        await aio(page.goto(mgr.base + "/ui/"))
        await aio(page.evaluate("() => { window.__loaded = 'once'; }"))  # gone if it reloads
        await aio(expect(page.locator("#conn")).to_have_attribute("data-state", "live"))
        await aio(expect(page.locator("#instance-id")).to_have_text(mgr.ctx.config.instance_id))
        await aio(expect(row(page, first_id)).to_have_attribute("data-status", "ready"))
        await aio(expect(row(page, first_id).locator("td.c-owner")).to_have_text(
            mgr.ctx.config.instance_id))
        await aio(expect(page.locator("#members tr[data-member]")).to_have_count(1))

        # an attach, seen live: the second host is paused (SIGSTOP), so its session waits for
        # the offer in "attaching" until the host is let go again
        second.transport.signalProcess("STOP")
        second_id = await attach_by_code(mgr, token, second)
        await aio(expect(row(page, second_id)).to_have_attribute("data-status", "attaching",
                                                                  timeout=SLOW))
        await shot(b, tmp_path, "attaching")
        second.transport.signalProcess(signal.SIGCONT)
        await aio(expect(row(page, second_id)).to_have_attribute("data-status", "ready",
                                                                  timeout=SLOW))
        await aio(expect(row(page, second_id).locator("td.c-rtc")).to_have_text(
            re.compile(r"^\d+\.\d\d s$")))
        await aio(expect(row(page, second_id).locator("td.c-owner")).to_have_text(
            mgr.ctx.config.instance_id))
        await aio(expect(page.locator(f'#changes li[data-host="{second_id}"]').filter(
            has_text="attaching \u2192 ready")).to_have_count(1))

        # the keyboard: "/" filters, Tab reaches the host's link, Enter opens its detail
        await aio(page.keyboard.press("/"))
        await aio(expect(page.locator("#filter")).to_be_focused())
        await aio(page.keyboard.type(second_id[:13]))
        await aio(expect(page.locator("#host-table tbody tr")).to_have_count(1))
        link = row(page, second_id).locator("td.c-host a")
        for _ in range(5):
            if await aio(link.evaluate("(a) => a === document.activeElement")):
                break
            await aio(page.keyboard.press("Tab"))
        await aio(expect(link).to_be_focused())
        await aio(page.keyboard.press("Enter"))
        await aio(expect(page.locator("#detail")).to_be_visible())
        await aio(expect(page.locator("#detail")).to_be_focused())
        await aio(expect(page.locator("#detail-id")).to_have_text(second_id))
        await aio(expect(page.locator("#phase-strip li").filter(has_text="ready")).to_have_count(1))
        await aio(expect(page.locator("#timeline tbody tr").last).to_contain_text("rtc_ready_seconds="))

        # an action sent through the REST API: its ack in the table, its output in the mirror
        await send_action(mgr, token, second_id, "echo CONSOLE-$((6*7))")
        await aio(expect(row(page, second_id).locator("td.c-ack")).to_contain_text("ok \u00b7",
                                                                                   timeout=SLOW))
        await aio(expect(page.locator("#terminal")).to_contain_text("CONSOLE-42", timeout=SLOW))
        await shot(b, tmp_path, "action")

        # Escape: back to every host, the filter cleared by hand
        await aio(page.keyboard.press("Escape"))
        await aio(expect(page.locator("#detail")).to_be_hidden())
        await aio(page.locator("#filter").fill(""))
        await aio(expect(page.locator("#host-table tbody tr")).to_have_count(2))

        # a host drops: its process stops; the row leaves "ready" and the change is listed
        await first.stop()
        await aio(expect(row(page, first_id)).not_to_have_attribute("data-status", "ready",
                                                                    timeout=SLOW))
        await aio(expect(page.locator(f'#changes li[data-host="{first_id}"]').filter(
            has_text="ready \u2192")).to_have_count(1, timeout=SLOW))
        await shot(b, tmp_path, "dropped")

        assert await aio(page.evaluate("() => window.__loaded")) == "once"  # never reloaded
        contrast = await aio(page.evaluate(br.CONTRAST_JS))
        assert contrast["checked"] > 50 and contrast["low"] == [], contrast
        foreign = [u for u in b.requests if not u.startswith(mgr.base + "/ui/")]
        assert foreign == [], foreign
        assert b.errors == []
    finally:
        if b is not None:
            await aio(b.close())
        if mgr is not None:
            await mgr.stop()
        for h in hosts:
            if h.running:
                h.transport.signalProcess(signal.SIGCONT)
                await h.stop()


@pytest_twisted.ensureDeferred
async def test_without_a_token_the_page_is_refused_in_the_browser(jwks, tmp_path):
    br.require()
    mgr = await start_manager(**auth_settings(jwks))
    b = None
    try:
        b = await aio(br.launch())
        response = await aio(b.page.goto(mgr.base + "/ui/"))
        assert response.status == 401
        assert "missing_token" in await aio(b.page.content())
    finally:
        if b is not None:
            await aio(b.close())
        await mgr.stop()
