"""``scripts/stack`` for real: namespaces, a bridge, throwaway Redis and PostgreSQL, two managers,
devstack hosts, Pong and its agent, driven through the command line as a user would.

These tests make a second stack beside any a developer has up (prefix ``bmx-``, subnet
10.232.0.0/24, a temporary state directory), so they never take someone's stack down.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from beachmanager.devstack.stack import network
from beachmanager.devstack.stack import topology as topo
from tests.support.eventually import eventually_sync

ROOT = Path(__file__).resolve().parents[3]
PREFIX = "bmx-"
SUBNET = "10.232.0.0/24"
HOST = topo.HOSTS[0]


@pytest.fixture(scope="module")
def env():
    why = network.unavailable()
    if why is not None:
        raise AssertionError(f"the stack tests need network namespaces: {why}")
    # Not under pytest's own temporary directory: PostgreSQL runs as user postgres, who
    # must reach its data directory there (pytest's is private to root).
    holder = Path(tempfile.mkdtemp(prefix="beach-stack-e2e-"))
    holder.chmod(0o755)
    state = holder / "state"
    env = {**os.environ, "BEACH_STACK_PREFIX": PREFIX, "BEACH_STACK_DIR": str(state),
           "BEACH_STACK_SUBNET": SUBNET}
    stack(env, "down")  # what an earlier, interrupted run of these tests left
    yield env
    stack(env, "down", check=False)
    shutil.rmtree(holder, ignore_errors=True)


def stack(env, *args: str, timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(ROOT / "scripts" / "stack"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"scripts/stack {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def status(env) -> dict:
    return json.loads(stack(env, "status", "--json").stdout)


def footprint(env) -> list[str]:
    """Everything of this stack on the machine: namespaces, root devices, hosts directories,
    the state directory, and processes naming the state directory."""
    found = [f"namespace {n}" for n in
             subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
             if n.startswith(PREFIX)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"device {w.rstrip(':').split('@')[0]}" for w in links.split()
              if w.startswith(PREFIX)]
    found += [f"directory {p}" for p in Path("/etc/netns").glob(f"{PREFIX}*")]
    state = env["BEACH_STACK_DIR"]
    if os.path.exists(state):
        found.append(f"state directory {state}")
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if state in cmdline:
                found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def pids_alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(pid)
        except OSError:
            pass
    return out


def get(url: str, timeout: float = 3.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_for(what: str, check, timeout: float, step: float = 0.1):
    """The shared bounded wait, reading across the bridge (a read may fail while it moves)."""
    return eventually_sync(check, timeout=timeout, what=what, step=step,
                           errors=(OSError, ValueError, KeyError))


def test_up_and_down_twice_in_a_row_leave_nothing_behind(env):
    assert footprint(env) == []
    for round_ in (1, 2):
        out = stack(env, "up").stdout
        assert "reach from the root namespace" in out
        st = status(env)
        rows = {r["service"]: r for r in st["services"]}
        assert {r["state"] for n, r in rows.items() if n != "attach"} == {"running"}
        assert rows["attach"]["state"] == "done"
        assert rows["manager-1"]["address"] == "10.232.0.21"
        again = stack(env, "up").stdout  # idempotent: nothing restarted
        assert "already up" in again
        assert {r["service"]: r["pid"] for r in status(env)["services"]} == \
            {r["service"]: r["pid"] for r in st["services"]}
        pids = [p for r in st["services"] for p in r["pids"]]
        assert len(pids) >= 8
        stack(env, "down")
        assert footprint(env) == [], f"round {round_}"
        assert pids_alive(pids) == [], f"round {round_}: processes survived down"


def test_down_removes_what_a_crashed_up_left(env):
    stack(env, "up")
    manager = next(r for r in status(env)["services"] if r["service"] == "manager-1")
    os.remove(Path(env["BEACH_STACK_DIR"]) / "state.json")  # as if up had died mid-way
    stack(env, "down")
    assert footprint(env) == []
    assert pids_alive(manager["pids"]) == []


@pytest.fixture(scope="module")
def pong_stack(env):
    stack(env, "up", "--pong")
    try:
        yield status(env)
    finally:
        stack(env, "down", check=False)
        assert footprint(env) == []


def test_the_compose_file_and_the_running_stack_agree(env, pong_stack):
    compose = yaml.safe_load((ROOT / "tests/smoke/docker-compose.smoke.yml").read_text())
    services = compose["services"]
    running = {r["service"]: r for r in pong_stack["services"]}
    assert set(running) == set(services)
    for name, row in running.items():
        svc = services[name]
        assert row["environment"] == {k: str(v) for k, v in svc.get("environment", {}).items()}, name
        assert row["depends_on"] == {k: v["condition"] for k, v in
                                     svc.get("depends_on", {}).items()}, name
        inner = {int(p.split(":")[1]) for p in svc.get("ports", [])}
        assert inner <= set(row["ports"]), name
        if "build" in svc:  # ours: the same program and arguments
            assert row["command"] == [a.replace("$$", "$") for a in svc.get("command", [])], name
        for port in row["ports"]:  # it really listens there, across the bridge
            with socket.create_connection((row["address"], port), timeout=3):
                pass


def test_the_pong_agent_plays_through_a_manager_across_namespaces(env, pong_stack):
    done = stack(env, "pong", "--wait", "90")
    score = next(line for line in done.stdout.splitlines() if line.startswith("PONG"))
    assert int(score.split("keys ")[1].split()[0]) > 0, score
    played = subprocess.run([str(ROOT / "scripts" / "pong-stack.sh"), "status"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert played.returncode == 0, played.stderr
    assert "PONG left" in played.stdout and "service beach-manager-rewrite" in played.stdout


def _sessions(addr: str) -> dict[str, dict]:
    return {t["host_session_id"]: t
            for t in get(f"http://{addr}:{topo.MANAGER_PORT}/debug/transports")["transports"]}


def test_a_partition_is_detected_and_healed_without_a_reconnect_storm(env, pong_stack):
    rows = {r["service"]: r for r in pong_stack["services"]}
    addr = {n: rows[n]["address"] for n in ("manager-1", "manager-2")}

    def roles():
        out = {}
        for name, a in addr.items():
            s = _sessions(a).get(HOST.session_id)
            out[name] = (s["role"], s["status"]) if s else None
        return out

    def settled():
        r = roles()
        active = [n for n, v in r.items() if v == ("active", "ready")]
        standby = [n for n, v in r.items() if v == ("standby", "ready")]
        return (active[0], standby[0]) if len(active) == 1 and len(standby) == 1 else None

    owner, standby = wait_for("an active and a standby session to host-1", settled, 60)
    # A host's owner changes at most once per BEACH_MANAGER_FAILOVER_MIN_INTERVAL (10 s, the
    # flap guard) after its assignment: cut when a takeover is allowed, to time it.
    view = get(f"http://{addr[owner]}:{topo.MANAGER_PORT}/debug/assignments")
    assigned = next(h["assigned_at_ms"] for h in view["hosts"]
                    if h["host_session_id"] == HOST.session_id) / 1000
    wait_for("the flap guard to allow a takeover", lambda: time.time() - assigned > 10.5, 15)
    stack(env, "partition", owner, HOST.name)
    cut = time.monotonic()
    wait_for(f"{owner} to report the loss of host-1",
             lambda: roles()[owner] != ("active", "ready"), 10, step=0.05)
    detected = time.monotonic() - cut
    wait_for(f"{standby} active for host-1",
             lambda: roles()[standby] == ("active", "ready"), 10, step=0.05)
    moved = time.monotonic() - cut
    print(f"partition {owner} <-/-> host-1: loss reported after {detected:.2f}s, "
          f"{standby} active after {moved:.2f}s")
    assert detected < 3.0, detected  # the active bus-heartbeat timeout is 1 s
    assert moved < 6.0, moved  # the host's word reaches the standby within its next ping
    survivor = _sessions(addr[standby])[HOST.session_id]

    stack(env, "heal")
    wait_for(f"{owner}'s session back (as the standby)",
             lambda: roles()[owner] == ("standby", "ready"), 30, step=0.2)
    after = _sessions(addr[standby])[HOST.session_id]
    assert after["transport_id"] == survivor["transport_id"]  # the active session never moved
    assert after["reconnects"] == survivor["reconnects"]
    rejoined = _sessions(addr[owner])[HOST.session_id]
    assert rejoined["attempts"] <= 4, rejoined  # a few tries while cut, then one that worked
    for name, a in addr.items():
        text = urllib.request.urlopen(f"http://{a}:{topo.MANAGER_PORT}/metrics",
                                      timeout=3).read().decode()
        reconnects = next(float(line.split()[1]) for line in text.splitlines()
                          if line.startswith("transport_reconnect_total "))
        assert reconnects <= 2, (name, reconnects)


def test_the_stack_smoke_passes_across_namespaces_through_a_lossy_delayed_link(env):
    """run_stack_smoke.py as CI runs it, shortened: host-1 behind 50 ms and 1 % loss."""
    done = subprocess.run([sys.executable, str(ROOT / "tests/smoke/run_stack_smoke.py"),
                           "--duration", "15", "--impair", "host-1=delay=50ms,loss=1%"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.split("PASS ", 1)[1].strip().splitlines()[0])
    assert result["heartbeat_latency_ms"] >= 40 and result["reconnects"] == 0
    assert result["ice_pair"]["remote"].startswith("10.232.0.31:")
    assert footprint(env) == []
