#!/usr/bin/env python3
"""Assignment figures: placement decisions per second, and failover time after a manager dies.

    .venv/bin/python bench/assign.py [--decisions 20000] [--sizes 50,200] [--skip-failover]

1. **Decisions per second** on a private Redis (``redis-server`` on a free port), through the
   production store (one Lua script per decision, txredisapi): first placements of new hosts
   ("assigned") and repeated asks for placed hosts ("kept", the sticky path), with one
   connection (latency-bound) and with 8 connections at once (throughput); three live members.
   Also the in-process rendezvous ranking and the in-memory store, for scale.
2. **Failover**: for each size N, a devstack Road, a farm of N devstack hosts (real shells),
   a manager that owns all N (``--rebalance-batch 0``, so none migrate) and a second manager
   with room for all N, on Redis and PostgreSQL.  The first is killed with SIGKILL; printed:
   time until the survivor starts taking the hosts (detection: two missed heartbeats at the
   default 5 s interval, so 5.5-10.5 s depending on where in the interval the kill falls),
   and until every host is owned by the survivor and its transport ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# -- 1. decisions -------------------------------------------------------------------------------
def decisions(count: int) -> None:
    from beachmanager import _reactor

    _reactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import DeferredList, ensureDeferred
    from twisted.internet.task import Clock

    from beachmanager.assign.model import InstanceInfo
    from beachmanager.assign.rendezvous import rank
    from beachmanager.assign.store_memory import MemoryAssignmentStore
    from beachmanager.assign.store_redis import RedisAssignmentStore
    from beachmanager.registry.redis_conn import connect
    from tests.support.servers import throwaway_redis

    ids = ["mgr-a", "mgr-b", "mgr-c"]
    t0 = time.perf_counter()
    for n in range(count):
        rank(f"host-{n}", ids)
    print(f"rendezvous ranking, 3 instances (pure):      {count / (time.perf_counter() - t0):>10,.0f} /s")

    async def run_memory() -> None:
        clock = Clock()
        store = MemoryAssignmentStore(clock, dead_after_ms=10_500)
        for i in ids:
            await store.heartbeat(InstanceInfo(i, "http://x", count), 15_000, "b")
        t = time.perf_counter()
        for n in range(count):
            await store.assign(f"host-{n}")
        print(f"in-memory store, first placements:           {count / (time.perf_counter() - t):>10,.0f} /s")

    async def run_redis(url: str) -> None:
        conns = [connect(url) for _ in range(8)]
        stores = [RedisAssignmentStore(c, dead_after_ms=10_500, prefix="bench:{assign}:") for c in conns]
        for i in ids:
            await stores[0].heartbeat(InstanceInfo(i, "http://x", count * 2), 60_000, "b")
        for label, prefix in (("assigned", "new"), ("kept", "new")):
            t = time.perf_counter()
            n1 = count // 4
            for n in range(n1):
                await stores[0].assign(f"{prefix}-1-{n}")
            one = n1 / (time.perf_counter() - t)
            t = time.perf_counter()

            async def worker(k: int, s, prefix: str = prefix) -> None:
                for n in range(k, count, len(stores)):
                    await s.assign(f"{prefix}-8-{n}")

            await DeferredList([ensureDeferred(worker(k, s)) for k, s in enumerate(stores)])
            eight = count / (time.perf_counter() - t)
            print(f"redis store, {label:<8} 1 connection:           {one:>10,.0f} /s")
            print(f"redis store, {label:<8} 8 connections:          {eight:>10,.0f} /s")
        loads = [m.load for m in await stores[0].members()]
        print(f"  (placed {sum(loads)} hosts; loads {loads})")
        for c in conns:
            await c.disconnect()

    async def main() -> None:
        await run_memory()
        with throwaway_redis() as server:
            await run_redis(server.url)

    def done(result):
        reactor.stop()
        return result

    def failed(failure):
        failure.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(main()).addCallbacks(done, failed))
    reactor.run()


# -- 2. failover ------------------------------------------------------------------------------------
def failover(size: int) -> dict:
    from tests.e2e.assign.cluster import Cluster, ownership, wait_for
    from tests.support.servers import temporary_database, throwaway_redis

    workdir = Path(tempfile.mkdtemp(prefix="bench-assign-"))
    with throwaway_redis() as redis, temporary_database() as database:
        c = Cluster(workdir, redis.url, database)
        try:
            c.start_road()
            t = time.monotonic()
            hosts = c.start_hosts(size, timeout=600)
            farm = time.monotonic() - t
            listing = c.hosts_file(hosts)
            victim = c.start_manager("mgr-victim", size, listing, BEACH_MANAGER_REBALANCE_BATCH="0")
            c.wait_ready(victim)
            t = time.monotonic()
            wait_for(f"{size} hosts ready at the first manager",
                     lambda: len(ownership([victim])["ready"]) == size, 600, step=1)
            attach_all = time.monotonic() - t
            survivor = c.start_manager("mgr-survivor", size, listing)  # knows the join codes
            c.wait_ready(survivor)
            wait_for("both members live", lambda: sum(
                m["live"] for m in survivor.debug()["members"]) == 2, 30)
            time.sleep(1.0)
            c.kill("mgr-victim", signal.SIGKILL)
            killed = time.monotonic()
            first_move = None
            samples = []

            def moved():
                nonlocal first_move
                o = ownership([survivor])
                taken = sum(1 for w in o["owners"].values() if w == "mgr-survivor")
                ready = sum(1 for h in o["ready"] if o["owners"].get(h) == "mgr-survivor")
                now = time.monotonic() - killed
                if taken and first_move is None:
                    first_move = now
                samples.append((now, taken, ready))
                return ready == size

            wait_for(f"{size} hosts ready at the survivor", moved, 300, step=0.2)
            total = time.monotonic() - killed
            return {"size": size, "farm_start": farm, "first_attach_all": attach_all,
                    "detect": first_move, "total": total, "attach_after_detect": total - first_move}
        finally:
            c.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--skip-decisions", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (figures are noisy on a busy machine)")
    if not args.skip_decisions:
        print(f"== placement decisions ({args.decisions} hosts per run)")
        decisions(args.decisions)
    if not args.skip_failover:
        print("== failover: SIGKILL of a manager holding N hosts -> all N ready at the survivor")
        results = []
        for size in [int(x) for x in args.sizes.split(",") if x]:
            r = failover(size)
            results.append(r)
            print(f"N={size:>4}: detected after {r['detect']:5.1f}s, all ready after {r['total']:5.1f}s "
                  f"(attach of N at the survivor: {r['attach_after_detect']:4.1f}s; first attach of N "
                  f"at start: {r['first_attach_all']:4.1f}s)", flush=True)
        if len(results) > 1:
            print(f"median total: {statistics.median(r['total'] for r in results):.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
