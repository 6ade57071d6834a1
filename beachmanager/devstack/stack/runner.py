"""Run the smoke topology (:func:`.topology.smoke`) as processes in network namespaces.

``up`` makes the network (:mod:`.network`), starts every service in dependency order inside
its namespace (waiting for each dependency's compose condition: healthy, started, or
completed), and writes the stack's state (pids, addresses, logs) under the state directory
(``BEACH_STACK_DIR``, default ``/run/beach-stack``).  Redis and PostgreSQL are throwaway
servers in their own namespaces with data under the state directory; the machine's own servers
are never touched.  ``down`` stops every process in every ``bms-`` (``BEACH_STACK_PREFIX``) namespace (whatever the
state file says, so a crashed ``up`` is cleaned too) and removes namespaces, devices, hosts
files and the state directory.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import network as net
from . import topology as topo

ROOT = Path(__file__).resolve().parents[3]
STATE_DIR = Path(os.environ.get("BEACH_STACK_DIR", "/run/beach-stack"))
START_TIMEOUT = 90.0
ONESHOT_TIMEOUT = 150.0


class StackError(Exception):
    """Why a stack command failed, in words for the operator."""


def say(msg: str) -> None:
    print(f"stack: {msg}", flush=True)


@dataclass
class Stack:
    """The state of a stack that ``up`` made, as kept in ``state.json``."""
    subnet: str
    root: str = ""  # where the stack reaches the root namespace
    pong: bool = False
    impair: dict[str, str] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: list[list[str]] = field(default_factory=list)
    state_dir: Path = STATE_DIR

    @property
    def path(self) -> Path:
        return self.state_dir / "state.json"

    def save(self) -> None:
        doc = {"subnet": self.subnet, "root": self.root, "pong": self.pong, "impair": self.impair,
               "services": self.services, "partitions": self.partitions}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.path)

    @classmethod
    def load(cls, state_dir: Path = STATE_DIR) -> Stack | None:
        path = state_dir / "state.json"
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return cls(doc["subnet"], doc["root"], doc["pong"], doc["impair"], doc["services"],
                   doc["partitions"], state_dir)

    def topology(self) -> topo.Topology:
        return topo.Topology("smoke", topo.smoke().services, self.subnet)

    def entry(self, name: str) -> dict[str, Any]:
        if name not in self.services:
            raise StackError(f"no service {name!r} in the stack (there are: "
                             f"{', '.join(self.services)})")
        return self.services[name]


# -- programs -------------------------------------------------------------------------------

def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if not found:
        raise StackError(f"PostgreSQL's {name} not found (Debian: apt-get install postgresql)")
    return found


def _env(s: topo.Service) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if k in ("HOME", "LANG", "LC_ALL", "TERM", "TZ", "USER")}
    bindir = str(Path(sys.executable).parent)
    return {**keep, "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **s.environment}


def program(s: topo.Service, address: str, work: Path) -> list[str]:
    """What runs in the service's namespace: our programs from this checkout, the stock
    servers from the machine's packages (with the image's settings)."""
    if s.name == "redis":
        if shutil.which("redis-server") is None:
            raise StackError("redis-server not found (Debian: apt-get install redis-server)")
        (work / "redis").mkdir(exist_ok=True)
        return ["redis-server", "--bind", address, "127.0.0.1", "--port", str(topo.REDIS_PORT),
                "--save", "", "--appendonly", "no", "--protected-mode", "no",
                "--dir", str(work / "redis")]
    if s.name == "postgres":
        return ["runuser", "-u", "postgres", "--", _pg_bin("postgres"), "-D",
                str(work / "postgres"), "-c", f"listen_addresses={address}",
                "-p", str(topo.POSTGRES_PORT), "-k", str(work / "postgres-socket")]
    if s.entrypoint:
        return [sys.executable, *s.entrypoint[1:], *s.command]
    return [sys.executable, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio",
            *s.command]


def prepare_postgres(work: Path) -> None:
    """initdb as user postgres (it refuses root), the compose image's user and password."""
    user, password, _ = topo.DATABASE
    data, sock = work / "postgres", work / "postgres-socket"
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("no user 'postgres' (Debian: apt-get install postgresql)") from None
    for parent in [work, *work.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise StackError(f"the state directory {work} must be reachable by user postgres, "
                             f"but {parent} is not (chmod o+x, or choose BEACH_STACK_DIR)")
    for d in (data, sock):
        d.mkdir(mode=0o700)
        os.chown(d, owner.pw_uid, owner.pw_gid)
    pwfile = work / "postgres.pw"
    pwfile.write_text(password + "\n")
    os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    done = subprocess.run(["runuser", "-u", "postgres", "--", _pg_bin("initdb"), "-D", str(data),
                           "-U", user, f"--pwfile={pwfile}", "--auth-local=trust",
                           "--auth-host=scram-sha-256", "--no-sync"],
                          capture_output=True, text=True)
    pwfile.unlink()
    if done.returncode != 0:
        raise StackError(f"initdb failed: {done.stderr.strip()[-500:]}")
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write("host all all 0.0.0.0/0 scram-sha-256\n")


def create_database(st: Stack, init_sql: str = "") -> None:
    """The compose image's database, then *init_sql* on it as the owner (as the image runs
    ``/docker-entrypoint-initdb.d``): the managers' least-privilege login."""
    user, _, db = topo.DATABASE
    sock = st.state_dir / "postgres-socket"

    def psql(database: str, *args: str, sql: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", net.namespace("postgres"), "runuser", "-u",
                               "postgres", "--", _pg_bin("psql"), "-h", str(sock), "-p",
                               str(topo.POSTGRES_PORT), "-U", user, "-d", database, "-q",
                               "-v", "ON_ERROR_STOP=1", *args], input=sql,
                              capture_output=True, text=True)

    done = psql("postgres", "-c", f"CREATE DATABASE {db}")
    if done.returncode != 0:
        raise StackError(f"creating database {db} failed: {done.stderr.strip()}")
    if init_sql:
        done = psql(db, "-f", "-", sql=init_sql)
        if done.returncode != 0:
            raise StackError(f"the first-start SQL of {db} failed: {done.stderr.strip()}")


