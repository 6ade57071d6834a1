"""Render a :class:`~.topology.Topology` as a Docker Compose file.

The committed ``docker/compose.yml`` and ``tests/smoke/docker-compose.smoke.yml`` are this
render (``python -m beachmanager.devstack.stack compose --write``); a test fails when they
drift from the description, so the namespace stack and the compose files cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import topology as topo

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Target:
    topology: topo.Topology
    path: Path
    project: str
    header: str
    context: str          # the build context, relative to the file
    image: str | None     # tag for our image (shared by our services)
    main: bool = False    # the deployment file: container names, .env, log volumes


MAIN_HEADER = """\
# The rewrite manager with Redis and PostgreSQL.  From the repository root:
#   cp .env.example .env && docker compose -f docker/compose.yml up --build
# Launch scripts choose the manager URL with scripts/manager-url (BEACH_MANAGER_IMPL toggle).
"""
SMOKE_HEADER = """\
# The smoke topology (Road, Redis, PostgreSQL, two managers, two hosts; profile "pong": a Pong
# host and a controller agent playing it), on published ports 14132 (Road), 18081 and 18082
# (the managers).  scripts/stack runs the same topology as network namespaces, no Docker
# needed.  With Docker, from the repository root:
#
#   docker compose -f tests/smoke/docker-compose.smoke.yml up --build -d
#   python3 tests/smoke/run_smoke.py --external --manager-url http://127.0.0.1:18081 \\
#       --manager-url http://127.0.0.1:18082 --host-id 5a0c3b1e-0000-4000-8000-000000000001
#   docker compose -f tests/smoke/docker-compose.smoke.yml down
#
# AUTH_BYPASS=1 opens the debug routes the checker reads: development only.
"""
GENERATED = ("# Generated from beachmanager/devstack/stack/topology.py by\n"
             "#   python -m beachmanager.devstack.stack compose --write\n"
             "# Edit the description, not this file (a test compares the two).\n")


def targets() -> list[Target]:
    return [
        Target(topo.main_stack(), ROOT / "docker" / "compose.yml", "beach-manager",
               MAIN_HEADER, "..", None, main=True),
        Target(topo.smoke(), ROOT / "tests" / "smoke" / "docker-compose.smoke.yml",
               "beach-smoke", SMOKE_HEADER, "../..", "beach-manager:smoke"),
    ]


def _escape(arg: str) -> str:
    return arg.replace("$", "$$")  # compose interpolates $; commands mean a literal one


def _healthcheck(s: topo.Service, dbuser: str, dbname: str) -> dict[str, Any] | None:
    h = s.health
    if h is None:
        return {"disable": True} if s.is_ours and not s.oneshot else None
    if h.kind == "redis":
        test: list[str] = ["CMD", "redis-cli", "ping"]
    elif h.kind == "postgres":
        test = ["CMD-SHELL", f"pg_isready -U {dbuser} -d {dbname}"]
    else:
        test = ["CMD", "python", "-c", "import urllib.request,sys; sys.exit(urllib.request."
                f"urlopen('http://127.0.0.1:{h.port}{h.path}', timeout=2).status != 200)"]
    return {"test": test, "interval": "2s", "timeout": "3s", "retries": 30}


def service(target: Target, s: topo.Service) -> dict[str, Any]:
    user, _, db = topo.DATABASE
    out: dict[str, Any] = {}
    if s.is_ours:
        if target.main:
            out["container_name"] = s.name
        out["build"] = {"context": target.context, "dockerfile": "docker/Dockerfile"}
        if target.image:
            out["image"] = target.image
        if s.entrypoint:
            out["entrypoint"] = list(s.entrypoint)
        if s.command and not (target.main and s.command == ("beach-manager",)):
            out["command"] = [_escape(a) for a in s.command]
    else:
        out["image"] = s.image
        if s.name == "redis":
            out["command"] = ["redis-server", "--save", "", "--appendonly", "no"]
    if s.profile:
        out["profiles"] = [s.profile]
    if s.published:
        out["ports"] = [f"{outer}:{inner}" for outer, inner in s.published.items()]
    if target.main and s.is_ours:
        out["env_file"] = [{"path": "../.env", "required": False}]
    if s.environment:
        out["environment"] = dict(s.environment)
    if target.main and s.is_ours:
        out["volumes"] = [f"../logs/{s.name}:/var/log/{s.name}"]
    if s.aliases:
        out["networks"] = {"default": {"aliases": list(s.aliases)}}
    if s.oneshot:
        out["restart"] = "no"
    health = _healthcheck(s, user, db)
    if health:
        out["healthcheck"] = health
    if s.depends_on:
        out["depends_on"] = {name: {"condition": cond} for name, cond in s.depends_on.items()}
    if s.init_sql:  # the image runs /docker-entrypoint-initdb.d/*.sql once, on the new database
        out["configs"] = [{"source": f"{s.name}-init", "target": INITDB_TARGET}]
    return out


#: Where the postgres image looks for its first-start SQL (inline ``configs``: Compose 2.23+).
INITDB_TARGET = "/docker-entrypoint-initdb.d/10-least-privilege-login.sql"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the first-start SQL) as literal blocks."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(target: Target) -> str:
    doc: dict[str, Any] = {"name": target.project,
                           "services": {s.name: service(target, s) for s in target.topology.services}}
    configs = {f"{s.name}-init": {"content": _escape(s.init_sql)}
               for s in target.topology.services if s.init_sql}
    if configs:
        doc["configs"] = configs
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, default_flow_style=False)
    return target.header + GENERATED + body


def write(check: bool = False) -> list[Path]:
    """Write every compose file (or, with *check*, list those that differ from the render)."""
    stale = []
    for t in targets():
        text = render(t)
        current = t.path.read_text() if t.path.exists() else None
        if current != text:
            stale.append(t.path)
            if not check:
                t.path.write_text(text)
    return stale


__all__ = ["Target", "render", "service", "targets", "write"]
