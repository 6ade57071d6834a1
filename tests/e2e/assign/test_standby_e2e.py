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
from .stream import Stream, check_once, wait_effects_after
from .test_cluster_e2e import lines, metric, register, write_to

HOSTS = 6


@pytest.mark.parametrize("heartbeat", ["5", None], ids=["slow-lease", "standby-defaults"])
def test_a_killed_owners_hosts_are_taken_over_by_promoting_their_standbys(cluster, heartbeat):
    """SIGKILL the owner mid-stream (10 actions/s to one of its hosts): the survivor promotes
    its standbys (same transports) and every action is applied once.  With a 5 s heartbeat
    the lease decides late; on the standby defaults (0.3 s / 1 s) in about a second."""
    c = cluster
    c.start_road()
    hosts = c.start_hosts(HOSTS)
    listing = c.hosts_file(hosts)
    slow = {"BEACH_MANAGER_HEARTBEAT_INTERVAL": heartbeat} if heartbeat else {}
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1", **slow)
                for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    ids = [h for h, _ in hosts]
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == HOSTS, 60, step=0.5)

    def standbys_ready() -> bool:
        owners = ownership(c.live())["owners"]
        for host in ids:
            other = managers["mgr-b" if owners[host] == "mgr-a" else "mgr-a"]
            s = other.sessions().get(host)
            if s is None or s["role"] != "standby" or s["status"] != "ready":
                return False
        return True

    wait_for("a ready standby for every host on the other instance", standbys_ready, 60, step=0.5)
    owners = ownership(c.live())["owners"]
    victim = "mgr-a" if sum(o == "mgr-a" for o in owners.values()) else "mgr-b"
    survivor = managers["mgr-b" if victim == "mgr-a" else "mgr-a"]
    moved = sorted(h for h, o in owners.items() if o == victim)
    assert moved
    before = {h: survivor.sessions()[h] for h in moved}
    assert all(s["role"] == "standby" and s["attempts"] == 1 for s in before.values())

    host = moved[0]
    stream = Stream(survivor, host, register(survivor, host), c.workdir / f"{host}.kill.out")
    with stream:
        wait_for("actions flowing", lambda: len(stream.applied()) >= 10, 30, step=0.2)
        killed_at = time.monotonic()
        c.kill(victim, signal.SIGKILL)
        _wait_taken_over(survivor, moved)
        took = time.monotonic() - killed_at
        wait_effects_after(stream, time.time(), 5, "effects through the promoted session")
    gap = check_once(stream)
    _check_promoted(survivor, moved, before)
    print(f"lease {heartbeat or '0.3/1'}s: kill -> {len(moved)} host(s) active on the survivor in "
          f"{took:.2f}s (no re-attach); {len(stream.posted)} actions at 10/s, each once; longest "
          f"gap between effects {gap:.2f}s")


def _wait_taken_over(survivor, moved) -> None:
    def taken_over() -> bool:
        now = survivor.sessions()
        return all(now[h]["role"] == "active" and now[h]["status"] == "ready" for h in moved)

    wait_for("the survivor's standbys promoted", taken_over, 30, step=0.1)


def _check_promoted(survivor, moved, before) -> None:
    after = survivor.sessions()
    # the same transports: promoted, not attached again
    for h in moved:
        assert after[h]["transport_id"] == before[h]["transport_id"], (h, before[h], after[h])
        assert after[h]["attempts"] == 1 and after[h]["reconnects"] == 0
    wait_for("the takeovers counted", lambda: metric(survivor, "failover_total",
                                                     reason="promoted") == len(moved), 10)
    assert metric(survivor, "failover_total", reason="attached") == 0


def test_a_paused_owner_is_fenced_when_it_wakes_and_nothing_is_applied_twice(cluster):
    """SIGSTOP the owner past the failure timeout with actions queued: the standby is promoted
    at a new epoch and delivers them; on SIGCONT the former owner's deliveries carry the old
    epoch and are refused by the host; every action is applied exactly once."""
    c = cluster
    c.start_road()
    hosts = c.start_hosts(2)
    listing = c.hosts_file(hosts)
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1",
                                   BEACH_MANAGER_HEARTBEAT_INTERVAL="0.4",
                                   BEACH_ACTION_INFLIGHT_WINDOW="1", BEACH_ACTION_CLAIM_TIMEOUT="2")
                for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == 2, 60, step=0.5)
    owners = ownership(c.live())["owners"]
    host = hosts[0][0]
    victim = managers[owners[host]]
    survivor = managers["mgr-b" if victim.instance_id == "mgr-a" else "mgr-a"]
    wait_for("the standby ready", lambda: survivor.sessions().get(host, {}).get("status") == "ready", 60)
    epoch_before = next(h["epoch"] for h in victim.debug()["hosts"] if h["host_session_id"] == host)
    token = register(victim, host)
    out = c.workdir / f"{host}.fenced.out"
    tags = [f"F{i}" for i in range(20)]
    status, body, _ = http("POST", f"{victim.url}/sessions/{host}/actions",
                           {"controller_token": token,
                            "actions": [write_to(str(out), t) for t in tags]})
    assert status == 200, body
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for("the survivor promoted", lambda: survivor.sessions()[host]["role"] == "active", 20)
        wait_for("every action applied", lambda: set(lines(out)) == set(tags), 30)
        epoch_after = next(h["epoch"] for h in survivor.debug()["hosts"]
                           if h["host_session_id"] == host)
        assert epoch_after > epoch_before
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    wait_for("the former owner lets the host go", lambda: victim.sessions().get(host, {}).get(
        "role") != "active", 30)
    time.sleep(2.0)  # a stretch after waking: anything the former owner still sends is fenced
    applied = lines(out)
    assert sorted(applied) == sorted(tags), applied  # each once: none lost, none twice
    print(f"fenced on wake: {metric(victim, 'fenced_actions_total'):.0f} action(s); epoch "
          f"{epoch_before} -> {epoch_after}")


