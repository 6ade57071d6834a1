"""Assemble the assignment service from the configuration (``ctx.parts["assign"]``).

* Redis (``REDIS_URL``): the shared store, so several instances split the hosts; without
  it the in-memory twin (one instance owns everything it has room for).
* PostgreSQL (``DATABASE_URL``): the audit mirror (``manager_instance``,
  ``manager_assignment``, ``manager_assignment_event``); without it an in-memory one.
* The transport (``parts["hosts"]``) attaches what this instance owns; configured hosts
  (``--host``/``--hosts-file``) become the cluster's hosts: each is placed by rendezvous
  hashing and attached by its owner only.
"""

from __future__ import annotations

import hashlib
import socket

from ..context import ManagerContext
from .attacher import HostsAttacher
from .membership import timings
from .service import AssignmentService


def endpoint_of(ctx: ManagerContext) -> str:
    """This instance's advertised URL: ``--public-url``, else the HTTP listener's address."""
    if ctx.config.get("public_url"):
        return ctx.config.public_url
    http = ctx.parts.get("http")
    try:
        host, port = http.address()
    except Exception:
        return ""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def local_base_of(ctx: ManagerContext) -> str:
    """How this instance reaches its own HTTP API (the relay replays forwarded requests there)."""
    host, port = ctx.parts["http"].address()
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def redis_prefix(cfg) -> str:
    """The Redis key prefix of this cluster's assignment keys.

    Instances that share a database are one cluster (they share sessions and leases), so the
    prefix is derived from the database's address and name: two clusters (or two test runs)
    sharing one Redis never see each other's members.  Without a database: one cluster per Redis.
    """
    from urllib.parse import urlsplit

    from .store_redis import DEFAULT_PREFIX

    url = cfg.get("database_url")
    if not url:
        return DEFAULT_PREFIX
    parts = urlsplit(url)
    where = f"{parts.hostname or ''}:{parts.port or 5432}/{parts.path.lstrip('/')}"
    tag = hashlib.sha1(where.encode()).hexdigest()[:12]
    return f"beach:{{assign:{tag}}}:"


def build_assignment(ctx: ManagerContext, targets: tuple = ()) -> AssignmentService:
    cfg = ctx.config
    t = timings(cfg.get("heartbeat_interval", 5.0), cfg.get("membership_ttl", 15.0))
    dead_after_ms = int(t.dead_after * 1000)

    def store_factory():
        redis = ctx.parts.get("redis")
        if redis is not None:
            from .store_redis import RedisAssignmentStore

            return RedisAssignmentStore(redis.conn, dead_after_ms=dead_after_ms,
                                        prefix=redis_prefix(cfg))
        from .store_memory import MemoryAssignmentStore

        return MemoryAssignmentStore(ctx.clock, dead_after_ms=dead_after_ms)

    def audit_factory():
        postgres = ctx.parts.get("postgres")
        if postgres is not None:
            from .audit import PostgresAudit

            return PostgresAudit(postgres)
        from .audit import MemoryAudit

        return MemoryAudit()

    def depends_on():
        names = ["redis", "postgres", "registry", "hosts"]
        if not cfg.get("public_url"):
            names.append("http")  # the advertised endpoint comes from the listener
        return [ctx.parts[n] for n in names if n in ctx.parts and hasattr(ctx.parts[n], "whenReady")]

    def relay_factory(store):
        redis = ctx.parts.get("redis")
        if redis is None or not cfg.get("redis_url"):
            return None
        from ..registry.redis_conn import connect
        from .relay import Relay

        return Relay(redis.conn, connect(cfg.redis_url, blocking=True), prefix=store.prefix,
                     instance_id=cfg.instance_id, clock=ctx.clock,
                     local_base=lambda: local_base_of(ctx))

    hosts = ctx.parts.get("hosts")
    attacher = None
    if hosts is not None:
        registry = ctx.parts.get("registry")
        attacher = HostsAttacher(hosts, getattr(registry, "store", None), targets)
    service = AssignmentService(
        ctx.clock, ctx.metrics, instance_id=cfg.instance_id, capacity=cfg.capacity,
        endpoint=lambda: endpoint_of(ctx), timings=t, store_factory=store_factory,
        audit_factory=audit_factory, attacher=attacher, depends_on=depends_on,
        drain_timeout=max(1.0, cfg.stop_timeout - 1.0),
        initial_hosts=[x.host_session_id for x in targets], relay_factory=relay_factory,
        rebalance_batch=cfg.get("rebalance_batch", 5))
    return service
