#!/usr/bin/env python3
"""How fast one manager attaches many hosts at once, and what holding them costs.

For each size N (default 1, 10, 50, 200):

1. a devstack Road process, and one "host farm" process running N devstack hosts (each a
   real ``/bin/sh`` on a PTY, registered with Road, session keys derived in advance);
2. a manager process started with ``--hosts-file`` naming all N: they attach at once;
3. per host, the RTC-ready time (the manager's attach start to ``__offer_ready__``), from
   ``/debug/transports/<id>``; p50, p95 and max, and how many needed a second attempt;
4. at rest (``--settle`` s after the last host is ready), over ``--rest`` seconds: the
   manager's CPU (% of one core, from /proc), its RSS, and the host-to-manager heartbeat
   latency (one way: host and manager share this machine's clock; the wire has no
   heartbeat echo, so this is the latency half of a heartbeat round trip).

RSS per host is ``(RSS - RSS of an idle manager) / N``.  Run from the repository root:
``.venv/bin/python bench/attach.py [--sizes 1,10,50,200]``.  Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rig

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def wait_for(what: str, check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError):
            pass
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def cpu_seconds(pid) -> float:
    """utime + stime of *pid* (or the sum over a tuple of pids)."""
    if isinstance(pid, tuple):
        return sum(cpu_seconds(p) for p in pid)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Procs:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                                    env={**self.env, **(env or {})}, start_new_session=True)
        self.procs.append(proc)
        return proc

    def twist(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        return self.start(name, [sys.executable, "-m", "twisted", "--log-format=text",
                                 "--reactor=beach-asyncio", *args], env)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()


def start_road(procs: Procs) -> str:
    port = free_port()
    procs.twist("road", ["beach-road-dev", "--port", str(port), "--max-sessions", "100000"])
    url = f"http://127.0.0.1:{port}"
    wait_for("Road", lambda: get_json(url + "/health"), 30)
    return url


def start_manager(procs: Procs, road: str, hosts_file: Path | None, name: str,
                  cpu: int | None = None):
    port = free_port()
    args = ["beach-manager", f"--http-endpoint=tcp:{port}:interface=127.0.0.1", f"--road-url={road}",
            "--webrtc-disable-stun=1", "--capacity=100000", "--instance-id=bench-manager"]
    if hosts_file is not None:
        args.append(f"--hosts-file={hosts_file}")
    proc = procs.start(name, rig.pinned([sys.executable, "-m", "twisted", "--log-format=text",
                                         "--reactor=beach-asyncio", *args], cpu),
                       {"AUTH_BYPASS": "1", "BEACH_ENV": "development"})
    url = f"http://127.0.0.1:{port}"
    return proc, url


def idle_manager_rss(workdir: Path) -> float:
    procs = Procs(workdir)
    try:
        road = start_road(procs)
        proc, url = start_manager(procs, road, None, "manager-idle")
        wait_for("the idle manager", lambda: urllib.request.urlopen(url + "/readyz").status == 200, 60)
        time.sleep(3)
        return rss_mib(proc.pid)
    finally:
        procs.stop_all()


class FarmGroup:
    """Several farm processes read as one: ``pid`` sums their CPU (see :func:`cpu_seconds`)."""

    def __init__(self, procs: list):
        self.procs = procs
        self.pid = tuple(p.pid for p in procs)


def run_size(n: int, args, workdir: Path, idle_rss: float) -> dict:
    procs = Procs(workdir)
    try:
        road = start_road(procs)
        hosts_file = workdir / f"hosts-{n}.txt"
        hosts_file.unlink(missing_ok=True)
        # several farm processes for many hosts (each is one reactor), on the load core
        farms_n = max(1, min(args.farms or -(-n // 100), n))
        parts, farms = [], []
        for k in range(farms_n):
            count = n // farms_n + (1 if k < n % farms_n else 0)
            part = workdir / f"hosts-{n}-{k}.txt"
            part.unlink(missing_ok=True)
            parts.append(part)
            farms.append(procs.start(f"farm-{n}-{k}", rig.pinned(
                [sys.executable, str(Path(__file__).resolve()), "--farm", str(count),
                 "--road", road, "--hosts-out", str(part),
                 "--heartbeat-interval", str(args.heartbeat_interval),
                 "--host-poll-interval", str(args.host_poll_interval)], args.load_cpu)))
        wait_for(f"{n} hosts in {farms_n} farm(s)", lambda: all(p.exists() for p in parts),
                 60 + 2 * n, 0.2)
        hosts_file.write_text("".join(p.read_text() for p in parts))
        ids = [line.split(":", 1)[0] for line in hosts_file.read_text().split()]
        farm = FarmGroup(farms)
        started = time.monotonic()
        farm_cpu_start = cpu_seconds(farm.pid)
        road_proc = procs.procs[0]
        road_cpu_start = cpu_seconds(road_proc.pid)
        proc, url = start_manager(procs, road, hosts_file, f"manager-{n}", args.manager_cpu)
        wait_for("the manager", lambda: urllib.request.urlopen(url + "/healthz").status == 200, 60)
        manager_cpu_start = cpu_seconds(proc.pid)

        def all_ready():
            listing = get_json(url + "/debug/transports")
            return listing if listing["counts"].get("ready", 0) == n else None

        wait_for(f"{n} transports ready", all_ready, args.timeout, 0.2)
        wall = time.monotonic() - started
        attach_cpu = {"manager": cpu_seconds(proc.pid) - manager_cpu_start,
                      "hosts": cpu_seconds(farm.pid) - farm_cpu_start,
                      "road": cpu_seconds(road_proc.pid) - road_cpu_start}
        ready_times, retried = [], 0
        phase_ms: dict[str, list[float]] = {}
        for host_id in ids:
            st = get_json(f"{url}/debug/transports/{host_id}")
            first = st["timeline"][0]["at"]
            ready = next(e["at"] for e in reversed(st["timeline"])
                         if e["phase"] == "ready" and e["status"] == "ok")
            ready_times.append(ready - first)
            retried += st["attempts"] > 1
            last_attempt = [e for e in st["timeline"] if e["attempt"] == st["attempts"]]
            begun = {}
            for e in last_attempt:
                if e["status"] == "pending":
                    begun[e["phase"]] = e["at"]
                elif e["status"] == "ok" and e["phase"] in begun:
                    phase_ms.setdefault(e["phase"], []).append((e["at"] - begun[e["phase"]]) * 1000)
        time.sleep(args.settle)
        reconnects0 = sum(t["reconnects"] for t in get_json(url + "/debug/transports")["transports"])
        cpu0, farm0, t0 = cpu_seconds(proc.pid), cpu_seconds(farm.pid), time.monotonic()
        time.sleep(args.rest)
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(proc.pid) - cpu0) / elapsed
        farm_cpu = (cpu_seconds(farm.pid) - farm0) / elapsed
        rss = rss_mib(proc.pid)
        listing = get_json(url + "/debug/transports")
        latencies = [t["heartbeat"]["latency_ms"] for t in listing["transports"]
                     if t["heartbeat"]["latency_ms"] is not None]
        still_ready = listing["counts"].get("ready", 0)
        reconnects = sum(t["reconnects"] for t in listing["transports"]) - reconnects0
        return {
            "hosts": n, "all_ready_wall_s": round(wall, 3),
            "rtc_ready_p50_s": round(pct(ready_times, 50), 3),
            "rtc_ready_p95_s": round(pct(ready_times, 95), 3),
            "rtc_ready_max_s": round(max(ready_times), 3), "retried": retried,
            "rest_cpu_pct_core": round(cpu * 100, 2),
            "rest_cpu_pct_core_per_host": round(cpu * 100 / n, 3),
            "rss_mib": round(rss, 1),
            "rss_kib_per_host": round((rss - idle_rss) * 1024 / n, 1),
            "heartbeat_latency_ms_p50": round(pct(latencies, 50), 2) if latencies else None,
            "heartbeat_latency_ms_p95": round(pct(latencies, 95), 2) if latencies else None,
            "heartbeat_samples": len(latencies), "still_ready": still_ready,
            "phase_ms_p50": {k: round(pct(v, 50), 1) for k, v in phase_ms.items()},
            "attach_cpu_ms_per_host": {k: round(v * 1000 / n, 1) for k, v in attach_cpu.items()},
            "reconnects_at_rest": reconnects, "farm_cpu_pct_core": round(farm_cpu * 100, 1),
        }
    finally:
        procs.stop_all()


# -- the host farm (a child process) ------------------------------------------------------------

def farm(n: int, road: str, out: Path, heartbeat_interval: float, poll_interval: float) -> None:
    from beachmanager import _reactor

    _reactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from beachmanager.devstack.host.host import start_hosts

    hosts = []

    async def main():
        hosts.extend(await start_hosts(road, n, reactor, command=("/bin/sh",),
                                       env={"PS1": "$ ", "TERM": "xterm", "PATH": "/usr/bin:/bin"},
                                       heartbeat_interval=heartbeat_interval,
                                       poll_interval=poll_interval))
        for h in hosts:  # the farm's own Argon2id work is done before the manager starts
            await h.host.session_key()
        tmp = out.with_suffix(".tmp")
        tmp.write_text("".join(f"{h.session_id}:{h.join_code}\n" for h in hosts))
        tmp.rename(out)

    def stop(*_):
        async def shutdown():
            for h in hosts:
                await h.stop()
            reactor.stop()
        reactor.callFromThread(lambda: ensureDeferred(shutdown()))

    signal.signal(signal.SIGTERM, stop)
    d = ensureDeferred(main())
    d.addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run(installSignalHandlers=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1,10,50,200")
    p.add_argument("--rest", type=float, default=30.0, help="seconds of CPU measurement at rest")
    p.add_argument("--settle", type=float, default=5.0, help="seconds after ready before measuring")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for all hosts to be ready")
    p.add_argument("--heartbeat-interval", type=float, default=15.0, help="the hosts', in seconds")
    p.add_argument("--host-poll-interval", type=float, default=0.25,
                   help="how often the hosts poll Road for our answer (upstream: 0.25 s)")
    p.add_argument("--farms", type=int, default=0,
                   help="farm processes (0: one per 100 hosts)")
    p.add_argument("--quick", action="store_true", help="1, 10 and 50 hosts, 10 s at rest")
    p.add_argument("--pin", action="store_true",
                   help="pin the manager to one core and the farms to the other (off: the "
                        "manager's Argon2id pool may use both cores while hosts attach)")
    p.add_argument("--farm", type=int, help=argparse.SUPPRESS)
    p.add_argument("--road", help=argparse.SUPPRESS)
    p.add_argument("--hosts-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.farm:
        farm(args.farm, args.road, Path(args.hosts_out), args.heartbeat_interval,
             args.host_poll_interval)
        return 0

    if args.quick:
        args.sizes, args.rest, args.settle = "1,10,50", 10.0, 3.0
    args.manager_cpu, args.load_cpu = (rig.MANAGER_CPU, rig.LOAD_CPU) if args.pin else (None,
                                                                                      None)
    rig.pin_self(args.load_cpu)
    workdir = Path(tempfile.mkdtemp(prefix="beach-bench-attach-"))
    print(f"# logs in {workdir}; {os.cpu_count()} CPUs", flush=True)
    idle = idle_manager_rss(workdir)
    print(f"# idle manager RSS {idle:.1f} MiB", flush=True)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        row = run_size(n, args, workdir, idle)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(f"{'hosts':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'retried':>7} {'all s':>7} "
          f"{'CPU %core':>9} {'%/host':>7} {'RSS MiB':>8} {'KiB/host':>9} {'hb p50 ms':>9} {'hb p95 ms':>9}")
    for r in rows:
        print(f"{r['hosts']:>5} {r['rtc_ready_p50_s']:>7.3f} {r['rtc_ready_p95_s']:>7.3f} "
              f"{r['rtc_ready_max_s']:>7.3f} {r['retried']:>7} {r['all_ready_wall_s']:>7.2f} "
              f"{r['rest_cpu_pct_core']:>9.2f} {r['rest_cpu_pct_core_per_host']:>7.3f} "
              f"{r['rss_mib']:>8.1f} {r['rss_kib_per_host']:>9.1f} "
              f"{r['heartbeat_latency_ms_p50'] or float('nan'):>9.2f} "
              f"{r['heartbeat_latency_ms_p95'] or float('nan'):>9.2f}")
    print(f"\n(hb = host-to-manager heartbeat latency, one way on one clock; idle manager RSS "
          f"{idle:.1f} MiB; hosts poll Road for the answer every {args.host_poll_interval}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
