"""Helpers to drive a whole manager against real devstack hosts over REST."""

from __future__ import annotations

import re
import uuid
from collections import Counter

from twisted.internet import reactor

from beachmanager.registry.store import Op, SessionRegistration, Tenant
from tests.support.api_client import start_manager
from tests.support.eventually import eventually


async def manager(road_url: str, **overrides):
    return await start_manager(auth_bypass=True, road_url=road_url, webrtc_disable_stun=True,
                               **overrides)


async def attach(mgr, host, beach: str | None = None, register: bool = True) -> str | None:
    """Register the host's session (with a lease) and attach it; returns the lease token."""
    token = None
    if register:
        store = mgr.parts.registry.store
        tenant = Tenant(beach or "pb-" + uuid.uuid4().hex[:8], "acct-e2e")
        now_ms = int(mgr.ctx.clock.seconds() * 1000)
        result = await store.register_session(tenant, SessionRegistration(host.session_id), Op.new(),
                                              now_ms, lease_ttl_ms=3_600_000)
        token = result.lease.token
    hosts = mgr.parts.hosts
    await hosts.whenReady()
    machine = hosts.attach(host.session_id, host.join_code)
    await machine.when_ready().addTimeout(30, reactor)
    # the controller follows the same session stream: it sees the host ready at once
    assert mgr.parts.controller.transport_state(host.session_id) == "ready"
    return token


def write(i: int, prefix: str = "MARK") -> dict:
    return {"id": f"{prefix}-{i}", "action_type": "terminal_write",
            "payload": {"bytes": f"echo {prefix}-{i}\r"}}


async def post(mgr, host_id: str, token: str, actions: list[dict]):
    return await mgr.call("POST", f"/sessions/{host_id}/actions",
                          body={"controller_token": token, "actions": actions})


async def acked(mgr, host_id: str, ids: list[str], timeout: float = 30.0) -> dict[str, dict]:
    """Poll ``GET /sessions/:id/actions/:action_id`` until every id is acked."""
    views: dict[str, dict] = {}

    async def done():
        for action_id in ids:
            if action_id in views:
                continue
            r = await mgr.call("GET", f"/sessions/{host_id}/actions/{action_id}")
            if r.status == 200 and r.body.get("status") == "acked":
                views[action_id] = r.body
        return len(views) == len(ids)

    await eventually(done, timeout=timeout, step=0.1, what=f"acks for {len(ids)} actions")
    return views


def marks(lines: list[str], prefix: str = "MARK") -> Counter:
    """How often each ``<prefix>-<n>`` output line appears (the echo's output, not its command).

    Commands typed ahead are echoed by the tty before their output, so an output line may
    follow a prompt: ``$ MARK-2``."""
    pattern = re.compile(rf"^(?:\$\s*)*{prefix}-(\d+)\s*$")
    return Counter(int(m.group(1)) for line in lines if (m := pattern.match(line)))


def host_lines(host) -> list[str]:
    """Every line the host's terminal holds: its history (up to 1000 lines) and the viewport."""
    model = host.host.model
    return [model.row_text(row) for row in sorted(model.rows)]


def mirror_lines(mgr, host_id: str) -> list[str]:
    return mgr.parts.hosts.mirror(host_id).text_rows()


def dropped_not_connected(mgr) -> float:
    """``extension_dropped_total{reason="not_connected"}`` summed over topics."""
    return sum(s.value for m in mgr.metrics.registry.collect() if m.name == "extension_dropped"
               for s in m.samples if s.name == "extension_dropped_total"
               and s.labels.get("reason") == "not_connected")
