"""The one description of the stack's topology: services, addresses, ports, environment and
dependencies.  ``scripts/stack`` runs it as network namespaces; the two compose files are
rendered from it (:mod:`.compose`), and a test keeps the committed files equal to the render.

Two topologies share the service definitions:

* ``main`` (``docker/compose.yml``): the rewrite manager with Redis and PostgreSQL;
* ``smoke`` (``tests/smoke/docker-compose.smoke.yml`` and ``scripts/stack``): Road, Redis,
  PostgreSQL, two managers sharing them, two devstack hosts whose shells print a timestamped
  marker, a Pong host and a controller agent playing it (profile ``pong``), and a one-shot
  ``attach`` that links the hosts to private beach ``stack`` by code.

Names are host names, as on a compose network.  The keys below are development values for
this smoke topology only (they are in the repository), never for a deployment.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

#: The stack's subnet (``BEACH_STACK_SUBNET`` overrides it).
DEFAULT_SUBNET = "10.231.0.0/24"

SMOKE_SHELL = ("sh -c 'n=0; while :; do n=$((n+1)); echo \"SMOKE-$n-$(date +%s%3N)\"; "
               "sleep 2; done'")
#: One join-code key and one association authority for both managers (shared stores).
JOIN_CODE_KEY = base64.b64encode(b"smoke-stack-join-code-key-32byte").decode()
ASSOCIATION_SEED = b"smoke-stack-association-key-32by"
ASSOCIATION_KEY = base64.b64encode(ASSOCIATION_SEED).decode()
PRIVATE_BEACH = "stack"
ROAD_PORT, MANAGER_PORT, REDIS_PORT, POSTGRES_PORT = 4132, 8081, 6379, 5432
DATABASE = ("beach", "beach", "beach_manager")  # owner (superuser), password, database
#: The managers' least-privilege login (DATABASE_URL): no superuser, owns nothing, may only
#: SET ROLE to the app role (beachmanager/registry/roles.py); the owner migrates.
APP_LOGIN = ("beach_manager_login", "beach-login")
REWRITE_SERVICE = "beach-manager-rewrite"
SMOKE_HEARTBEAT = 5  # seconds between the smoke hosts' Heartbeat frames


def session_id(n: int) -> str:
    return f"5a0c3b1e-0000-4000-8000-{n:012d}"


@dataclass(frozen=True)
class Host:
    """A devstack host of the smoke topology: its fixed session id and join code."""
    name: str
    session_id: str
    join_code: str


HOSTS = (Host("host-1", session_id(1), "SMOKE1"), Host("host-2", session_id(2), "SMOKE2"))
PONG = Host("pong", session_id(41), "PONG41")
AGENT = Host("agent", session_id(42), "AGENT42")


@dataclass(frozen=True)
class Health:
    """How readiness is told: an HTTP GET answering 200, or a TCP server's own probe."""
    kind: str  # "http" | "redis" | "postgres"
    port: int
    path: str = ""


@dataclass(frozen=True)
class Service:
    name: str
    octet: int                       # its address: the subnet's network address + octet
    command: tuple[str, ...]         # our programs: twist plugin and arguments (or, with
                                     # an entrypoint, that program's arguments)
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()      # what it listens on
    published: Mapping[int, int] = field(default_factory=dict)  # compose: host port -> port
    depends_on: Mapping[str, str] = field(default_factory=dict)  # name -> compose condition
    health: Health | None = None
    image: str | None = None         # a stock image (redis, postgres); None: ours
    profile: str | None = None       # compose profile; the stack starts it with --pong
    oneshot: bool = False            # runs to completion (compose restart: "no")
    entrypoint: tuple[str, ...] = ()  # ours: replaces the image's ``twist`` entry point
    aliases: tuple[str, ...] = ()     # more names for it on the network
    init_sql: str = ""               # postgres: run once on the new database as its owner

    @property
    def is_ours(self) -> bool:
        return self.image is None


