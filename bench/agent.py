#!/usr/bin/env python3
"""Controller agents: agent action published -> the target's ack back at the agent.

For each number of agent/target pairs (``--pairs 1,20``) and each placement (``local``: agent
and target on one manager; ``cross``: targets on one manager, agents on another, shared Redis
and PostgreSQL), in the same run: a fresh Redis and database, devstack Road, the targets (real
shells, one farm process), one devstack host in agent mode per target (its own process,
driver ``script``: ``--lines`` actions, one every ``--interval`` s), and the manager(s).
Each agent logs when it sent an action and when its ack came back over the bus; printed:
p50 / p99 / max of that round trip over all actions.

The baseline, from the same run and the same local manager: the REST path for one target,
``POST /sessions/:id/actions`` then ``GET .../actions/:id`` polled every 5 ms until acked.

Run from the repository root: ``.venv/bin/python bench/agent.py [--pairs 1,20]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attach import pct

from tests.e2e.assign.cluster import Cluster, http, ownership, wait_for
from tests.support.servers import temporary_database, throwaway_redis


def start_agents(c: Cluster, targets: list[tuple[str, str]], lines: int,
                 interval: float) -> list[tuple[tuple[str, str], Path]]:
    out = []
    for i, (target, _) in enumerate(targets):
        name = f"agent{i:02d}"
        script = c.workdir / f"{name}.script"
        script.write_text("".join(f": {i} {n}\n" for n in range(lines)))
        info, events = c.workdir / f"{name}.info", c.workdir / f"{name}.events"
        c.spawn(name, [sys.executable, "-m", "twisted", "--log-format=text",
                       "--reactor=beach-asyncio", "beach-host-dev", "--road", c.road_url,
                       "--session-id", f"{name}-s", "--command", "/bin/sh",
                       "--info-file", str(info), "--agent-target", target,
                       "--agent-token", "bench", "--agent-script", str(script),
                       "--agent-interval", str(interval), "--agent-events", str(events)])
        out.append((info, events))
    agents = []
    for info, events in out:
        wait_for("an agent in its room", lambda info=info: info.exists() and info.read_text(), 60)
        boot = json.loads(info.read_text())
        agents.append(((boot["session_id"], boot["join_code"]), events))
    return agents


def round_trips(events: Path) -> list[float]:
    sent: dict[str, float] = {}
    out = []
    for line in events.read_text().splitlines() if events.exists() else []:
        e = json.loads(line)
        if e["event"] == "sent":
            for action_id in e["ids"]:
                sent.setdefault(action_id, e["at"])
        elif e["event"] == "ack":
            at = sent.get(e["ack"].get("id"))
            if at is not None:
                out.append(e["at"] - at)
    return out


def rest_baseline(m, target: str, count: int) -> list[float]:
    token = m.register(target, "pb-bench")
    out = []
    for n in range(count):
        action = {"id": f"rest-{n}", "action_type": "terminal_write",
                  "payload": {"bytes": f": rest {n}\r"}}
        t0 = time.monotonic()
        status, body, _ = http("POST", f"{m.url}/sessions/{target}/actions",
                               {"controller_token": token, "actions": [action]})
        if status != 200:
            raise SystemExit(f"bench: REST post answered {status}: {body}")
        while True:
            code, view, _ = http("GET", f"{m.url}/sessions/{target}/actions/rest-{n}"
                                        f"?controller_token={token}")
            if code == 200 and view.get("status") == "acked":
                out.append(time.monotonic() - t0)
                break
            time.sleep(0.005)
    return out


def run(pairs: int, placement: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"beach-bench-agent-{placement}-{pairs}-"))
    with throwaway_redis() as redis, temporary_database() as database:
        c = Cluster(workdir, redis.url, database)
        try:
            c.start_road()
            targets = c.start_hosts(pairs, prefix="target")
            agents = start_agents(c, targets, args.lines, args.interval)
            env = {"BEACH_MANAGER_REBALANCE_BATCH": "0", "BEACH_MANAGER_HTTP_ACCESS_LOG": "errors"}
            if placement == "local":
                managers = [c.start_manager("mgr-a", 2 * pairs,
                                            c.hosts_file(targets + [a for a, _ in agents]), **env)]
            else:  # targets fill mgr-a; the agents can only go to mgr-b
                managers = [c.start_manager("mgr-a", pairs, c.hosts_file(targets, "t.txt"), **env)]
                c.wait_ready(managers[0])
                wait_for("targets ready", lambda: len(ownership(managers)["ready"]) == pairs, 120)
                managers.append(c.start_manager("mgr-b", pairs,
                                                c.hosts_file([a for a, _ in agents], "a.txt"), **env))
            for m in managers:
                c.wait_ready(m)
            wait_for("every host ready", lambda: len(ownership(managers)["ready"]) == 2 * pairs,
                     120, step=0.5)
            if placement == "cross":
                owners = ownership(managers)["owners"]
                assert all(owners[t] != owners[a] for (t, _), ((a, _), _) in zip(targets, agents, strict=True))
            for t, _ in targets:
                managers[0].register(t, "pb-bench")
            total = pairs * args.lines
            wait_for("every ack back at the agents",
                     lambda: sum(len(round_trips(e)) for _, e in agents) >= total,
                     args.lines * args.interval + 60, step=0.5)
            trips = [x for _, e in agents for x in round_trips(e)]
            rest = rest_baseline(managers[0], targets[0][0], args.rest) if placement == "local" \
                else []
            return {"pairs": pairs, "placement": placement, "actions": len(trips),
                    "p50_ms": round(pct(trips, 50) * 1000, 1), "p99_ms": round(pct(trips, 99) * 1000, 1),
                    "max_ms": round(max(trips) * 1000, 1),
                    "rest_p50_ms": round(pct(rest, 50) * 1000, 1) if rest else None,
                    "rest_p99_ms": round(pct(rest, 99) * 1000, 1) if rest else None}
        finally:
            c.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", default="1,20")
    ap.add_argument("--placements", default="local,cross")
    ap.add_argument("--lines", type=int, default=20, help="actions per agent")
    ap.add_argument("--interval", type=float, default=0.25, help="seconds between an agent's actions")
    ap.add_argument("--rest", type=int, default=20, help="REST baseline actions (one target)")
    args = ap.parse_args()
    results = [run(int(p), placement, args) for p in args.pairs.split(",")
               for placement in args.placements.split(",")]
    for r in results:
        print(json.dumps(r))
    print(f"\n{'pairs':>5} {'placement':9} {'actions':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
          f" {'REST p50':>8} {'REST p99':>8}")
    for r in results:
        rest50 = f"{r['rest_p50_ms']:8.1f}" if r["rest_p50_ms"] is not None else f"{'-':>8}"
        rest99 = f"{r['rest_p99_ms']:8.1f}" if r["rest_p99_ms"] is not None else f"{'-':>8}"
        print(f"{r['pairs']:5} {r['placement']:9} {r['actions']:7} {r['p50_ms']:7.1f} "
              f"{r['p99_ms']:7.1f} {r['max_ms']:7.1f} {rest50} {rest99}")
    local = [r for r in results if r["rest_p50_ms"]]
    for r in local:
        print(f"{r['pairs']} pair(s), local: agent round trip p50 / REST accept->ack p50 = "
              f"x{r['p50_ms'] / r['rest_p50_ms']:.2f}")


if __name__ == "__main__":
    main()
