"""Hot failover, first part (``BEACH_MANAGER_STANDBY=1``): every host has a warm standby
session on the next instance in its rendezvous rank; when the owner is killed, the survivor
promotes the standby instead of attaching the host again, and actions flow through it.

Real parts: manager processes, devstack Road and hosts (real shells), Redis, PostgreSQL.
"""

from __future__ import annotations

import signal
import time

import pytest

from .cluster import http, ownership, wait_for
from .test_cluster_e2e import lines, metric, register, write_to

HOSTS = 6


def sessions(m) -> dict[str, dict]:
    """The manager's host sessions by host (role, status, attempts) from /debug/transports."""
    status, body, _ = http("GET", m.url + "/debug/transports")
    assert status == 200, body
    return {t["host_session_id"]: t for t in body["transports"]}


@pytest.mark.parametrize("heartbeat", ["5", "0.4"], ids=["default-heartbeat", "fast-heartbeat"])
def test_a_killed_owners_hosts_are_taken_over_by_promoting_their_standbys(cluster, heartbeat):
    c = cluster
    c.start_road()
    hosts = c.start_hosts(HOSTS)
    listing = c.hosts_file(hosts)
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1",
                                   BEACH_ACTION_CLAIM_TIMEOUT="2",
                                   BEACH_MANAGER_HEARTBEAT_INTERVAL=heartbeat)
                for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    ids = [h for h, _ in hosts]
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == HOSTS, 60, step=0.5)

    def standbys_ready() -> bool:
        owners = ownership(c.live())["owners"]
        for host in ids:
            other = managers["mgr-b" if owners[host] == "mgr-a" else "mgr-a"]
            s = sessions(other).get(host)
            if s is None or s["role"] != "standby" or s["status"] != "ready":
                return False
        return True

    wait_for("a ready standby for every host on the other instance", standbys_ready, 60, step=0.5)
    owners = ownership(c.live())["owners"]
    victim = "mgr-a" if sum(o == "mgr-a" for o in owners.values()) else "mgr-b"
    survivor = managers["mgr-b" if victim == "mgr-a" else "mgr-a"]
    moved = sorted(h for h, o in owners.items() if o == victim)
    assert moved
    before = {h: sessions(survivor)[h] for h in moved}
    assert all(s["role"] == "standby" and s["attempts"] == 1 for s in before.values())

    killed_at = time.monotonic()
    c.kill(victim, signal.SIGKILL)

    def taken_over() -> bool:
        now = sessions(survivor)
        return all(now[h]["role"] == "active" and now[h]["status"] == "ready" for h in moved)

    wait_for("the survivor's standbys promoted", taken_over, 30, step=0.1)
    took = time.monotonic() - killed_at
    after = sessions(survivor)
    # the same transports: promoted, not attached again
    for h in moved:
        assert after[h]["transport_id"] == before[h]["transport_id"], (h, before[h], after[h])
        assert after[h]["attempts"] == 1 and after[h]["reconnects"] == 0
    wait_for("the takeovers counted", lambda: metric(survivor, "failover_total",
                                                     reason="promoted") == len(moved), 10)
    assert metric(survivor, "failover_total", reason="attached") == 0
    print(f"heartbeat {heartbeat}s: kill -> {len(moved)} host(s) active on the survivor in "
          f"{took:.2f}s (membership detection included; no re-attach)")

    # and actions flow through the promoted session
    host = moved[0]
    token = register(survivor, host)
    out = c.workdir / f"{host}.standby.out"
    status, body, _ = http("POST", f"{survivor.url}/sessions/{host}/actions",
                           {"controller_token": token, "actions": [write_to(str(out), "PROMOTED")]})
    assert status == 200, body
    wait_for("the action applied through the promoted session", lambda: lines(out) == ["PROMOTED"], 20)
