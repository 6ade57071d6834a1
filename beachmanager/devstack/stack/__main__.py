"""``scripts/stack``: the smoke topology as network namespaces (see runner.py, topology.py).

    scripts/stack up [--pong] [--impair SERVICE=delay=50ms,loss=1%]...
    scripts/stack status [--json] | logs [SERVICE] [-n N] [-f]
    scripts/stack kill|pause|resume SERVICE
    scripts/stack partition A B | heal [A B]
    scripts/stack exec SERVICE COMMAND...
    scripts/stack down
    scripts/stack compose [--write | --check]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import compose, network
from . import runner as r
from . import topology as topo


def _table(rows: list[dict]) -> str:
    out = [f"  {'service':12} {'state':9} {'address':13} {'reach from the root namespace'}"]
    for row in rows:
        reach = ", ".join(row["reach"]) or "-"
        impair = f"  [wire: {row['impair']}]" if row["impair"] else ""
        out.append(f"  {row['service']:12} {row['state']:9} {row['address']:13} {reach}{impair}")
    return "\n".join(out)


def _need(state_dir: Path) -> r.Stack:
    st = r.Stack.load(state_dir)
    if st is None:
        raise r.StackError("the stack is not up (scripts/stack up)")
    return st


def _impairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, spec = v.partition("=")
        if not sep or not spec:
            raise r.StackError(f"--impair wants SERVICE=SPEC (e.g. host-1=delay=50ms,loss=1%), "
                               f"got {v!r}")
        out[name] = spec
    return out


def _pong_screen(st: r.Stack) -> tuple[str | None, list[str]]:
    """(the manager mirroring the Pong host, its screen rows); (None, []) before one does."""
    for name in ("manager-1", "manager-2"):
        url = (f"http://{st.entry(name)['address']}:{topo.MANAGER_PORT}/debug/hosts/"
               f"{topo.PONG.session_id}/cache")
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return name, json.loads(resp.read())["rows"]
        except (OSError, ValueError, KeyError):
            continue  # owned elsewhere (307), or not mirrored yet
    return None, []


def _pong(st: r.Stack, wait: float) -> int:
    if "pong" not in st.services:
        raise r.StackError("the stack runs without Pong (scripts/stack up --pong)")
    deadline = time.monotonic() + wait
    while True:
        owner, rows = _pong_screen(st)
        score = next((row for row in rows if row.startswith("PONG")), None)
        played = score is not None and re.search(r"\bkeys [1-9]", score) is not None
        if played or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if score is None:
        raise r.StackError("no manager mirrors the Pong host yet")
    print("\n".join(row for row in rows if row.strip()))
    r.say(f"the Pong host is mirrored by {owner}: curl -s http://{st.entry(owner)['address']}:"  # type: ignore[arg-type]
          f"{topo.MANAGER_PORT}/debug/hosts/{topo.PONG.session_id}/cache")
    if wait and not played:
        raise r.StackError(f"the agent has not played within {wait:.0f}s: {score}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/stack", description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dir", type=Path, default=r.STATE_DIR)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="bring the stack up (idempotent)")
    p.add_argument("--pong", action="store_true", help="also the Pong host and its agent")
    p.add_argument("--impair", action="append", default=[], metavar="SERVICE=SPEC",
                   help="join SERVICE's link through an impaired wire (delay=..,jitter=..,loss=..)")
    sub.add_parser("down", help="stop everything and remove what the stack made")
    p = sub.add_parser("status")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("logs")
    p.add_argument("service", nargs="?")
    p.add_argument("-n", type=int, default=40)
    p.add_argument("-f", "--follow", action="store_true")
    for name in ("kill", "pause", "resume"):
        sub.add_parser(name).add_argument("service")
    p = sub.add_parser("partition", help="drop all traffic between two services")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("heal", help="undo partitions (all, or the one between A and B)")
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p = sub.add_parser("exec", help="run a command in a service's namespace")
    p.add_argument("service")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("pong", help="the Pong host's score line, as its manager mirrors it")
    p.add_argument("--wait", type=float, default=0,
                   help="wait up to this long for the agent to have played (keys > 0)")
    p = sub.add_parser("compose", help="print (or --write, --check) the compose files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except (r.StackError, network.NetworkError) as e:
        print(f"stack: {e}", file=sys.stderr, flush=True)
        return 1


def _run(args) -> int:
    sd = args.state_dir
    if args.cmd == "up":
        st = r.up(pong=args.pong, impair=_impairs(args.impair), state_dir=sd)
        r.say(f"up: subnet {st.subnet}, reached from this (root) namespace through "
              f"{network.ROOT_DEV}, which reaches back as {st.root} ('root' in the stack); "
              f"names resolve inside the stack as on a compose network")
        print(_table(r.status(st)))
        r.say(f"logs in {sd / 'logs'}; run a command beside a service: scripts/stack exec "
              f"host-1 sh")
        return 0
    if args.cmd == "down":
        r.down(sd)
        left = network.leftovers()
        if left:
            raise r.StackError(f"left behind: {', '.join(left)}")
        return 0
    if args.cmd == "compose":
        if args.check:
            stale = compose.write(check=True)
            for path in stale:
                print(f"stack: {path} differs from the topology (compose --write)", file=sys.stderr)
            return 1 if stale else 0
        if args.write:
            for path in compose.write():
                r.say(f"wrote {path}")
            return 0
        for t in compose.targets():
            print(f"# ---- {t.path}\n{compose.render(t)}")
        return 0
    st = _need(sd)
    if args.cmd == "status":
        rows = r.status(st)
        if args.json:
            print(json.dumps({"subnet": st.subnet, "root_address": st.root,
                              "partitions": st.partitions, "services": rows}, indent=1))
        else:
            print(_table(rows))
            for a, b in st.partitions:
                print(f"  partition: {a} <-/-> {b}")
            for line in r.problems(st):
                print(f"  problem: {line}")
        return 0
    if args.cmd == "logs":
        names = [args.service] if args.service else list(st.services)
        if args.follow:
            paths = [st.entry(n)["log"] for n in names]
            return subprocess.call(["tail", "-n", str(args.n), "-F", *paths])
        for n in names:
            print(f"----- {n} ({st.entry(n)['log']}) -----")
            print(r.tail(st, n, args.n))
        return 0
    if args.cmd in ("kill", "pause", "resume"):
        sig = {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "resume": signal.SIGCONT}[args.cmd]
        pids = r.signal_service(st, args.service, sig)
        r.say(f"{args.cmd}: {args.service} (pids {', '.join(map(str, pids))})")
        return 0
    if args.cmd == "partition":
        r.partition(st, args.a, args.b)
        r.say(f"partition: {args.a} and {args.b} no longer reach each other")
        return 0
    if args.cmd == "heal":
        if args.a and not args.b:
            raise r.StackError("heal takes no service or two")
        healed = r.heal(st, args.a, args.b)
        r.say("healed: " + (", ".join(f"{a} <-> {b}" for a, b in healed) or "nothing to heal"))
        return 0
    if args.cmd == "pong":
        return _pong(st, args.wait)
    if args.cmd == "exec":
        if not args.command:
            raise r.StackError("exec SERVICE COMMAND...")
        ns = st.entry(args.service)["namespace"]
        os.execvp("ip", ["ip", "netns", "exec", ns, *args.command])
    raise r.StackError(f"unknown command {args.cmd}")


if __name__ == "__main__":
    sys.exit(main())
