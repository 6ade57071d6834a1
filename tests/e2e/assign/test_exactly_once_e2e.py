"""Hot failover's remaining scenarios: an ack lost after the host applied the action, and a
standby that is already dead when the owner dies (the next in rank attaches from scratch).

Real parts: manager processes, devstack Road and hosts (real shells), Redis, PostgreSQL.
"""

from __future__ import annotations

import signal
import time

from .cluster import http, ownership, wait_for
from .stream import all_acked
from .test_cluster_e2e import lines, metric, register, write_to


def test_an_ack_lost_after_the_host_applied_is_redelivered_and_not_applied_twice(cluster):
    """The host drops its first acks (the action ran; its ack never reaches the manager): the
    manager redelivers after the ack timeout, the harness recognises each id and acks it again
    without running it, and every action ends acked and applied once."""
    c = cluster
    c.start_road()
    hosts = c.start_hosts(1, drop_first_acks=3)
    m = c.start_manager("mgr-a", 10, c.hosts_file(hosts), BEACH_ACTION_ACK_TIMEOUT="1")
    c.wait_ready(m)
    host = hosts[0][0]
    wait_for("the host ready", lambda: len(ownership([m])["ready"]) == 1, 60, step=0.5)
    token = register(m, host)
    out = c.workdir / f"{host}.acks.out"
    tags = [f"A{i}" for i in range(6)]
    status, body, _ = http("POST", f"{m.url}/sessions/{host}/actions",
                           {"controller_token": token,
                            "actions": [write_to(str(out), t) for t in tags]})
    assert status == 200, body

    def acked() -> bool:
        for t in tags:
            code, view, _ = http("GET", f"{m.url}/sessions/{host}/actions/{t}?controller_token={token}")
            if code != 200 or view.get("status") != "acked":
                return False
        return True

    wait_for("every action acked (three after a redelivery)", acked, 30, step=0.25)
    assert sorted(lines(out)) == sorted(tags), lines(out)  # each once
    delivery = _delivery_counters(m)
    assert delivery["redelivered"] >= 3, delivery
    print(f"lost acks: {delivery['redelivered']} redelivery(ies), every action applied once")


def _delivery_counters(m) -> dict:
    status, body, _ = http("GET", f"{m.url}/readyz")  # every part's status, the controller's too
    assert status == 200, body
    found = _find(body, "redelivered")
    assert found is not None, body
    return found


def _find(value, key):
    if isinstance(value, dict):
        if key in value:
            return value
        for v in value.values():
            hit = _find(v, key)
            if hit is not None:
                return hit
    elif isinstance(value, list):
        for v in value:
            hit = _find(v, key)
            if hit is not None:
                return hit
    return None


def test_when_the_standby_is_dead_too_the_next_in_rank_attaches_from_scratch(cluster):
    """Three managers with standbys; the host's standby is killed and, before the standbys
    follow, its owner as well: the third instance takes the host by a cold attach, and every
    queued action is applied once."""
    c = cluster
    c.start_road()
    hosts = c.start_hosts(3)
    listing = c.hosts_file(hosts)
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1",
                                   BEACH_MANAGER_HEARTBEAT_INTERVAL="0.4",
                                   BEACH_ACTION_CLAIM_TIMEOUT="2")
                for x in ("mgr-a", "mgr-b", "mgr-c")}
    for mgr in managers.values():
        c.wait_ready(mgr)
    ids = [h for h, _ in hosts]
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == len(ids), 90, step=0.5)
    host = ids[0]

    def standby_of(h: str) -> str | None:
        """The one manager holding a ready standby session to *h*, and the one every manager's
        plan names (None while standbys move: for a while two may hold one, or the plan names
        an instance that has not opened its session yet)."""
        holding = {name: mgr.sessions().get(h) for name, mgr in managers.items()}
        standing = [n for n, s in holding.items() if s and s.get("role") == "standby"]
        planned = [n for n, mgr in managers.items() if h in mgr.debug()["standby_for"]]
        if len(standing) == 1 and planned == standing \
                and holding[standing[0]].get("status") == "ready":
            return standing[0]
        return None

    wait_for("one ready standby for the host", lambda: standby_of(host), 60, step=0.5)
    owner = ownership(c.live())["owners"][host]
    standby = standby_of(host)
    third = next(x for x in managers if x not in (owner, standby))
    token = register(managers[third], host)
    out = c.workdir / f"{host}.cold.out"
    tags = [f"C{i}" for i in range(10)]
    status, body, _ = http("POST", f"{managers[third].url}/sessions/{host}/actions",
                           {"controller_token": token,
                            "actions": [write_to(str(out), t) for t in tags[:5]]})
    assert status == 200, body
    wait_for("the first actions applied", lambda: set(lines(out)) >= set(tags[:5]), 30)
    c.kill(standby, signal.SIGKILL)
    c.kill(owner, signal.SIGKILL)
    killed_at = time.monotonic()
    status, body, _ = http("POST", f"{managers[third].url}/sessions/{host}/actions",
                           {"controller_token": token,
                            "actions": [write_to(str(out), t) for t in tags[5:]]})
    assert status == 200, body
    wait_for("the third instance active for the host",
             lambda: managers[third].sessions().get(host, {}).get("role") == "active"
             and managers[third].sessions()[host].get("status") == "ready", 60, step=0.2)
    took = time.monotonic() - killed_at
    wait_for("every action applied", lambda: set(lines(out)) == set(tags), 30)
    wait_for("every action acked", lambda: all_acked(managers[third], host, token, tags), 30)
    assert sorted(lines(out)) == sorted(tags), lines(out)
    # Usually a cold attach; but the two leases expire up to a heartbeat apart, and in that
    # gap the third may become the standby and then be promoted: both are the next in rank
    # taking over with nothing lost or applied twice, which is what this test is about.
    how = {r: metric(managers[third], "failover_total", reason=r) for r in ("attached", "promoted")}
    assert sum(how.values()) >= 1, how
    print(f"standby dead too: {third} took {host} over ({how}) {took:.2f}s after the kills")
