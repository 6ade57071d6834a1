"""Several manager processes, a devstack Road and a farm of devstack hosts, as separate processes.

Used by the end-to-end tests and ``bench/assign.py``.  Standard library only on this side:
processes are started with ``python -m twisted`` and watched over HTTP and SQL.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: One key for every instance, so join codes stored by one can be read by all.
JOIN_CODE_KEY = base64.b64encode(b"assign-e2e-join-code-key-32bytes").decode()
#: One association authority for every instance (hosts accept a failed-over owner's
#: association), and its public key, which every devstack host is told to trust.
ASSOCIATION_SEED = b"assign-e2e-association-key-32byt"
ASSOCIATION_KEY = base64.b64encode(ASSOCIATION_SEED).decode()


def association_public_key() -> str:
    from beachmanager.auth.bridge import AssociationAuthority

    return AssociationAuthority(ASSOCIATION_SEED).public_key_b64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body=None, timeout: float = 5.0,
         headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={**({"content-type": "application/json"} if data else {}),
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return e.code, parsed, dict(e.headers)


def wait_for(what: str, check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, urllib.error.URLError) as e:
            last = e
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                         + (f" (last error: {last})" if last else ""))


@dataclass
class Manager:
    instance_id: str
    port: int
    proc: subprocess.Popen
    log: Path
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def debug(self, timeout: float = 5.0) -> dict:
        status, body, _ = http("GET", self.url + "/debug/assignments?limit=10000", timeout=timeout)
        if status != 200:
            raise AssertionError(f"{self.instance_id} /debug/assignments answered {status}: {body}")
        return body

    def sessions(self, timeout: float = 10.0) -> dict[str, dict]:
        """Its host sessions by host (role, status, attempts, transport id): /debug/transports."""
        status, body, _ = http("GET", self.url + "/debug/transports", timeout=timeout)
        if status != 200:
            raise AssertionError(f"{self.instance_id} /debug/transports answered {status}: {body}")
        return {t["host_session_id"]: t for t in body["transports"]}

    def register(self, host: str, beach: str = "pb-e2e") -> str:
        """Register *host*'s session through this manager; its controller lease token."""
        status, body, _ = http("POST", self.url + "/sessions/register",
                               {"session_id": host, "private_beach_id": beach})
        if status != 200:
            raise AssertionError(f"register {host} at {self.instance_id}: {status} {body}")
        return body["controller_token"]

    def events(self) -> list[dict]:
        """The manager's log events (``twist --log-format=json``)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line.lstrip("\x1e")))  # RFC 7464 record separators
            except ValueError:
                continue
        return out


@dataclass
class Cluster:
    workdir: Path
    redis_url: str
    database_url: str
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    managers: dict[str, Manager] = field(default_factory=dict)
    road_url: str = ""
    hosts: list[tuple[str, str]] = field(default_factory=list)

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEACH_")}
        env["PYTHONPATH"] = str(ROOT)
        env["BEACH_MANAGER_AUTHORITY"] = association_public_key()  # devstack hosts pin it
        env.update(extra or {})
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              prefix: list[str] | None = None) -> subprocess.Popen:
        """Start a process logging to ``<name>.log``; *prefix* runs it under another command
        (``ip netns exec NS``, which execs: signals reach the process itself)."""
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([*(prefix or []), *argv], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env=self._env(env), start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_road(self, interface: str = "127.0.0.1") -> str:
        port = free_port()
        self.spawn("road", [sys.executable, "-m", "twisted", "--log-format=text",
                            "--reactor=beach-asyncio", "beach-road-dev", "--port", str(port),
                            "--interface", interface])
        self.road_url = f"http://127.0.0.1:{port}"
        wait_for("Road's /health", lambda: http("GET", self.road_url + "/health")[0] == 200, 30)
        return self.road_url

    def start_hosts(self, count: int, prefix: str = "farm", timeout: float = 300,
                    road_url: str | None = None, run_in: list[str] | None = None,
                    drop_first_acks: int = 0) -> list[tuple[str, str]]:
        out = self.workdir / f"{prefix}.jsonl"
        self.spawn(f"hosts-{prefix}", [sys.executable, "-m", "tests.e2e.assign.hostfarm",
                                       "--road", road_url or self.road_url, "--count", str(count),
                                       "--prefix", prefix, "--out", str(out),
                                       "--drop-first-acks", str(drop_first_acks)], prefix=run_in)

        def ready():
            proc = self.procs[f"hosts-{prefix}"]
            if proc.poll() is not None:
                raise AssertionError(f"host farm exited: {(self.workdir / f'hosts-{prefix}.log').read_text()[-2000:]}")
            return out.exists() and out.read_text().endswith("READY\n")

        wait_for(f"{count} devstack hosts", ready, timeout, step=0.25)
        hosts = [(d["session_id"], d["join_code"]) for d in
                 (json.loads(line) for line in out.read_text().splitlines() if line.startswith("{"))]
        self.hosts.extend(hosts)
        return hosts

    def hosts_file(self, hosts: list[tuple[str, str]], name: str = "hosts.txt") -> Path:
        path = self.workdir / name
        path.write_text("".join(f"{sid}:{code}\n" for sid, code in hosts))
        return path

    def start_manager(self, instance_id: str, capacity: int, hosts_file: Path | None = None,
                      address: str = "127.0.0.1", run_in: list[str] | None = None,
                      **env: str) -> Manager:
        port = free_port()
        settings = {
            "BEACH_MANAGER_INSTANCE_ID": instance_id,
            "BEACH_MANAGER_CAPACITY": str(capacity),
            "BEACH_MANAGER_HTTP_ENDPOINT": f"tcp:{port}:interface={address}",
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database_url,
            "AUTH_BYPASS": "1",
            "BEACH_ROAD_URL": self.road_url or "http://127.0.0.1:9",
            "BEACH_WEBRTC_DISABLE_STUN": "1",
            "BEACH_MANAGER_JOIN_CODE_KEY": JOIN_CODE_KEY,
            "BEACH_MANAGER_ASSOCIATION_KEY": ASSOCIATION_KEY,
            "BEACH_MANAGER_STOP_TIMEOUT": "12",
            **({"BEACH_MANAGER_HOSTS_FILE": str(hosts_file)} if hosts_file else {}),
            **env,
        }
        proc = self.spawn(instance_id, [sys.executable, "-m", "twisted", "--log-format=json",
                                        "--reactor=beach-asyncio", "beach-manager"], settings,
                          prefix=run_in)
        m = Manager(instance_id, port, proc, self.workdir / f"{instance_id}.log", address)
        self.managers[instance_id] = m
        return m

    def wait_ready(self, m: Manager, timeout: float = 60) -> None:
        def ready():
            if not m.alive():
                raise AssertionError(f"{m.instance_id} exited: {m.log.read_text()[-3000:]}")
            return http("GET", m.url + "/readyz", timeout=2)[0] == 200

        wait_for(f"{m.instance_id} ready", ready, timeout, step=0.2)

    def live(self) -> list[Manager]:
        return [m for m in self.managers.values() if m.alive()]

    def kill(self, instance_id: str, sig: int = signal.SIGKILL) -> None:
        self.managers[instance_id].proc.send_signal(sig)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def ownership(managers: list[Manager]) -> dict:
    """Every host's owner and readiness as the live managers report them, with consistency facts.

    ``owners``: host -> owner per the shared store (every manager sees the same table);
    ``held``: instance -> hosts it reports holding locally (its transports); ``ready``: hosts
    whose owner reported its transport ready.
    """
    views = {m.instance_id: m.debug() for m in managers}
    owners: dict[str, str] = {}
    ready: set[str] = set()
    held: dict[str, set[str]] = {}
    for iid, view in views.items():
        for h in view["hosts"]:
            owners[h["host_session_id"]] = h["manager_instance_id"]
            if h["ready"]:
                ready.add(h["host_session_id"])
            if "local" in h and h["local"]["state"] != "handing":
                held.setdefault(iid, set()).add(h["host_session_id"])
    return {"owners": owners, "ready": ready, "held": held, "views": views}
