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
  requests per second for ``--duration`` seconds, paced; afterwards the acked view of every
  action (``GET /sessions/:id/actions/:id``) gives ``stored_latency_ms`` (REST accept to
  ack stored, measured by the manager's clock): p50, p99, max;
* **throughput**: every host at once, closed loop (``--batch`` actions per request,
  ``--concurrency`` requests in flight per host) for ``--duration`` seconds: acks stored per
  second (from ``action_latency_seconds_count`` on ``/metrics``) and the manager's CPU.

The hosts run ``stty -echo; cat > /dev/null`` (``--command quiet``, default): actions reach
the PTY but draw nothing, so the figures are the controller path's, not the terminal
emulator's; ``--command shell`` runs a shell and writes ``echo`` commands instead.

Run from the repository root: ``.venv/bin/python bench/actions.py [--sizes 1,10,50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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

    results = {"latency": []}
    for size in args.sizes:
        hosts = ids[:size]
        sent: list[tuple[str, str]] = []
        refused = 0
        period = 1.0 / args.rate
        started = reactor.seconds()

        async def paced(hid, offset, sent=sent, started=started, period=period):
            nonlocal refused
            await deferLater(reactor, offset, lambda: None)
            k = 0
            while reactor.seconds() - started < args.duration:
                if await submit(hid, [action()], sent) != 200:
                    refused += 1
                k += 1
                wait = started + offset + k * period - reactor.seconds()
                if wait > 0:
                    await deferLater(reactor, wait, lambda: None)

        await defer.gatherResults([defer.ensureDeferred(paced(h, i * period / size))
                                   for i, h in enumerate(hosts)])
        lat, missing = [], 0
        deadline = reactor.seconds() + 30
        for hid, aid in sent:
            while True:
                code, view = await call("GET", f"/sessions/{hid}/actions/{aid}")
                if code == 200 and view.get("status") == "acked" and "stored_latency_ms" in view:
                    lat.append(view["stored_latency_ms"])
                    break
                if reactor.seconds() > deadline:
                    missing += 1
                    break
                await deferLater(reactor, 0.05, lambda: None)
        row = {"hosts": size, "rate_per_host": args.rate, "actions": len(sent), "refused": refused,
               "unacked": missing, "accept_to_stored_ms_p50": round(pct(lat, 50), 2),
               "p99": round(pct(lat, 99), 2), "max": round(max(lat), 2) if lat else None}
        print(json.dumps(row), flush=True)
        results["latency"].append(row)

    # throughput: every host, closed loop
    async def acks_stored():
        r = await treq.get(url + "/metrics", pool=pool)
        for line in (await r.text()).splitlines():
            if line.startswith("action_latency_seconds_count"):
                return float(line.split()[-1])
        return 0.0

    sent2: list[tuple[str, str]] = []
    stop_at = reactor.seconds() + args.duration

    async def loop(hid):
        while reactor.seconds() < stop_at:
            code = await submit(hid, [action() for _ in range(args.batch)], sent2)
            if code == 429:
                await deferLater(reactor, 0.05, lambda: None)

    n0, cpu0, t0 = await acks_stored(), cpu_seconds(args.manager_pid), time.monotonic()
    farm0 = cpu_seconds(args.farm_pid)
    await defer.gatherResults([defer.ensureDeferred(loop(h)) for h in ids
                               for _ in range(args.concurrency)])
    n1, cpu1, t1 = await acks_stored(), cpu_seconds(args.manager_pid), time.monotonic()
    farm1 = cpu_seconds(args.farm_pid)
    # let the tail drain, then count everything that was accepted
    for _ in range(300):
        if await acks_stored() - n0 >= len(sent2):
            break
        await deferLater(reactor, 0.1, lambda: None)
    n2, t2 = await acks_stored(), time.monotonic()
    row = {"hosts": len(ids), "batch": args.batch, "concurrency_per_host": args.concurrency,
           "accepted": len(sent2), "stored_during_run": int(n1 - n0),
           "acks_stored_per_s": round((n1 - n0) / (t1 - t0), 1),
           "accepted_per_s": round(len(sent2) / (t1 - t0), 1),
           "all_stored_after_s": round(t2 - t0, 2), "stored_total": int(n2 - n0),
           "manager_cpu_pct_core": round((cpu1 - cpu0) / (t1 - t0) * 100, 1),
           "farm_cpu_pct_core": round((farm1 - farm0) / (t1 - t0) * 100, 1)}
    print(json.dumps(row), flush=True)
    results["throughput"] = row
    await pool.closeCachedConnections()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--rate", type=float, default=10.0, help="actions/s per host in the latency phase")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--command", choices=("quiet", "shell"), default="quiet")
    ap.add_argument("--redis-url")
    ap.add_argument("--database-url")
    ap.add_argument("--window", type=int, default=32)
    # internal: the farm process
    ap.add_argument("--farm", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--hosts-out", help=argparse.SUPPRESS)
    ap.add_argument("--road-port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.farm:
        farm(args)
        return
    args.sizes = [int(x) for x in args.sizes.split(",")]
    n = max(args.sizes)
    with tempfile.TemporaryDirectory(prefix="bench-actions-") as tmp:
        workdir = Path(tmp)
        procs = Procs(workdir)
        try:
            road_port = free_port()
            hosts_file = workdir / "hosts.txt"
            farm_proc = procs.start("farm", [sys.executable, str(Path(__file__).resolve()), "--farm", str(n),
                                 "--hosts-out", str(hosts_file), "--road-port", str(road_port),
                                 "--command", args.command])
            wait_for(f"{n} hosts", hosts_file.exists, 60 + 2 * n, 0.2)
            ids = [line.split(":", 1)[0] for line in hosts_file.read_text().split()]
            port = free_port()
            env = {"AUTH_BYPASS": "1", "BEACH_ENV": "development",
                   "BEACH_ACTION_INFLIGHT_WINDOW": str(args.window)}
            if args.redis_url:
                env["REDIS_URL"] = args.redis_url
            if args.database_url:
                env["DATABASE_URL"] = args.database_url
            manager = procs.twist("manager", [
                "beach-manager", f"--http-endpoint=tcp:{port}:interface=127.0.0.1",
                f"--road-url=http://127.0.0.1:{road_port}", "--webrtc-disable-stun=1",
                "--capacity=100000", "--instance-id=bench-actions", f"--hosts-file={hosts_file}"], env)
            url = f"http://127.0.0.1:{port}"

            def all_ready():
                listing = get_json(url + "/debug/transports")
                return listing["counts"].get("ready", 0) == n

            wait_for(f"{n} transports ready", all_ready, 120 + 2 * n, 0.2)
            print(json.dumps({"stores": "redis+postgres" if args.redis_url else "memory",
                              "hosts_ready": n, "command": args.command, "window": args.window}),
                  flush=True)
            args.manager_pid, args.farm_pid = manager.pid, farm_proc.pid
            run_client(args, url, ids)
        finally:
            procs.stop_all()


def run_client(args, url: str, ids: list[str]) -> None:
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


if __name__ == "__main__":
    main()
