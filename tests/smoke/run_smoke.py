#!/usr/bin/env python3
"""The 60-second connectivity smoke (M3b): Road, a host with a real shell, and the manager.

Starts three separate processes on alternate ports -- the devstack Road (14132), a
devstack host whose shell prints a timestamped marker every two seconds, and the
manager (18081) told to manage that host -- then:

1. waits for the manager's ``/healthz`` and ``/readyz``;
2. asserts the host's transport is ready and its RTC-ready time is within the SLO (5 s);
3. asserts the host's terminal changes show up in the manager's mirror within a minute
   (and reports how long they took: expect well under a second);
4. keeps watching for ``--duration`` seconds (60): the transport stays up on the same
   transport id without a reconnect, heartbeats keep arriving, markers keep flowing;
5. tears everything down (SIGTERM, the manager first) and checks the manager exits cleanly.

``make smoke`` runs it.  ``--external`` checks an already running stack instead (e.g. the one
from ``tests/smoke/docker-compose.smoke.yml``) given ``--host-id``.  Exit status 0 means
pass; on failure the tails of the three logs are printed.  Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"SMOKE-(\d+)-(\d{13})")
#: The host's program: a real shell that changes its terminal every two seconds.
HOST_SHELL = "sh -c 'n=0; while :; do n=$((n+1)); echo \"SMOKE-$n-$(date +%s%3N)\"; sleep 2; done'"


class SmokeFailure(Exception):
    pass


def log(msg: str) -> None:
    print(f"[smoke {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def get_json(url: str, timeout: float = 3.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read().decode())


def get_text(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_for(what: str, check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, urllib.error.URLError) as e:
            last_error = e
        time.sleep(step)
    raise SmokeFailure(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted listens
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return None


class Stack:
    """The three processes, each logging to its own file."""

    def __init__(self, args, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.pop("BEACH_MANAGER_HOSTS", None)
        self.env = env

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        path = self.workdir / f"{name}.log"
        self.logs[name] = path
        cmd = [sys.executable, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio", *argv]
        with open(path, "wb") as out:  # the child keeps its own copy of the descriptor
            self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                cwd=self.workdir, start_new_session=True,
                                                env={**self.env, **(extra_env or {})})
        log(f"started {name} (pid {self.procs[name].pid}), log {path}")

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self, name: str, timeout: float = 15.0) -> int | None:
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {timeout:.0f}s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def tails(self, lines: int = 40) -> None:
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            print(f"----- last {lines} lines of {name} ({path}) -----")
            for line in text[-lines:]:
                print(line[:300])


def start_stack(args, stack: Stack) -> tuple[str, str]:
    for port in (args.road_port, args.manager_port):
        if not port_free(port):
            raise SmokeFailure(f"port {port} is in use: stop what holds it or set "
                               f"SMOKE_ROAD_PORT / SMOKE_MANAGER_PORT")
    road = f"http://127.0.0.1:{args.road_port}"
    stack.spawn("road", ["beach-road-dev", "--port", str(args.road_port)])
    wait_for("Road's /health", lambda: get_json(road + "/health")[0] == 200, 30)
    info = stack.workdir / "host.json"
    stack.spawn("host", ["beach-host-dev", "--road", road, "--command", HOST_SHELL,
                         "--info-file", str(info)])
    wait_for("the host's bootstrap line", lambda: info.exists() and info.read_text().strip(), 30)
    boot = json.loads(info.read_text())
    host_id, code = boot["session_id"], boot["join_code"]
    log(f"host {host_id} registered with Road")
    stack.spawn("manager", ["beach-manager", f"--http-endpoint=tcp:{args.manager_port}:interface=127.0.0.1",
                            f"--road-url={road}", f"--host={host_id}:{code}",
                            "--webrtc-disable-stun=1", "--instance-id=smoke-manager"],
                extra_env={"AUTH_BYPASS": "1", "BEACH_ENV": "development"})
    return host_id, f"http://127.0.0.1:{args.manager_port}"


def check(args, manager: str, host_id: str, stack: Stack | None, sole_host: bool = True,
          on_ready=None) -> dict:
    """The smoke's checks against *manager* for *host_id*.  *sole_host*: the manager holds no
    other transport (its RTC-ready count must be exactly one); *on_ready* is called with the
    transport's state once it is ready (extra checks of a caller)."""
    results: dict = {"host_session_id": host_id}
    started = time.monotonic()
    wait_for("the manager's /healthz", lambda: get_text(manager + "/healthz")[0] == 200, 60)
    wait_for("the manager's /readyz", lambda: get_text(manager + "/readyz")[0] == 200, 60)
    log("manager healthy and ready")

    transport_url = f"{manager}/debug/transports/{host_id}"

    def ready():
        status, body = get_json(transport_url)
        return body if status == 200 and body.get("status") == "ready" else None

    state = wait_for("the host's transport to be ready", ready, args.rtc_slo + 30)
    ready_event = next(e for e in state["timeline"] if e["phase"] == "ready" and e["status"] == "ok")
    rtc_ready = ready_event["rtc_ready_seconds"]
    results["rtc_ready_seconds"] = rtc_ready
    results["secure"] = state["secure"]
    log(f"transport {state['transport_id']} ready in {rtc_ready:.3f}s (SLO {args.rtc_slo:.1f}s), "
        f"secure={state['secure']}, attempts={state['attempts']}")
    if rtc_ready > args.rtc_slo:
        raise SmokeFailure(f"RTC ready took {rtc_ready:.3f}s, over the {args.rtc_slo:.1f}s SLO")
    transport_id = state["transport_id"]
    if on_ready is not None:
        on_ready(state, results)
    # Tries before the first ready (a host not yet in its Road room, say) are not reconnects.
    reconnects_at_ready = state["reconnects"]
    results["attempts_before_ready"] = state["attempts"]
    metric_at_ready = metric(get_text(manager + "/metrics")[1], "transport_reconnect_total") or 0.0
    others_before = {t["host_session_id"]: t["transport_id"]
                     for t in get_json(f"{manager}/debug/transports")[1]["transports"]}

    cache_url = f"{manager}/debug/hosts/{host_id}/cache"
    seen: dict[int, float] = {}  # marker number -> latency ms when first seen
    first_marker_at = None
    heartbeats = []
    watch_start = time.monotonic()
    next_state_check = 0.0
    while True:
        now = time.monotonic()
        if now - watch_start >= args.duration:
            break
        if stack is not None:
            for name in ("road", "host", "manager"):
                if not stack.alive(name):
                    raise SmokeFailure(f"the {name} process exited early")
        status, cache = get_json(cache_url)
        wall_ms = time.time() * 1000
        for row in cache["rows"]:
            for m in MARKER.finditer(row):
                n = int(m.group(1))
                if n not in seen:
                    seen[n] = max(0.0, wall_ms - int(m.group(2)))
                    if first_marker_at is None:
                        first_marker_at = now - watch_start
        if now >= next_state_check:
            next_state_check = now + 1.0
            _, st = get_json(transport_url)
            if st["status"] != "ready" or st["transport_id"] != transport_id \
                    or st["reconnects"] != reconnects_at_ready:
                raise SmokeFailure(f"the transport did not stay up: status {st['status']}, transport "
                                   f"{st['transport_id']} (was {transport_id}), reconnects "
                                   f"{st['reconnects']}, last error {st['last_error']}")
            heartbeats.append(st["heartbeat"])
        if first_marker_at is None and now - watch_start > 60:
            raise SmokeFailure("no terminal change reached the manager's mirror within 60 s")
        time.sleep(args.poll)

    if not seen:
        raise SmokeFailure("no terminal change reached the manager's mirror")
    # Markers already on screen when the watch began are old; judge the ones printed during it.
    fresh = [lat for n, lat in sorted(seen.items())[1:]] or list(seen.values())
    results["markers_seen"] = len(seen)
    results["mirror_latency_ms"] = {"median": round(statistics.median(fresh), 1),
                                    "max": round(max(fresh), 1)}
    log(f"{len(seen)} terminal changes mirrored; host print to mirror: median "
        f"{results['mirror_latency_ms']['median']} ms, max {results['mirror_latency_ms']['max']} ms "
        f"(includes the {args.poll * 1000:.0f} ms poll)")
    if max(fresh) > 60_000:
        raise SmokeFailure(f"a terminal change took {max(fresh) / 1000:.1f}s to reach the mirror")
    expected = max(1, int(args.duration / 2) - 3)
    if len(seen) < expected:
        raise SmokeFailure(f"only {len(seen)} terminal changes mirrored in {args.duration:.0f}s "
                           f"(expected at least {expected})")

    hb = heartbeats[-1]
    results["heartbeats"] = hb["count"]
    results["heartbeat_latency_ms"] = hb["latency_ms"]
    needed = max(2, int(args.duration // args.heartbeat_interval))
    if hb["count"] < needed:
        raise SmokeFailure(f"only {hb['count']} heartbeats in {args.duration:.0f}s (expected {needed}+)")
    if hb["gaps"]:
        raise SmokeFailure(f"{hb['gaps']} heartbeats missing in the sequence")
    age = time.time() - hb["received_at"]
    if age > args.heartbeat_interval * 2:
        raise SmokeFailure(f"the last heartbeat is {age:.0f}s old")
    log(f"{hb['count']} heartbeats, none missing, the last {age:.1f}s ago "
        f"(host to manager {hb['latency_ms']:.1f} ms)")

    _, metrics = get_text(manager + "/metrics")
    results["reconnects"] = (metric(metrics, "transport_reconnect_total") or 0.0) - metric_at_ready
    results["rtc_ready_count"] = metric(metrics, "transport_rtc_ready_seconds_count")
    if results["reconnects"] != 0.0 or (sole_host and results["rtc_ready_count"] != 1.0):
        raise SmokeFailure(f"metrics show reconnects: {results['reconnects']} reconnects, "
                           f"{results['rtc_ready_count']} RTC-ready events")
    others_after = {t["host_session_id"]: t["transport_id"]
                    for t in get_json(f"{manager}/debug/transports")[1]["transports"]}
    changed = sorted(h for h, tid in others_before.items() if others_after.get(h) != tid)
    if changed:
        raise SmokeFailure(f"transports of {', '.join(changed)} were replaced during the watch")
    results["transports_held"] = len(others_after)
    results["watched_seconds"] = round(time.monotonic() - watch_start, 1)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=float(os.environ.get("SMOKE_DURATION", 60)))
    p.add_argument("--rtc-slo", type=float, default=float(os.environ.get("SMOKE_RTC_SLO", 5.0)))
    p.add_argument("--road-port", type=int, default=int(os.environ.get("SMOKE_ROAD_PORT", 14132)))
    p.add_argument("--manager-port", type=int, default=int(os.environ.get("SMOKE_MANAGER_PORT", 18081)))
    p.add_argument("--heartbeat-interval", type=float, default=15.0, help="the host's, in seconds")
    p.add_argument("--poll", type=float, default=0.1, help="mirror poll interval, in seconds")
    p.add_argument("--external", action="store_true", help="check a running stack (no processes)")
    p.add_argument("--manager-url", default=None, help="with --external")
    p.add_argument("--host-id", default=os.environ.get("SMOKE_SESSION_ID"), help="with --external")
    args = p.parse_args(argv)

    if args.external:
        if not args.host_id:
            p.error("--external needs --host-id (or SMOKE_SESSION_ID)")
        manager = args.manager_url or f"http://127.0.0.1:{args.manager_port}"
        try:
            results = check(args, manager, args.host_id, None)
        except SmokeFailure as e:
            log(f"FAIL: {e}")
            return 1
        log("PASS " + json.dumps(results))
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="beach-smoke-"))
    stack = Stack(args, workdir)
    failure = None
    results = {}
    try:
        host_id, manager = start_stack(args, stack)
        results = check(args, manager, host_id, stack)
    except (SmokeFailure, OSError, KeyError, StopIteration) as e:
        failure = f"{type(e).__name__}: {e}" if not isinstance(e, SmokeFailure) else str(e)
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        code = stack.stop("manager")
        stack.stop("host")
        stack.stop("road")
    # twist re-raises the stop signal after a clean shutdown, so -SIGTERM is a clean exit.
    if failure is None and code not in (0, -signal.SIGTERM, None):
        failure = f"the manager exited with status {code} on SIGTERM"
    if failure is not None:
        log(f"FAIL: {failure}")
        stack.tails()
        return 1
    log("manager stopped cleanly; host and Road stopped")
    log("PASS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