@dataclass(frozen=True)
class Topology:
    name: str
    services: tuple[Service, ...]
    subnet: str = DEFAULT_SUBNET

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"topology {self.name}: service names repeat: {names}")
        for s in self.services:
            missing = set(s.depends_on) - set(names)
            if missing:
                raise ValueError(f"topology {self.name}: {s.name} depends on unknown {missing}")

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(f"no service {name!r} in topology {self.name} "
                       f"(there are: {', '.join(s.name for s in self.services)})")

    def address(self, name: str) -> str:
        net = ipaddress.ip_network(self.subnet)
        return str(net.network_address + self.service(name).octet)

    @property
    def prefix_length(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def selected(self, pong: bool) -> tuple[Service, ...]:
        return tuple(s for s in self.services if pong or s.profile is None)

    def start_order(self, pong: bool) -> list[Service]:
        """Dependencies first (stable: the description's order among equals)."""
        chosen = {s.name: s for s in self.selected(pong)}
        done: list[Service] = []
        seen: set[str] = set()

        def visit(s: Service, path: tuple[str, ...]) -> None:
            if s.name in seen:
                return
            if s.name in path:
                raise ValueError(f"dependency cycle: {' -> '.join(path + (s.name,))}")
            for dep in s.depends_on:
                if dep in chosen:
                    visit(chosen[dep], path + (s.name,))
            seen.add(s.name)
            done.append(s)

        for s in chosen.values():
            visit(s, ())
        return done


def _redis() -> Service:
    return Service("redis", 11, (), ports=(REDIS_PORT,), health=Health("redis", REDIS_PORT),
                   image="redis:7")


def login_sql() -> str:
    from ...registry.roles import login_role_script

    return login_role_script(*APP_LOGIN)


def _postgres() -> Service:
    user, password, db = DATABASE
    return Service("postgres", 12, (), ports=(POSTGRES_PORT,),
                   environment={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password,
                                "POSTGRES_DB": db},
                   health=Health("postgres", POSTGRES_PORT), image="postgres:15",
                   init_sql=login_sql())


def _manager(name: str, octet: int, instance: str, published: int | None,
             extra: Mapping[str, str], depends: Mapping[str, str],
             aliases: tuple[str, ...] = ()) -> Service:
    user, password, db = DATABASE
    login, login_password = APP_LOGIN
    env = {
        "BEACH_MANAGER_INSTANCE_ID": instance,
        "BEACH_MANAGER_IMPL": "rewrite",
        "BEACH_MANAGER_CAPACITY": "50",
        "PRIVATE_BEACH_MANAGER_URL": f"http://{name}:{MANAGER_PORT}",
        "BEACH_MANAGER_PUBLIC_URL": f"http://{name}:{MANAGER_PORT}",  # what it advertises
        "BEACH_MANAGER_HTTP_ENDPOINT": f"tcp:{MANAGER_PORT}:interface=0.0.0.0",
        "REDIS_URL": f"redis://redis:{REDIS_PORT}/0",
        "DATABASE_URL": f"postgresql://{login}:{login_password}@postgres:{POSTGRES_PORT}/{db}",
        "DATABASE_MIGRATE_URL": f"postgresql://{user}:{password}@postgres:{POSTGRES_PORT}/{db}",
        **extra,
    }
    return Service(name, octet, ("beach-manager",), env, ports=(MANAGER_PORT,),
                   published={published: MANAGER_PORT} if published else {},
                   depends_on={"redis": "service_healthy", "postgres": "service_healthy",
                               **depends},
                   health=Health("http", MANAGER_PORT, "/healthz"), aliases=aliases)


def _host(host: Host, octet: int, command: str, *extra: str,
          profile: str | None = None) -> Service:
    return Service(host.name, octet,
                   ("beach-host-dev", "--road", f"http://road:{ROAD_PORT}",
                    "--session-id", host.session_id, "--join-code", host.join_code,
                    "--command", command, *extra),
                   {"BEACH_MANAGER_AUTHORITY": association_public_key()},
                   depends_on={"road": "service_healthy"}, profile=profile)


def _attach(name: str, octet: int, hosts: tuple[Host, ...], after: tuple[str, ...],
            profile: str | None = None) -> Service:
    """A one-shot: link *hosts* to the private beach by code through manager-1."""
    waits = {n: ("service_completed_successfully" if n.startswith("attach") else "service_healthy")
             for n in after}
    return Service(name, octet, ("--manager", f"http://manager-1:{MANAGER_PORT}",
                                 "--beach", PRIVATE_BEACH,
                                 *(f"{h.session_id}:{h.join_code}" for h in hosts)),
                   depends_on={"manager-1": "service_healthy", **waits,
                               **{h.name: "service_started" for h in hosts}},
                   oneshot=True, profile=profile,
                   entrypoint=("python", "-m", "beachmanager.devstack.stack.attach"))


def association_public_key() -> str:
    from ...auth.bridge import AssociationAuthority

    return AssociationAuthority(ASSOCIATION_SEED).public_key_b64


def smoke() -> Topology:
    cluster = {
        "BEACH_ROAD_URL": f"http://road:{ROAD_PORT}",
        "BEACH_MANAGER_JOIN_CODE_KEY": JOIN_CODE_KEY,
        "BEACH_MANAGER_ASSOCIATION_KEY": ASSOCIATION_KEY,
        "BEACH_WEBRTC_DISABLE_STUN": "1",
        "BEACH_MANAGER_STANDBY": "1",  # hot failover: each host has a warm standby session
        "AUTH_BYPASS": "1",  # the checker reads debug routes: development only
        "BEACH_ENV": "development",
    }
    road = Service("road", 10, ("beach-road-dev", "--port", str(ROAD_PORT), "--interface",
                                "0.0.0.0", "--public-url", f"http://road:{ROAD_PORT}"),
                   ports=(ROAD_PORT,), published={14132: ROAD_PORT},
                   health=Health("http", ROAD_PORT, "/health"))
    managers = (
        # Also the name scripts/manager-url gives for "rewrite" (PRIVATE_BEACH_MANAGER_URL).
        _manager("manager-1", 21, "smoke-manager-1", 18081, cluster, {"road": "service_healthy"},
                 aliases=(REWRITE_SERVICE,)),
        _manager("manager-2", 22, "smoke-manager-2", 18082, cluster, {"road": "service_healthy"}),
    )
    hosts = tuple(_host(h, 31 + i, SMOKE_SHELL, "--heartbeat-interval", str(SMOKE_HEARTBEAT))
                  for i, h in enumerate(HOSTS))
    pong = _host(PONG, 41, "python -m beachmanager.devstack.pong --seed 7", profile="pong")
    agent = _host(AGENT, 42, "/bin/sh", "--agent-target", PONG.session_id, "--agent-token", "dev",
                  "--agent-driver", "pong", profile="pong")
    attach = _attach("attach", 50, HOSTS, ("manager-1", "manager-2"))
    attach_pong = _attach("attach-pong", 51, (PONG, AGENT), ("attach",), profile="pong")
    return Topology("smoke", (road, _redis(), _postgres(), *managers, *hosts, attach, pong,
                              agent, attach_pong))


def main_stack() -> Topology:
    manager = _manager("beach-manager-rewrite", 21, "beach-manager-rewrite-1", 8081,
                       {"BEACH_ROAD_URL": "${BEACH_ROAD_URL:-http://beach-road:4132}"}, {})
    return Topology("main", (manager, _redis(), _postgres()))


__all__ = ["AGENT", "HOSTS", "PONG", "PRIVATE_BEACH", "Health", "Host", "Service", "Topology",
           "main_stack", "smoke"]
