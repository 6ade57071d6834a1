#!/usr/bin/env python3
"""Failover: SIGKILL the owner of most hosts and time the takeover, with and without standbys.

For each mode, in the same run (``--modes standby,cold``): a fresh Redis, database, devstack
Road and a farm of ``--hosts`` devstack hosts (real shells, one process), two manager processes
(``--heartbeat`` seconds between membership heartbeats, dead after ``--lease``), the bus
heartbeat on in both modes (``--liveness`` s: a standby deployment's active sessions ping too,
so both modes pay it).  Once every host is ready (and, with standbys, every standby is), an
action stream runs to every host the victim owns (one client thread, round-robin, at most
``--rate`` per host per second: the figure printed is what it achieved), the victim is
SIGKILLed, and the stream goes on through the survivor (any instance enqueues into the host's
shared queue stream).  Each action writes its id and the host's clock in the host's shell.
Printed over the moved hosts:

* ``ready``: kill -> the survivor's session to the host active and ready (p50, p99, max);
* ``applied``: kill -> the first action applied after the kill (p50, p99, max), lost
  (accepted, never applied) and doubled (applied twice);
* ``gap``: the longest stretch without an effect per host across the kill (p50, max), against
  the longest one before the kill (the client's own pacing);
* at rest before the kill: RSS and CPU of the survivor and of an idle manager process (no
  hosts, measured in the same run), so that a session's cost is known: an active one's from
  cold mode (survivor minus idle, per active session), a standby's from standby mode minus
  cold mode (per standby session).

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
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attach import cpu_seconds, pct, rss_mib

from tests.e2e.assign.cluster import Cluster, http, ownership, wait_for
from tests.support.servers import temporary_database, throwaway_redis


class Stream:
    """Round-robin actions to *hosts* through *via* (switchable), at most *rate* per host per
    second; each writes ``ID NANOS`` to the host's file."""

    def __init__(self, hosts: list[str], tokens: dict[str, str], outs: dict[str, Path],
                 via, rate: float):
        self.hosts, self.tokens, self.outs, self.via, self.rate = hosts, tokens, outs, via, rate
        self.accepted: dict[str, list[str]] = {h: [] for h in hosts}
        self.refused = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            started = time.monotonic()
            for h in self.hosts:
                tag = f"S{n:05d}"
                action = {"id": f"{h}-{tag}", "action_type": "terminal_write",
                          "payload": {"bytes": f"echo {tag} $(date +%s%N) >> {self.outs[h]}\r"}}
                try:
                    status, _, _ = http("POST", f"{self.via.url}/sessions/{h}/actions",
                                        {"controller_token": self.tokens[h], "actions": [action]},
                                        timeout=5)
                except OSError:
                    status = 0  # the victim, killed under the request
                if status == 200:
                    self.accepted[h].append(tag)
                else:
                    self.refused += 1
            n += 1
            self.rounds += 1
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(30)
        return self.rounds / (time.monotonic() - self._started)


def effects(path: Path) -> list[tuple[str, float]]:
    out = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out.append((parts[0], int(parts[1]) / 1e9))
    return out


def idle_baseline(args) -> tuple[float, float]:
    """CPU (%core) and RSS (MiB) of a manager process holding no host, at rest."""
    workdir = Path(tempfile.mkdtemp(prefix="beach-bench-failover-idle-"))
    c = Cluster(workdir, "", "")
    try:
        m = c.start_manager("mgr-idle", 10, None, REDIS_URL="", DATABASE_URL="",
                            BEACH_MANAGER_JOIN_CODE_KEY="")
        c.wait_ready(m)
        time.sleep(args.rest)
        cpu0, t0 = cpu_seconds(m.proc.pid), time.monotonic()
        time.sleep(args.rest)
        return ((cpu_seconds(m.proc.pid) - cpu0) / (time.monotonic() - t0) * 100,
                rss_mib(m.proc.pid))
    finally:
        c.stop()


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
           "BEACH_MANAGER_LEASE_TIMEOUT": str(args.lease),
           "BEACH_MANAGER_LIVENESS_INTERVAL": str(args.liveness),
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
    stream = Stream(moved, tokens, outs, survivor, args.rate)
    stream.start()
    time.sleep(args.before)  # the stream's own pacing, before anything fails

    killed_wall, killed = time.time(), time.monotonic()
    c.kill(victim, signal.SIGKILL)
    ready_at: dict[str, float] = {}
    first_at: dict[str, float] = {}
    deadline = killed + args.timeout
    while time.monotonic() < deadline and (len(ready_at) < len(moved) or len(first_at) < len(moved)):
        now_sessions = survivor.sessions()
        now = time.monotonic() - killed
        for h in moved:
            s = now_sessions.get(h)
            if h not in ready_at and s and s["role"] == "active" and s["status"] == "ready":
                ready_at[h] = now
            if h not in first_at:
                after = [t for _, t in effects(outs[h]) if t > killed_wall]
                if after:
                    first_at[h] = min(after) - killed_wall
        time.sleep(0.05)
    time.sleep(args.after)
    achieved = stream.stop()
    wait_for("accepted actions applied", lambda: all(
        {t for t, _ in effects(outs[h])} >= set(stream.accepted[h]) for h in moved), 30, step=0.5)
    lost = doubled = 0
    gap_across, gap_before = [], []
    for h in moved:
        seen = [t for t, _ in effects(outs[h])]
        lost += len(set(stream.accepted[h]) - set(seen))
        doubled += len(seen) - len(set(seen))
        times = sorted(t for _, t in effects(outs[h]))
        before = [t for t in times if t <= killed_wall]
        gap_before.append(max((b - a for a, b in zip(before, before[1:], strict=False)), default=0))
        gap_across.append(max((b - a for a, b in zip(times, times[1:], strict=False)), default=0))
    return {
        "mode": mode, "hosts": len(ids), "moved": len(moved), "heartbeat_s": args.heartbeat,
        "rate_per_host": round(achieved, 2), "refused_posts": stream.refused,
        "accepted": sum(len(v) for v in stream.accepted.values()),
        "ready_p50_s": round(pct(list(ready_at.values()), 50), 3),
        "ready_p99_s": round(pct(list(ready_at.values()), 99), 3),
        "ready_max_s": round(max(ready_at.values(), default=float("nan")), 3),
        "applied_p50_s": round(pct(list(first_at.values()), 50), 3),
        "applied_p99_s": round(pct(list(first_at.values()), 99), 3),
        "applied_max_s": round(max(first_at.values(), default=float("nan")), 3),
        "gap_p50_s": round(pct(gap_across, 50), 3), "gap_max_s": round(max(gap_across), 3),
        "gap_before_max_s": round(max(gap_before), 3),
        "lost": lost, "doubled": doubled,
        "fenced": _metric(survivor, "fenced_actions_total"),
        "survivor_rest_cpu_pct_core": round(rest_cpu, 2), "survivor_rss_mib": round(rest_rss, 1),
        "survivor_active_sessions": len(ids) - len(moved),
        "survivor_standby_sessions": len(moved) if mode == "standby" else 0,
    }


