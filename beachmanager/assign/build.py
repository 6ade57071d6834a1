"""Assemble the assignment service from the configuration and the parts it is handed.

* Redis (``REDIS_URL``, the :class:`~beachmanager.registry.redis_conn.RedisService`): the
  shared store, so several instances split the hosts; without it the in-memory twin (one
  instance owns everything it has room for).
* PostgreSQL (``DATABASE_URL``): the audit mirror (``manager_instance``,
  ``manager_assignment``, ``manager_assignment_event``); without it an in-memory one.
* The transport (``hosts``) attaches what this instance owns; configured hosts
  (``--host``/``--hosts-file``) become the cluster's hosts: each is placed by rendezvous
  hashing and attached by its owner only.  Readiness comes from the session stream.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..context import ManagerContext
from ..service import ReadyService
from ..transport.events import SessionEvents
from .attacher import HostsAttacher
from .membership import timings
from .service import AssignmentService, AssignmentStore, Audit

if TYPE_CHECKING:
    from ..api.http_service import HttpService
    from ..config import Config
    from ..registry.postgres_conn import PostgresService
    from ..registry.redis_conn import RedisService
    from ..registry.store import RegistryStore
    from ..transport.hosts import HostManager
    from ..transport.targets import HostTarget


def endpoint_of(config: Config, http: HttpService | None) -> str:
    """This instance's advertised URL: ``--public-url``, else the HTTP listener's address."""
    if config.public_url:
        return str(config.public_url)
    if http is None:
        return ""
    try:
        host, port = http.address()
    except Exception:  # not listening yet
        return ""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def redis_prefix(cfg: Config) -> str:
    """The Redis key prefix of this cluster's assignment keys.

    Instances that share a database are one cluster (they share sessions and leases), so the
    prefix is derived from the database's address and name: two clusters (or two test runs)
    sharing one Redis never see each other's members.  Without a database: one cluster per Redis.
    """
    from urllib.parse import urlsplit

    from .store_redis import DEFAULT_PREFIX

    url = cfg.database_url
    if not url:
        return DEFAULT_PREFIX
    parts = urlsplit(url)
    where = f"{parts.hostname or ''}:{parts.port or 5432}/{parts.path.lstrip('/')}"
    tag = hashlib.sha1(where.encode()).hexdigest()[:12]
    return f"beach:{{assign:{tag}}}:"


def build_assignment(ctx: ManagerContext, *, events: SessionEvents, hosts: HostManager | None,
                     registry_store: RegistryStore | None, redis: RedisService | None,
                     postgres: PostgresService | None, http: HttpService | None,
                     depends_on: Iterable[ReadyService] = (),
                     targets: Iterable[HostTarget] = ()) -> AssignmentService:
    cfg = ctx.config
    targets = tuple(targets)
    t = timings(cfg.membership_interval, cfg.membership_ttl, cfg.membership_dead_after)
    dead_after_ms = int(t.dead_after * 1000)

    def store_factory() -> AssignmentStore:  # the connection exists once the Redis service started
        if redis is not None:
            from .store_redis import RedisAssignmentStore

            return RedisAssignmentStore(redis.shared, dead_after_ms=dead_after_ms,
                                        prefix=redis_prefix(cfg))
        from .store_memory import MemoryAssignmentStore

        return MemoryAssignmentStore(ctx.clock, dead_after_ms=dead_after_ms)

    def audit_factory() -> Audit:
        if postgres is not None:
            from .audit import PostgresAudit

            return PostgresAudit(postgres)
        from .audit import MemoryAudit

        return MemoryAudit()

    waits = list(depends_on)
    if http is not None and not cfg.public_url:
        waits.append(http)  # the advertised endpoint comes from the listener
    attacher = HostsAttacher(hosts, events, registry_store, targets) if hosts is not None else None
    service = AssignmentService(
        ctx.clock, ctx.metrics, instance_id=cfg.instance_id, capacity=cfg.capacity,
        endpoint=lambda: endpoint_of(cfg, http), timings=t, store_factory=store_factory,
        audit_factory=audit_factory, events=events, attacher=attacher, depends_on=waits,
        drain_timeout=max(1.0, cfg.stop_timeout - 1.0),
        initial_hosts=[x.host_session_id for x in targets],
        rebalance_batch=cfg.rebalance_batch,
        standbys=attacher if cfg.standby and attacher is not None else None,
        failover_min_interval=cfg.failover_min_interval)
    return service
