"""Real servers for tests: the machine's PostgreSQL/Redis (isolated per test) and throwaway ones.

Tests that stop, restart or break a server must use a throwaway instance from
here, never the machine's.  Everything is safe to run while other test runs use
the same machine: databases and key prefixes are random, ports come from the OS.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.eventually import eventually_sync

MACHINE_PG = os.environ.get("BEACH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MACHINE_REDIS = os.environ.get("BEACH_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Block until a server accepts connections on *port* (a process outside the reactor)."""

    def listening() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    eventually_sync(listening, timeout=timeout, what=f"something listening on {host}:{port}",
                    errors=(OSError,))


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def temporary_database(server_url: str = MACHINE_PG) -> Iterator[str]:
    """A fresh, empty database on *server_url*; dropped afterwards.  Yields its URL."""
    name = "beach_test_" + uuid.uuid4().hex[:12]
    _psql(server_url, f'CREATE DATABASE "{name}"')
    base = server_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _psql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_user(url: str, user: str, password: str | None = None) -> str:
    """*url* logging in as *user* (the same server and database)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = user + (f":{password}" if password is not None else "")
    return parts._replace(netloc=f"{auth}@{host}").geturl()


@contextlib.contextmanager
def least_privilege_login(owner_url: str) -> Iterator[str]:
    """A unique least-privilege login (registry/roles.py) on *owner_url*'s cluster; yields the
    URL logging in as it.  Roles are cluster-wide: this one is dropped afterwards."""
    from beachmanager.registry.roles import login_role_script

    name = "beach_login_" + uuid.uuid4().hex[:10]
    _psql(owner_url, login_role_script(name))
    try:
        yield with_user(owner_url, name)
    finally:
        _psql(owner_url, f"DROP ROLE IF EXISTS {name}")


@contextlib.contextmanager
def least_privilege_database(server_url: str = MACHINE_PG) -> Iterator[tuple[str, str]]:
    """A fresh database and a least-privilege login for it, as deployed: yields
    ``(owner_url, login_url)`` for ``DATABASE_MIGRATE_URL`` and ``DATABASE_URL``."""
    with temporary_database(server_url) as owner_url, least_privilege_login(owner_url) as login:
        yield owner_url, login


def redis_prefix() -> str:
    return "beachtest:" + uuid.uuid4().hex[:12] + ":"


# -- throwaway servers ---------------------------------------------------------

@dataclass
class Throwaway:
    url: str
    port: int
    stop: callable
    start: callable


@contextlib.contextmanager
def throwaway_redis(bind: tuple[str, ...] = ("127.0.0.1",),
                    prefix: tuple[str, ...] = ()) -> Iterator[Throwaway]:
    """A private Redis on a free port; *bind*: its addresses (the first is in the URL and is
    waited on); *prefix*: a command to run it under (``ip netns exec NS``)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="beach-redis-")
    proc: list[subprocess.Popen] = []

    def start() -> None:
        proc.append(subprocess.Popen(
            [*prefix, exe, "--port", str(port), "--bind", " ".join(bind), "--save", "",
             "--appendonly", "no", "--dir", workdir,
             # other addresses are other namespaces of this test, not the outside world
             "--protected-mode", "no" if set(bind) - {"127.0.0.1"} else "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_port(port, host=bind[0])

    def stop() -> None:
        while proc:
            p = proc.pop()
            p.terminate()
            p.wait(10)

    start()
    try:
        yield Throwaway(f"redis://{bind[0]}:{port}/0", port, stop, start)
    finally:
        stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(os.listdir("/usr/lib/postgresql"), reverse=True) if os.path.isdir("/usr/lib/postgresql") else []:
        cand = f"/usr/lib/postgresql/{d}/bin/{name}"
        if os.path.exists(cand):
            return cand
    raise RuntimeError(f"{name} is not installed (Debian: apt-get install postgresql)")


@contextlib.contextmanager
def throwaway_postgres(listen: tuple[str, ...] = ("127.0.0.1",),
                       trust_nets: tuple[str, ...] = ()) -> Iterator[Throwaway]:
    """A private PostgreSQL cluster on a free port (initdb refuses root: run it as 'postgres');
    *listen*: its addresses (the first is in the URL); *trust_nets*: more networks (CIDR) let in
    without a password, for clients in other network namespaces."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    port = free_port()
    datadir = tempfile.mkdtemp(prefix="beach-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(datadir, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_as + [initdb, "-D", datadir, "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if trust_nets:
        with open(f"{datadir}/pg_hba.conf", "a") as hba:
            hba.writelines(f"host all all {net} trust\n" for net in trust_nets)
    opts = f"-p {port} -k {datadir} -c listen_addresses={','.join(listen)} -c fsync=off"

    def start() -> None:
        subprocess.run(run_as + [pg_ctl, "-D", datadir, "-o", opts, "-w", "-l", f"{datadir}/log", "start"],
                       check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run(run_as + [pg_ctl, "-D", datadir, "-m", "fast", "-w", "stop"],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    start()
    try:
        yield Throwaway(f"postgresql://postgres@{listen[0]}:{port}/postgres", port, stop, start)
    finally:
        stop()
        shutil.rmtree(datadir, ignore_errors=True)
