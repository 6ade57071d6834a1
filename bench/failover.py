#!/usr/bin/env python3
"""Failover: SIGKILL the owner of most hosts and time the takeover, with and without standbys.

For each mode, in the same run (``--modes standby,cold``): a fresh Redis, database, devstack
Road and a farm of ``--hosts`` devstack hosts (real shells, one process), two manager processes
(``--heartbeat`` seconds between membership heartbeats; dead after two missed).  Once every host
is ready (and, with standbys, every standby is), the victim is SIGKILLed and one action per
moved host is posted to the survivor at once (it goes into the host's shared queue stream).
Printed over the moved hosts:

* ``ready``: kill -> the survivor's session to the host active and ready (p50, p99, max);
* ``acked``: kill -> the action acked through the survivor (p50, p99, max), lost (not acked
  within ``--timeout``) and doubled (applied twice in the host's shell);
* at rest before the kill: the survivor's RSS and CPU, so that a standby session's cost can
  be set against an active one's (RSS and CPU per session, standby mode minus cold mode).

The ratio line compares cold to standby.  Detection is the membership timing either way; a
standby saves the attach itself (Argon2id, Noise, ICE).

Run from the repository root: ``.venv/bin/python bench/failover.py [--hosts 50]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attach import cpu_seconds, pct, rss_mib

from tests.e2e.assign.cluster import Cluster, http, ownership, wait_for
from tests.support.servers import temporary_database, throwaway_redis


def run_mode(mode: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"beach-bench-failover-{mode}-"))
    with throwaway_redis() as redis, temporary_database() as database:
        c = Cluster(workdir, redis.url, database)
        try:
            return _measure(c, mode, args, workdir)
        finally:
            c.stop()


def _measure(c: Cluster, mode: str, args, workdir: Path) -> dict:
    c.start_road()
    hosts = c.start_hosts(args.hosts)
    listing = c.hosts_file(hosts)
    env = {"BEACH_MANAGER_HEARTBEAT_INTERVAL": str(args.heartbeat),
           "BEACH_MANAGER_STANDBY": "1" if mode == "standby" else "0",
           "BEACH_MANAGER_HTTP_ACCESS_LOG": "errors"}
    managers = {x: c.start_manager(x, args.hosts, listing, **env) for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    ids = [h for h, _ in hosts]
    wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == len(ids),
             args.timeout, step=0.5)
    owners = ownership(c.live())["owners"]
    victim = max(("mgr-a", "mgr-b"), key=lambda x: sum(o == x for o in owners.values()))
    survivor = managers["mgr-b" if victim == "mgr-a" else "mgr-a"]
    moved = sorted(h for h, o in owners.items() if o == victim)
    if mode == "standby":
        def standbys_ready() -> bool:
            now = survivor.sessions()
            return all(now.get(h, {}).get("role") == "standby" and now[h]["status"] == "ready"
                       for h in moved)

        wait_for("a ready standby for every moved host", standbys_ready, args.timeout, step=0.5)
    tokens = {h: survivor.register(h, "pb-bench") for h in moved}
    pid = survivor.proc.pid
    time.sleep(args.rest)  # at rest: the survivor's cost is measured over this stretch
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(args.rest)
    rest_cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    rest_rss = rss_mib(pid)
    outs = {h: workdir / f"{h}.out" for h in moved}

    killed = time.monotonic()
    c.kill(victim, signal.SIGKILL)
    posted = {}
    for h in moved:
        action = {"id": f"FO-{h}", "action_type": "terminal_write",
                  "payload": {"bytes": f"echo FO >> {outs[h]}\r"}}
        status, body, _ = http("POST", f"{survivor.url}/sessions/{h}/actions",
                               {"controller_token": tokens[h], "actions": [action]})
        posted[h] = status
    ready_at: dict[str, float] = {}
    acked_at: dict[str, float] = {}
    deadline = killed + args.timeout
    while time.monotonic() < deadline and (len(ready_at) < len(moved) or len(acked_at) < len(moved)):
        now_sessions = survivor.sessions()
        now = time.monotonic() - killed
        for h in moved:
            s = now_sessions.get(h)
            if h not in ready_at and s and s["role"] == "active" and s["status"] == "ready":
                ready_at[h] = now
            if h not in acked_at and outs[h].exists() and outs[h].read_text().split():
                acked_at[h] = now
        time.sleep(0.05)
    doubled = sum(1 for h in moved if outs[h].exists() and len(outs[h].read_text().split()) > 1)
    return {
        "mode": mode, "hosts": len(ids), "moved": len(moved), "heartbeat_s": args.heartbeat,
        "refused_posts": sum(1 for s in posted.values() if s != 200),
        "ready_p50_s": round(pct(list(ready_at.values()), 50), 3),
        "ready_p99_s": round(pct(list(ready_at.values()), 99), 3),
        "ready_max_s": round(max(ready_at.values(), default=float("nan")), 3),
        "applied_p50_s": round(pct(list(acked_at.values()), 50), 3),
        "applied_p99_s": round(pct(list(acked_at.values()), 99), 3),
        "applied_max_s": round(max(acked_at.values(), default=float("nan")), 3),
        "lost": len(moved) - len(acked_at), "doubled": doubled,
        "survivor_rest_cpu_pct_core": round(rest_cpu, 2), "survivor_rss_mib": round(rest_rss, 1),
        "survivor_active_sessions": len(ids) - len(moved),
        "survivor_standby_sessions": len(moved) if mode == "standby" else 0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--heartbeat", type=float, default=0.4)
    ap.add_argument("--modes", default="standby,cold")
    ap.add_argument("--rest", type=float, default=3.0, help="seconds at rest before measuring")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    results = {mode: run_mode(mode, args) for mode in args.modes.split(",")}
    for r in results.values():
        print(json.dumps(r))
    print(f"\n{'mode':8} {'moved':>5} {'ready p50':>9} {'p99':>6} {'max':>6} {'applied p50':>11} "
          f"{'p99':>6} {'max':>6} {'lost':>4} {'dbl':>3} {'rest %core':>10} {'RSS MiB':>8}")
    for r in results.values():
        print(f"{r['mode']:8} {r['moved']:5} {r['ready_p50_s']:9.3f} {r['ready_p99_s']:6.3f} "
              f"{r['ready_max_s']:6.3f} {r['applied_p50_s']:11.3f} {r['applied_p99_s']:6.3f} "
              f"{r['applied_max_s']:6.3f} {r['lost']:4} {r['doubled']:3} "
              f"{r['survivor_rest_cpu_pct_core']:10.2f} {r['survivor_rss_mib']:8.1f}")
    if "standby" in results and "cold" in results:
        s, c = results["standby"], results["cold"]
        print(f"\ncold / standby: ready p50 x{c['ready_p50_s'] / s['ready_p50_s']:.2f}, "
              f"applied p50 x{c['applied_p50_s'] / s['applied_p50_s']:.2f}, "
              f"applied p99 x{c['applied_p99_s'] / s['applied_p99_s']:.2f}")
        n = s["survivor_standby_sessions"]
        active = c["survivor_active_sessions"]
        if n and active:
            extra_rss = (s["survivor_rss_mib"] - c["survivor_rss_mib"]) / n * 1024
            extra_cpu = (s["survivor_rest_cpu_pct_core"] - c["survivor_rest_cpu_pct_core"]) / n
            print(f"a standby session at rest: {extra_rss:.0f} KiB and {extra_cpu:.3f} %core "
                  f"(the survivor also holds {active} active sessions in both modes)")


if __name__ == "__main__":
    main()
