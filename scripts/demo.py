#!/usr/bin/env python3
"""``make demo``: a controller agent plays terminal Pong on another host, through the manager.

Starts, on embedded defaults (memory stores, the dev auth bypass, its own dev Road):

1. the manager, with its dev Road on ``--road-port`` and its API on ``--port``;
2. a Pong host (``python -m beachmanager.devstack.pong`` on a real PTY), attached by code in
   private beach ``dev``;
3. an agent host (a devstack host in agent mode, driver ``pong``) attached the same way: over
   its own transport it takes a controller lease on the Pong host and plays the right paddle
   from the screens the manager forwards to it.  No REST call is made by the agent.

Then it prints the Pong screen as the manager mirrors it, twice a second (``--quiet``: only the
score line), until Ctrl-C, and stops everything.  Watch it yourself with
``curl -s http://127.0.0.1:8081/debug/hosts/pong-demo/cache``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def call(method: str, url: str, body=None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, {"raw": e.read().decode(errors="replace")}
    except (urllib.error.URLError, OSError) as e:
        return 0, {"error": str(e)}


def wait(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--road-port", type=int, default=4132)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quiet", action="store_true", help="print the score line only")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="beach-demo-"))
    api, road = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.road_port}"
    env = {**os.environ, "AUTH_BYPASS": "1", "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []

    def spawn(name: str, argv: list[str]) -> None:
        log = open(work / f"{name}.log", "wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                      cwd=ROOT, start_new_session=True))

    def host(name: str, command: str, *extra: str) -> tuple[str, str]:
        info = work / f"{name}.info"
        spawn(name, [PY, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio",
                     "beach-host-dev", "--road", road, "--session-id", name, "--command", command,
                     "--info-file", str(info), *extra])
        boot = json.loads(wait(f"{name} in its room",
                               lambda: info.exists() and info.read_text().strip()))
        status, body = call("POST", f"{api}/private-beaches/dev/sessions/attach-by-code",
                            {"session_id": boot["session_id"], "code": boot["join_code"]})
        if status != 200:
            raise SystemExit(f"demo: attaching {name} failed: {status} {body}")
        return boot["session_id"], boot["join_code"]

    try:
        spawn("manager", [PY, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio",
                          "beach-manager", f"--http-endpoint=tcp:{args.port}:interface=127.0.0.1",
                          f"--dev-road={args.road_port}"])
        wait("the manager ready", lambda: call("GET", f"{api}/readyz")[0] == 200)
        target, _ = host("pong-demo", f"{PY} -m beachmanager.devstack.pong --seed {args.seed}")
        host("pong-agent", "/bin/sh", "--agent-target", target, "--agent-token", "dev",
             "--agent-driver", "pong", "--agent-events", str(work / "agent.events"))
        print(f"demo: the manager is at {api}; the agent plays the right paddle of {target}.\n"
              f"demo: watch: curl -s {api}/debug/hosts/{target}/cache   (logs in {work})\n",
              flush=True)
        started = time.monotonic()
        while not args.seconds or time.monotonic() - started < args.seconds:
            status, body = call("GET", f"{api}/debug/hosts/{target}/cache")
            rows = body.get("rows", []) if status == 200 else []
            pong = [r for r in rows if r.strip()][:16]
            if args.quiet:
                print(next((r for r in pong if r.startswith("PONG")), "(no screen yet)"),
                      flush=True)
            else:
                print("\x1b[H\x1b[2J" + "\n".join(pong), flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
