#!/usr/bin/env python3
"""Controller path speed: REST accept -> queue -> bus (WebRTC) -> host harness -> ack stored.

Three processes on this machine:

1. a host farm: a devstack Road and N devstack hosts (``--farm``, this script);
2. the manager (``twist beach-manager --hosts-file``), in-memory stores by default, or
   Redis + PostgreSQL with ``--redis-url`` / ``--database-url``;
3. this client: registers each session, takes a controller lease, then drives
   ``POST /sessions/:id/actions`` over HTTP.

Phases:

* **latency** at 1, 10 and 50 hosts (``--sizes``): each host gets ``--rate`` single-action
  requests per second for ``--duration`` seconds, paced; afterwards the acked view of each
  action (``GET /sessions/:id/actions/:id``, at most 2,000 sampled) gives
  ``stored_latency_ms`` (REST accept to ack stored, by the manager's clock): p50, p99, max;
  ``accept_to_ack`` is the part up to the host's ack arriving (the rest is the ack write);
* **throughput**: every host at once, offered loads (``--throughput``, total actions/s, in
  requests of ``--batch`` actions): acks stored per second during the run (from
  ``action_latency_seconds_count``), how long the backlog took to drain afterwards, the
  latency as above, and the CPU of the manager and of the host farm.  A load is sustained
  when the stored rate keeps up with the offered one and the drain is short.

The hosts run ``stty -echo; cat > /dev/null`` (``--command quiet``, default): actions reach
the PTY but draw nothing, so the figures are the controller path's, not the terminal
emulator's; ``--command shell`` runs a shell and writes ``echo`` commands instead.

Run from the repository root: ``.venv/bin/python bench/actions.py [--sizes 1,10,50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rig
from attach import Procs, cpu_seconds, free_port, get_json, pct, wait_for

QUIET = ("/bin/sh", "-c", "stty -echo; exec cat > /dev/null")
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PS1": "$ ", "HOME": "/tmp", "TERM": "xterm"}


# -- the host farm (its own process) ------------------------------------------------------------

def farm(args) -> None:
    from beachmanager import _reactor

    _reactor.install()
    from twisted.internet import defer, reactor

    from beachmanager.devstack.host.host import start_hosts
    from beachmanager.devstack.road.service import start_road

    command = QUIET if args.command == "quiet" else ("/bin/sh",)

    async def run():
        road = await start_road(reactor, port=args.road_port)
        hosts = await start_hosts(road.url, args.farm, command=command, env=ENV)
        tmp = Path(args.hosts_out + ".tmp")
        tmp.write_text("".join(f"{h.session_id}:{h.join_code}\n" for h in hosts))
        tmp.rename(args.hosts_out)

    d = defer.ensureDeferred(run())
    d.addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()


# -- the client (this process) ------------------------------------------------------------------

async def client(args, url: str, ids: list[str]) -> dict:
    import treq
    from twisted.internet import defer, reactor
    from twisted.internet.task import deferLater
    from twisted.web.client import HTTPConnectionPool

    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 256

    async def call(method, path, body=None):
        kw = {"pool": pool}
        if body is not None:
            kw["data"] = json.dumps(body).encode()
            kw["headers"] = {"Content-Type": ["application/json"]}
        r = await treq.request(method, url + path, **kw)
        return r.code, json.loads(await r.content())

    tokens = {}
    for i, hid in enumerate(ids):
        code, body = await call("POST", "/sessions/register",
                                {"session_id": hid, "private_beach_id": f"pb-bench-{i % 4}"})
        assert code == 200, body
        code, body = await call("POST", f"/sessions/{hid}/controller/lease",
                                {"ttl_ms": 3_600_000, "reason": "bench"})
        assert code == 200, body
        tokens[hid] = body["controller_token"]
    seq = iter(range(10**9))

    def action():
        n = next(seq)
        data = "x\n" if args.command == "quiet" else f"echo B-{n}\r"
        return {"id": f"b-{n}", "action_type": "terminal_write", "payload": {"bytes": data}}

    async def submit(hid, actions, sent):
        code, body = await call("POST", f"/sessions/{hid}/actions",
                                {"controller_token": tokens[hid], "actions": actions})
        if code == 200:
            sent.extend((hid, a["id"]) for a in actions)
        return code

    async def stored_latencies(sent, timeout=60.0):
        """Accept to ack stored, and of that the part up to the ack's arrival (ms)."""
        lat, acked, missing = [], [], 0
        deadline = reactor.seconds() + timeout
        for hid, aid in sent:
            while True:
                code, view = await call("GET", f"/sessions/{hid}/actions/{aid}")
                if code == 200 and view.get("status") == "acked" and "stored_latency_ms" in view:
                    lat.append(view["stored_latency_ms"])
                    acked.append(view["acked_at_ms"] - view["enqueued_at_ms"])
                    break
                if reactor.seconds() > deadline:
                    missing += 1
                    break
                await deferLater(reactor, 0.05, lambda: None)
        return lat, acked, missing

    async def acks_stored():
        r = await treq.get(url + "/metrics", pool=pool)
        for line in (await r.text()).splitlines():
            if line.startswith("action_latency_seconds_count"):
                return float(line.split()[-1])
        return 0.0

    async def offered(hosts, per_host_rate, batch):
        """Each host gets *batch* actions every batch/per_host_rate seconds, for --duration."""
        sent, refused = [], [0]
        period = batch / per_host_rate
        started = reactor.seconds()

        async def paced(hid, offset):
            await deferLater(reactor, offset, lambda: None)
            k = 0
            while reactor.seconds() - started < args.duration:
                if await submit(hid, [action() for _ in range(batch)], sent) != 200:
                    refused[0] += batch
                k += 1
                wait = started + offset + k * period - reactor.seconds()
                if wait > 0:
                    await deferLater(reactor, wait, lambda: None)

        n0, cpu0, farm0, t0 = await acks_stored(), cpu_seconds(args.manager_pid), \
            cpu_seconds(args.farm_pid), time.monotonic()
        client0 = time.process_time()
        if args.profile:
            os.kill(args.manager_pid, signal.SIGUSR1)
        await defer.gatherResults([defer.ensureDeferred(paced(h, i * period / len(hosts)))
                                   for i, h in enumerate(hosts)])
        if args.profile:
            os.kill(args.manager_pid, signal.SIGUSR2)
        n1, cpu1, farm1, t1 = await acks_stored(), cpu_seconds(args.manager_pid), \
            cpu_seconds(args.farm_pid), time.monotonic()
        client1 = time.process_time()
        for _ in range(600):
            if await acks_stored() - n0 >= len(sent):
                break
            await deferLater(reactor, 0.1, lambda: None)
        drained = time.monotonic() - t1
        lat, acked, missing = await stored_latencies(sent[::max(1, len(sent) // 2000)])
        return {"hosts": len(hosts), "offered_per_s": round(per_host_rate * len(hosts), 1),
                "batch": batch, "accepted": len(sent), "refused": refused[0], "unacked": missing,
                "stored_per_s_during_run": round((n1 - n0) / (t1 - t0), 1),
                "drain_after_run_s": round(drained, 2),
                "accept_to_stored_ms_p50": round(pct(lat, 50), 2), "p99": round(pct(lat, 99), 2),
                "max": round(max(lat), 2) if lat else None,
                "accept_to_ack_ms_p50": round(pct(acked, 50), 2), "ack_p99": round(pct(acked, 99), 2),
                "manager_cpu_pct_core": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
                "manager_cpu_us_per_stored": round((cpu1 - cpu0) / max(1.0, n1 - n0) * 1e6, 1),
                "farm_cpu_pct_core": round((farm1 - farm0) / (t1 - t0) * 100, 1),
                "client_cpu_pct_core": round((client1 - client0) / (t1 - t0) * 100, 1)}

    results = {"latency": [], "throughput": []}
    for size in args.sizes:  # single-action requests, --rate per host
        row = await offered(ids[:size], args.rate, 1)
        print(json.dumps({"phase": "latency", **row}), flush=True)
        results["latency"].append(row)
    for total in args.throughput:  # every host, batched requests
        row = await offered(ids, total / len(ids), args.batch)
        print(json.dumps({"phase": "throughput", **row}), flush=True)
        results["throughput"].append(row)
    await pool.closeCachedConnections()
    return results


def profiled_manager(path: str, argv: list[str]) -> None:
    """``twist beach-manager ARGV`` under cProfile, written to *path* when the reactor stops.

    The profiler runs only between SIGUSR1 and SIGUSR2 (the client sends them around each
    load phase), so start-up, attaching and the read-back of latencies stay out of it.
    Garbage collections in those phases are counted and timed into ``<path>.gc.txt``."""
    import cProfile
    import gc
    import signal
    import time as _time

    from twisted.application.twist._twist import Twist

    prof = cProfile.Profile()
    start = Twist.startService
    gc_time = {"on": False, "t0": 0.0, 0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}

    def gc_timer(phase, info):  # collections during the profiled phases: count and seconds
        if not gc_time["on"]:
            return
        if phase == "start":
            gc_time["t0"] = _time.perf_counter()
        else:
            gc_time[info["generation"]][0] += 1
            gc_time[info["generation"]][1] += _time.perf_counter() - gc_time["t0"]

    def switch(on):
        gc_time["on"] = on
        (prof.enable if on else prof.disable)()

    def dump():
        prof.disable()
        prof.dump_stats(path)
        with open(path + ".gc.txt", "w") as out:
            for gen in (0, 1, 2):
                out.write(f"gen{gen}: {gc_time[gen][0]} collections, {gc_time[gen][1]:.3f}s\n")

    def profiled_start(reactor, service):
        gc.callbacks.append(gc_timer)
        signal.signal(signal.SIGUSR1, lambda *_: switch(True))
        signal.signal(signal.SIGUSR2, lambda *_: switch(False))
        reactor.addSystemEventTrigger("before", "shutdown", dump)
        return start(reactor, service)

    Twist.startService = staticmethod(profiled_start)
    Twist.main(["twist", "--log-format=text", "--reactor=beach-asyncio", *argv])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--profiled-manager":
        profiled_manager(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--rate", type=float, default=10.0, help="actions/s per host in the latency phase")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=10, help="actions per request (throughput phase)")
    ap.add_argument("--throughput", default="500,1000,2000,3000",
                    help="total offered actions/s over every host (throughput phase)")
    ap.add_argument("--command", choices=("quiet", "shell"), default="quiet")
    ap.add_argument("--redis-url")
    ap.add_argument("--database-url")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--access-log", choices=("all", "errors", "off"), default="all",
                    help="the manager's --http-access-log (default: the manager's default)")
    ap.add_argument("--profile", help="write a cProfile of the manager during the load phases to this file")
    ap.add_argument("--logs", help="copy the processes' logs into this folder")
    # internal: the farm process
    ap.add_argument("--quick", action="store_true",
                    help="under two minutes: 1 and 10 hosts, 4 s phases, 1,000 and 2,000 offered")
    ap.add_argument("--admission-target", type=float, default=None,
                    help="BEACH_ACTION_ADMISSION_TARGET for the manager (0: no load shedding)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin the manager and its load to separate cores")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the bare aiortc echo baseline (bench/rig.py)")
    ap.add_argument("--farm", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--hosts-out", help=argparse.SUPPRESS)
    ap.add_argument("--road-port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.farm:
        farm(args)
        return
    if args.quick:
        args.sizes, args.duration, args.throughput = "1,10", 4.0, "1000,2000"
    manager_cpu, load_cpu = (None, None) if args.no_pin else (rig.MANAGER_CPU, rig.LOAD_CPU)
    rig.pin_self(load_cpu)  # the client, with the farm
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.throughput = [float(x) for x in args.throughput.split(",") if x]
    n = max(args.sizes or [50])
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as tmp:
        workdir = Path(tmp)
        procs = Procs(workdir)
        try:
            road_port = free_port()
            hosts_file = workdir / "hosts.txt"
            farm_proc = procs.start("farm", rig.pinned(
                [sys.executable, str(Path(__file__).resolve()), "--farm", str(n),
                 "--hosts-out", str(hosts_file), "--road-port", str(road_port),
                 "--command", args.command], load_cpu))
            wait_for(f"{n} hosts", hosts_file.exists, 60 + 2 * n, 0.2)
            ids = [line.split(":", 1)[0] for line in hosts_file.read_text().split()]
            port = free_port()
            env = {"AUTH_BYPASS": "1", "BEACH_ENV": "development",
                   "BEACH_ACTION_INFLIGHT_WINDOW": str(args.window),
                   "BEACH_MANAGER_HTTP_ACCESS_LOG": args.access_log}
            if args.admission_target is not None:
                env["BEACH_ACTION_ADMISSION_TARGET"] = str(args.admission_target)
            if args.redis_url:
                env["REDIS_URL"] = args.redis_url
            if args.database_url:
                env["DATABASE_URL"] = args.database_url
            def twist(name, argv, env=None):  # the manager, on its own core
                return procs.start(name, rig.pinned(
                    [sys.executable, "-m", "twisted", "--log-format=text",
                     "--reactor=beach-asyncio", *argv], manager_cpu), env)

            if args.profile:  # the manager under cProfile (written when it stops)
                def twist(name, argv, env=None):
                    return procs.start(name, rig.pinned(
                        [sys.executable, str(Path(__file__).resolve()), "--profiled-manager",
                         args.profile, *argv], manager_cpu), env)
            manager = twist("manager", [
                "beach-manager", f"--http-endpoint=tcp:{port}:interface=127.0.0.1",
                f"--road-url=http://127.0.0.1:{road_port}", "--webrtc-disable-stun=1",
                "--capacity=100000", "--instance-id=bench-actions", f"--hosts-file={hosts_file}"], env)
            url = f"http://127.0.0.1:{port}"

            def all_ready():
                listing = get_json(url + "/debug/transports")
                return listing["counts"].get("ready", 0) == n

            wait_for(f"{n} transports ready", all_ready, 120 + 2 * n, 0.2)
            print(json.dumps({"stores": "redis+postgres" if args.redis_url else "memory",
                              "hosts_ready": n, "command": args.command, "window": args.window,
                              "access_log": args.access_log,
                              "rig": {**rig.describe(), "pinned": manager_cpu is not None}}),
                  flush=True)
            args.manager_pid, args.farm_pid = manager.pid, farm_proc.pid
            results = run_client(args, url, ids)
        finally:
            procs.stop_all()
            if args.logs:
                import shutil

                shutil.copytree(workdir, args.logs, dirs_exist_ok=True)
    if not args.no_floor and args.throughput:
        summary(results, rig.echo_floor(rate=args.throughput[0], size=FLOOR_SIZE, seconds=4))


#: Bytes of a terminal_write action as the bus carries it (envelope, frame, encryption).
FLOOR_SIZE = 256


def summary(results: dict, floor: dict) -> None:
    """Each throughput phase's manager CPU per stored action, against the echo floor."""
    print(json.dumps({"phase": "floor", **floor}), flush=True)
    per = floor["us_per_message"]
    print(f"{'offered/s':>10} {'stored/s':>9} {'refused':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'mgr us/action':>14} {'x floor':>8} {'farm %':>7} {'client %':>9}")
    for row in results["throughput"]:
        us = row["manager_cpu_us_per_stored"]
        print(f"{row['offered_per_s']:>10} {row['stored_per_s_during_run']:>9} "
              f"{row['refused']:>8} {row['accept_to_stored_ms_p50']:>8} {row['p99']:>8} "
              f"{us:>14} {us / per:>8.2f} {row['farm_cpu_pct_core']:>7} "
              f"{row['client_cpu_pct_core']:>9}", flush=True)
    print(f"floor: a bare aiortc echo, {floor['size_bytes']} B at {floor['rate_per_s']:.0f}/s: "
          f"{per} us of the answerer's CPU per message", flush=True)


def run_client(args, url: str, ids: list[str]) -> dict:
    from beachmanager import _reactor

    _reactor.install()
    from twisted.internet import defer, reactor

    out = {}

    def done(result):
        out["result"] = result
        reactor.stop()

    def failed(f):
        f.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(client(args, url, ids)).addCallbacks(done, failed))
    reactor.run()
    if "result" not in out:
        raise SystemExit(1)
    return out["result"]


if __name__ == "__main__":
    main()