def _metric(m, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(m.url + "/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--heartbeat", type=float, default=0.3, help="membership heartbeat (both modes)")
    ap.add_argument("--lease", type=float, default=1.0, help="lease timeout (both modes)")
    ap.add_argument("--modes", default="standby,cold")
    ap.add_argument("--rest", type=float, default=3.0, help="seconds at rest before measuring")
    ap.add_argument("--liveness", type=float, default=0.25, help="bus heartbeat interval (both modes)")
    ap.add_argument("--rate", type=float, default=10.0, help="most actions per host per second")
    ap.add_argument("--before", type=float, default=3.0, help="seconds of stream before the kill")
    ap.add_argument("--after", type=float, default=3.0, help="seconds of stream after takeover")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    idle_cpu, idle_rss = idle_baseline(args)
    results = {mode: run_mode(mode, args) for mode in args.modes.split(",")}
    for r in results.values():
        print(json.dumps(r))
    print(f"idle manager process (no host): {idle_cpu:.2f} %core, {idle_rss:.1f} MiB")
    print(f"\n{'mode':8} {'moved':>5} {'ready p50':>9} {'p99':>6} {'max':>6} {'applied p50':>11} "
          f"{'p99':>6} {'max':>6} {'gap p50':>7} {'max':>6} {'before':>6} {'lost':>4} {'dbl':>3} "
          f"{'/s/host':>7} {'rest %core':>10} {'RSS MiB':>8}")
    for r in results.values():
        print(f"{r['mode']:8} {r['moved']:5} {r['ready_p50_s']:9.3f} {r['ready_p99_s']:6.3f} "
              f"{r['ready_max_s']:6.3f} {r['applied_p50_s']:11.3f} {r['applied_p99_s']:6.3f} "
              f"{r['applied_max_s']:6.3f} {r['gap_p50_s']:7.3f} {r['gap_max_s']:6.3f} "
              f"{r['gap_before_max_s']:6.3f} {r['lost']:4} {r['doubled']:3} "
              f"{r['rate_per_host']:7.2f} {r['survivor_rest_cpu_pct_core']:10.2f} "
              f"{r['survivor_rss_mib']:8.1f}")
    if "standby" in results and "cold" in results:
        s, c = results["standby"], results["cold"]
        print(f"\ncold / standby: ready p50 x{c['ready_p50_s'] / s['ready_p50_s']:.2f}, "
              f"applied p50 x{c['applied_p50_s'] / s['applied_p50_s']:.2f}, "
              f"applied p99 x{c['applied_p99_s'] / s['applied_p99_s']:.2f}, "
              f"longest gap x{c['gap_max_s'] / s['gap_max_s']:.2f}")
        n = s["survivor_standby_sessions"]
        active = c["survivor_active_sessions"]
        if n and active:
            standby_rss = (s["survivor_rss_mib"] - c["survivor_rss_mib"]) / n * 1024
            standby_cpu = (s["survivor_rest_cpu_pct_core"] - c["survivor_rest_cpu_pct_core"]) / n
            active_rss = (c["survivor_rss_mib"] - idle_rss) / active * 1024
            active_cpu = (c["survivor_rest_cpu_pct_core"] - idle_cpu) / active
            print(f"at rest, per session: active {active_rss:.0f} KiB, {active_cpu:.3f} %core; "
                  f"standby {standby_rss:.0f} KiB, {standby_cpu:.3f} %core "
                  f"(standby / active: RSS x{standby_rss / active_rss:.2f}, "
                  f"CPU x{standby_cpu / active_cpu:.2f})")


if __name__ == "__main__":
    main()