def _pair_with_standbys(c, count: int, **env: str):
    """Two managers with standbys on their defaults (lease renewed every 0.3 s, timeout 1 s;
    bus heartbeat every 0.25 s, timeout 1 s) unless *env* says otherwise."""
    c.start_road()
    hosts = c.start_hosts(count)
    listing = c.hosts_file(hosts)
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1", **env)
                for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    ids = [h for h, _ in hosts]
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == count, 60, step=0.5)

    def standbys_ready() -> bool:
        owners = ownership(c.live())["owners"]
        return all(managers["mgr-b" if owners[h] == "mgr-a" else "mgr-a"].sessions().get(h, {})
                   .get("status") == "ready" for h in ids)

    wait_for("a ready standby for every host", standbys_ready, 60, step=0.5)
    return ids, managers


def test_a_pause_shorter_than_the_timeout_moves_nothing_and_a_restart_takes_nothing_back(cluster):
    c = cluster
    ids, managers = _pair_with_standbys(c, 4)
    owners = ownership(c.live())["owners"]
    victim = managers[owners[ids[0]]]
    mine = sorted(h for h in ids if owners[h] == victim.instance_id)
    victim.proc.send_signal(signal.SIGSTOP)
    time.sleep(0.5)  # a 500 ms pause: shorter than the 1 s lease and liveness timeouts
    victim.proc.send_signal(signal.SIGCONT)
    time.sleep(2.0)  # a stretch after it: nothing may have moved
    assert ownership(c.live())["owners"] == owners
    assert all(victim.sessions()[h]["role"] == "active" for h in mine)

    # killed, its hosts taken over; restarted, it takes none back while they are healthy
    c.kill(victim.instance_id, signal.SIGKILL)
    survivor = next(m for m in managers.values() if m is not victim)
    wait_for("the takeover", lambda: all(survivor.sessions().get(h, {}).get("role") == "active"
                                         and survivor.sessions()[h]["status"] == "ready"
                                         for h in mine), 30, step=0.2)
    victim.proc.wait(10)
    back = c.start_manager(victim.instance_id, 10, c.workdir / "hosts.txt",
                           BEACH_MANAGER_STANDBY="1")
    c.wait_ready(back)
    wait_for("the restarted one stands by for the hosts it lost",
             lambda: all(back.sessions().get(h, {}).get("role") == "standby" for h in mine), 60)
    time.sleep(2.0)  # a stretch: no failback
    now = ownership(c.live())["owners"]
    assert all(now[h] == survivor.instance_id for h in mine), now


def test_sigterm_drains_by_promoting_the_standbys(cluster):
    c = cluster
    ids, managers = _pair_with_standbys(c, 4)
    owners = ownership(c.live())["owners"]
    leaving = managers[owners[ids[0]]]
    staying = next(m for m in managers.values() if m is not leaving)
    handed = sorted(h for h in ids if owners[h] == leaving.instance_id)
    before = {h: staying.sessions()[h]["transport_id"] for h in handed}
    host = handed[0]
    token = register(staying, host)
    with Stream(staying, host, token, c.workdir / f"{host}.drain.out") as stream:
        wait_for("actions flowing", lambda: len(stream.applied()) >= 10, 30, step=0.2)
        c.kill(leaving.instance_id, signal.SIGTERM)
        wait_for("the drain", lambda: all(staying.sessions().get(h, {}).get("role") == "active"
                                          for h in handed), 30, step=0.2)
        assert leaving.proc.wait(20) in (0, -signal.SIGTERM)  # a clean exit (twist re-raises it)
        wait_effects_after(stream, time.time(), 5, "effects through the new owner")
    gap = check_once(stream)
    print(f"SIGTERM drain: {len(stream.posted)} actions at 10/s, each once; longest gap between "
          f"effects {gap:.2f}s; {len(stream.refused)} post(s) answered 409 and sent again")
    after = staying.sessions()
    assert {h: after[h]["transport_id"] for h in handed} == before  # promoted: make-before-break
    assert metric(staying, "failover_total", reason="attached") == 0