# -- probes ---------------------------------------------------------------------------------

def healthy(health: topo.Health, address: str) -> bool:
    try:
        if health.kind == "http":
            url = f"http://{address}:{health.port}{health.path}"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        if health.kind == "redis":
            with socket.create_connection((address, health.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        if health.kind == "postgres":
            return subprocess.run([_pg_bin("pg_isready"), "-q", "-h", address, "-p",
                                   str(health.port)]).returncode == 0
    except (OSError, urllib.error.URLError, ValueError):
        return False
    raise StackError(f"unknown health check {health.kind!r}")


def wait_until(what: str, check: Callable[[], bool], timeout: float,
               failed: Callable[[], str | None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        why = failed()
        if why:
            raise StackError(f"{what}: {why}")
        time.sleep(0.2)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def paused(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _exit_status(pid: int) -> int | None:
    proc = _children.get(pid)
    return proc.poll() if proc is not None else None


# -- commands -------------------------------------------------------------------------------

def hosts_file(t: topo.Topology, root: str) -> str:
    lines = ["127.0.0.1 localhost", f"{root} root"]
    lines += [" ".join((t.address(s.name), s.name, *s.aliases)) for s in t.services]
    return "\n".join(lines) + "\n"


def up(pong: bool = False, impair: dict[str, str] | None = None,
       subnet: str | None = None, state_dir: Path = STATE_DIR) -> Stack:
    impair = dict(impair or {})
    subnet = subnet or os.environ.get("BEACH_STACK_SUBNET", topo.DEFAULT_SUBNET)
    current = Stack.load(state_dir)
    if current is not None:
        if (current.pong, current.impair, current.subnet) == (pong, impair, subnet) \
                and not problems(current):
            say("already up")
            return current
        say("a different or damaged stack is here: taking it down first")
    if current is not None or net.leftovers():
        down(state_dir, quiet=True)
    why = net.unavailable()
    if why:
        raise StackError(why)
    overlap = net.overlapping_routes(subnet)
    if overlap:
        raise StackError(f"subnet {subnet} overlaps routes of this machine ({'; '.join(overlap)});"
                         f" choose another with BEACH_STACK_SUBNET")
    t = topo.Topology("smoke", topo.smoke().services, subnet)
    unknown = set(impair) - {s.name for s in t.services}
    if unknown:
        raise StackError(f"--impair names unknown services: {', '.join(sorted(unknown))}")
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o755)
    (state_dir / "logs").mkdir(exist_ok=True)
    st = Stack(subnet, "", pong, impair, {}, [], state_dir)
    st.save()
    try:
        st.root = net.make_bridge(subnet)
        hosts = hosts_file(t, st.root)
        for s in t.selected(pong):
            ns, port = net.make_service_namespace(s.name, t.address(s.name), t.prefix_length,
                                                  hosts, st.root, tap=s.name in impair)
            st.services[s.name] = {"namespace": ns, "address": t.address(s.name),
                                   "ports": list(s.ports), "pid": None, "oneshot": s.oneshot,
                                   "log": str(state_dir / "logs" / f"{s.name}.log")}
            if s.name in impair:
                _start_wire(st, s.name, ns, port, impair[s.name])
        st.save()
        for s in t.start_order(pong):
            _start(st, t, s)
    except BaseException:
        st.save()
        raise
    return st


#: The processes this ``up`` started (kept so that their exit status is ours to read).
_children: dict[int, subprocess.Popen] = {}


def _spawn(st: Stack, name: str, ns: str, argv: list[str], env: dict[str, str]) -> int:
    log = open(st.state_dir / "logs" / f"{name}.log", "ab")
    with log:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                env=env, start_new_session=True)
    _children[proc.pid] = proc
    return proc.pid


def _start_wire(st: Stack, service: str, ns: str, port: str, spec: str) -> None:
    stats = st.state_dir / f"wire-{service}.json"
    argv = [sys.executable, "-m", "beachmanager.devstack.stack.wire", "--a", f"{ns}:eth0",
            "--b", f"{net.NET_NS}:{port}", "--impair", spec, "--stats-file", str(stats)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    pid = _spawn(st, f"wire-{service}", net.NET_NS, argv, env)
    st.services[service]["wire"] = {"pid": pid, "impair": spec, "stats": str(stats)}
    wait_until(f"the impaired wire of {service}", stats.exists, 15,
               lambda: None if alive(pid) else "the wire exited (see its log, "
               f"{st.state_dir / 'logs' / f'wire-{service}.log'})")


def _start(st: Stack, t: topo.Topology, s: topo.Service) -> None:
    entry = st.services[s.name]
    for dep, condition in s.depends_on.items():
        if dep not in st.services:
            continue
        health = t.service(dep).health
        if condition == "service_healthy" and health is not None:
            _wait_healthy(st, dep, health, t.address(dep), f"{dep} healthy (before {s.name})")
    if s.name == "postgres":
        prepare_postgres(st.state_dir)
    pid = _spawn(st, s.name, entry["namespace"], program(s, entry["address"], st.state_dir),
                 _env(s))
    entry["pid"] = pid
    st.save()
    say(f"{s.name} started at {entry['address']} (pid {pid})")
    if s.name == "postgres":
        assert s.health is not None
        _wait_healthy(st, s.name, s.health, entry["address"], "postgres healthy")
        create_database(st, s.init_sql)
    if s.oneshot:
        wait_until(f"{s.name} to finish", lambda: _exit_status(pid) is not None, ONESHOT_TIMEOUT)
        code = _exit_status(pid)
        entry["exit"] = code
        st.save()
        if code != 0:
            raise StackError(f"{s.name} exited with {code}: {tail(st, s.name, 5)}")


def _wait_healthy(st: Stack, name: str, health: topo.Health, address: str, what: str) -> None:
    wait_until(what, lambda: healthy(health, address), START_TIMEOUT, lambda: _died(st, name))


def _died(st: Stack, name: str) -> str | None:
    pid = st.services[name].get("pid")
    if pid and not alive(pid):
        return f"{name} exited: {tail(st, name, 5)}"
    return None


def tail(st: Stack, name: str, lines: int = 40) -> str:
    path = Path(st.entry(name)["log"])
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def problems(st: Stack) -> list[str]:
    """What is wrong with a stack that should be up (empty: all well)."""
    out = []
    for name, e in st.services.items():
        if not os.path.exists(f"/var/run/netns/{e['namespace']}"):
            out.append(f"{name}: its namespace is gone")
        elif not e["oneshot"] and (not e.get("pid") or not net.pids_in(e["namespace"])):
            out.append(f"{name}: not running")
        elif e["oneshot"] and e.get("exit") != 0:
            out.append(f"{name}: exited with {e.get('exit')}")
    return out


def status(st: Stack) -> list[dict[str, Any]]:
    rows = []
    t = st.topology()
    for name, e in st.services.items():
        pids = net.pids_in(e["namespace"])
        s = t.service(name)
        if e["oneshot"]:
            state = "done" if e.get("exit") == 0 else f"exited {e.get('exit')}"
        elif not pids:
            state = "exited"
        elif all(paused(p) for p in pids):
            state = "paused"
        else:
            state = "running"
        rows.append({"service": name, "state": state, "pid": e.get("pid"),
                     "namespace": e["namespace"],
                     "address": e["address"], "ports": e["ports"], "pids": pids,
                     "command": list(s.command), "environment": dict(s.environment),
                     "depends_on": dict(s.depends_on), "log": e["log"],
                     "impair": e.get("wire", {}).get("impair"),
                     "reach": [f"{e['address']}:{p}" for p in e["ports"]]})
    return rows


def signal_service(st: Stack, name: str, sig: signal.Signals) -> list[int]:
    pids = net.pids_in(st.entry(name)["namespace"])
    if not pids:
        raise StackError(f"{name} has no processes")
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def stop_service(st: Stack, name: str, timeout: float = 20.0) -> int | None:
    """SIGTERM every process of *name*, wait for them; the main process's exit status when
    this process started it (None otherwise)."""
    e = st.entry(name)
    pids = net.pids_in(e["namespace"])
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    proc = _children.get(e.get("pid") or -1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (any(alive(p) for p in pids)
                                           or (proc is not None and proc.poll() is None)):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    return proc.wait(5) if proc is not None else None


def partition(st: Stack, a: str, b: str) -> None:
    ea, eb = st.entry(a), st.entry(b)
    if a == b:
        raise StackError("a partition needs two different services")
    net.partition(ea["namespace"], ea["address"], eb["namespace"], eb["address"], st.subnet)
    if sorted([a, b]) not in st.partitions:
        st.partitions.append(sorted([a, b]))
    st.save()


def heal(st: Stack, a: str | None = None, b: str | None = None) -> list[list[str]]:
    pairs = [p for p in st.partitions if a is None or sorted([a, b or ""]) == p]
    if a is not None and not pairs:
        raise StackError(f"no partition between {a} and {b}")
    for x, y in pairs:
        ex, ey = st.entry(x), st.entry(y)
        net.heal(ex["namespace"], ex["address"], ey["namespace"], ey["address"])
        st.partitions.remove([x, y])
    st.save()
    return pairs


def down(state_dir: Path = STATE_DIR, quiet: bool = False) -> list[str]:
    """Stop everything in every stack namespace, then remove what the stack made."""
    namespaces = net.existing_namespaces()
    stopped = 0
    # Managers first, so they leave cleanly while Redis and PostgreSQL still answer.
    first = [ns for ns in namespaces if ns.startswith(f"{net.PREFIX}manager")]
    for group in (first, [ns for ns in namespaces if ns not in first]):
        pids = [p for ns in group for p in net.pids_in(ns)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)  # a paused process cannot stop
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        stopped += len(pids)
    deadline = time.monotonic() + 5
    while any(net.pids_in(ns) for ns in namespaces) and time.monotonic() < deadline:
        time.sleep(0.1)
    removed = net.remove_all()
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)
        removed.append(f"directory {state_dir}")
    if not quiet:
        say(f"down: {stopped} processes stopped; removed {len(removed)} things"
            + (f" ({', '.join(removed)})" if removed else ""))
    return removed


__all__ = ["Stack", "StackError", "down", "heal", "partition", "problems", "signal_service",
           "status", "stop_service", "up"]
