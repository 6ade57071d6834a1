"""The whole manager (build_manager) managing a devstack host: --host option, debug routes over
real HTTP, readiness, crash state; and a host that negotiates but never says __offer_ready__."""

from __future__ import annotations

import json

import pytest_twisted
import treq
from prometheus_client import CollectorRegistry
from twisted.internet import reactor

from beachmanager import config
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.events import SessionState, ready_of
from beachmanager.transport.targets import HostTarget
from tests.support.eventually import eventually


@pytest_twisted.ensureDeferred
async def test_the_manager_attaches_configured_hosts_and_serves_debug_views(start_host, road):
    from beachmanager.manager import build_manager

    host = await start_host()
    cfg = config.defaults(road_url=road.url, webrtc_disable_stun=True, auth_bypass=True,
                          http_endpoint="tcp:0:interface=127.0.0.1",
                          host=(HostTarget(host.session_id, host.join_code),))
    root = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()), on_fatal=lambda code: None)
    root.startService()
    try:
        parts = root.parts
        await parts.http.whenReady()
        base = "http://%s:%d" % parts.http.address()
        hosts = parts.hosts
        await parts.events.wait_for(ready_of(host.session_id)).addTimeout(20, reactor)

        resp = await treq.get(f"{base}/debug/transports")
        listing = json.loads(await resp.content())
        assert resp.code == 200 and listing["counts"] == {"ready": 1}
        (item,) = listing["transports"]
        assert item["host_session_id"] == host.session_id and item["status"] == "ready"
        assert host.join_code not in json.dumps(listing)  # never the join code

        resp = await treq.get(f"{base}/debug/transports/{host.session_id}")
        detail = json.loads(await resp.content())
        assert [e["phase"] for e in detail["timeline"] if e["status"] == "ok"] == [
            "attach", "offer", "answer", "ice", "dc_open", "handshake", "ready"]
        assert detail["link"]["secure"] and detail["link"]["bytes_in"] > 0

        await eventually(lambda: hosts.mirror(host.session_id).in_sync, what="the mirror")
        resp = await treq.get(f"{base}/debug/hosts/{host.session_id}/cache")
        cache = json.loads(await resp.content())
        assert cache["summary"]["in_sync"] and cache["summary"]["cols"] == 80
        assert len(cache["viewport"]) == 24

        resp = await treq.get(f"{base}/debug/transports/no-such-host")
        assert resp.code == 404
        assert json.loads(await resp.content())["error_code"] == "host_not_managed"

        resp = await treq.get(f"{base}/readyz")
        ready = json.loads(await resp.content())
        assert ready["children"]["hosts"]["hosts"] == {"ready": 1}

        crash = root.ctx.crash.snapshot()["state"]["transports"]
        assert crash["counts"] == {"ready": 1}
        assert crash["hosts"][host.session_id]["status"] == "ready"
    finally:
        await root.stopService()
    await eventually(lambda: not host.host.serving_peers(), what="the host to see the manager leave")


@pytest_twisted.ensureDeferred
async def test_a_host_that_never_sends_offer_ready_is_reported_as_such(start_host, hosts_service,
                                                                       monkeypatch):
    from beachmanager.devstack.host.peer import ClientPeer

    # Like an upstream host already serving its one peer: it negotiates, then stays silent.
    monkeypatch.setattr(ClientPeer, "_serve", lambda self: None)
    host = await start_host()
    hosts = await hosts_service(attach_phase_timeout=2.0)
    machine = hosts.attach(host.session_id, host.join_code)
    # the failed attempt is published as a backoff (after its error is recorded)
    await hosts.events.wait_for(lambda c: c.host_session_id == host.session_id
                                and c.new is SessionState.BACKOFF).addTimeout(15, reactor)
    assert machine.last_error["phase"] == "ready"
    assert machine.last_error["code"] == "no_offer_ready"
    assert "__offer_ready__" in machine.last_error["reason"]
    assert "first peer" in machine.last_error["reason"]
    assert hosts.ctx.metrics.registry.get_sample_value("attach_failure_total", {"phase": "ready"}) == 1
    await hosts.detach(host.session_id)
