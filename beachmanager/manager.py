"""The manager's root service and the assembly of its children.

Children are added in start order; they stop in reverse order, one at a time:
the HTTP API first (stop taking work), then the parts that drain, then the stores.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from .config import Config
from .context import ManagerContext
from .service import OrderedMultiService, ReadyService
from .telemetry.crash import CrashReporter
from .telemetry.logs import bridge_stdlib_logging
from .telemetry.metrics import Metrics
from .transport.targets import configured_targets


def exit_process(reactor, code: int) -> None:
    """Stop the reactor (running every shutdown trigger), then exit with *code*."""

    def _hard_exit() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    reactor.addSystemEventTrigger("after", "shutdown", _hard_exit)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


class ManagerService(OrderedMultiService):
    """Root of the tree: logs start-up, installs the crash hook, exits on a fatal start error."""

    log = Logger()

    def __init__(self, ctx: ManagerContext, on_fatal=None):
        super().__init__("beach-manager", ctx.clock, stop_timeout=ctx.config.stop_timeout)
        self.ctx = ctx
        ctx.root = self
        self.on_fatal = on_fatal or (lambda code: exit_process(ctx.reactor, code))
        self.fatal_error: Failure | None = None

    def startService(self) -> None:
        ctx, cfg = self.ctx, self.ctx.config
        ctx.started_at = ctx.clock.seconds()
        bridge_stdlib_logging()
        ctx.crash.install(getattr(ctx.reactor, "_asyncioEventloop", None))
        ctx.crash.add_state_provider("readiness", lambda: self.readiness()[1])
        ctx.metrics.describe_instance(cfg.instance_id, cfg.impl, ctx.version)
        self.log.info("starting beach-manager {version} as {manager_instance_id} (impl {impl}, "
                      "capacity {capacity})", version=ctx.version, manager_instance_id=cfg.instance_id,
                      impl=cfg.impl, capacity=cfg.capacity, settings=cfg.describe())
        if cfg.stores == {"runtime": "memory", "registry": "memory"}:
            self.log.warn("no REDIS_URL or DATABASE_URL: running as a single instance on in-memory "
                          "stores (nothing survives a restart)")
        else:
            self.log.info("stores: runtime={runtime}, registry={registry}", **cfg.stores)
        if cfg.impl == "legacy":
            self.log.warn("BEACH_MANAGER_IMPL=legacy: launch scripts will route to the legacy "
                          "manager; this process is the rewrite")
        # Watch before starting: a part that fails because another failed must not be
        # blamed first, so the root's watchers run ahead of the parts' own.
        for child in self:
            if isinstance(child, ReadyService) and child.critical:
                child.whenReady().addErrback(self._fatal, child.name)
        super().startService()

    def _fatal(self, failure: Failure, name: str) -> None:
        if self.fatal_error is not None:  # the process is already on its way out
            self.log.error("{service} also failed to start: {error}", service=name,
                           error=failure.getErrorMessage())
            return
        self.fatal_error = failure
        self.log.critical("fatal start-up error in {service}: {error}; exiting with status 1",
                          service=name, error=failure.getErrorMessage())
        self.on_fatal(1)

    def stopService(self):
        self.ctx.crash.uninstall()
        return super().stopService()


def build_manager(config: Config, reactor, clock=None, metrics: Metrics | None = None,
                  on_fatal=None) -> ManagerService:
    from .api.app import build_site
    from .api.http_service import HttpService
    from .telemetry.loop_lag import LoopLagMonitor

    clock = clock or reactor
    if config.get("dev_road"):  # the embedded dev Road replaces --road-url
        config = config.replace(road_url=f"http://127.0.0.1:{config.dev_road}")
    ctx = ManagerContext(config=config, reactor=reactor, clock=clock,
                         metrics=metrics or Metrics(), crash=CrashReporter())
    root = ManagerService(ctx, on_fatal=on_fatal)
    if config.get("dev_road"):
        from .devstack.embedded import add_dev_road

        add_dev_road(ctx, root)  # first in, last out: hosts and transports stop before it
    for part in _store_services(config, clock):
        part.setServiceParent(root)
        ctx.parts[part.name] = part
    _add_registry_and_auth(ctx, root)
    if config.get("dev_hosts"):
        from .devstack.embedded import add_dev_hosts

        add_dev_hosts(ctx, root)  # stops after the manager's transports to them
    _add_hosts(ctx, root)
    _add_controller(ctx, root)
    _add_assignment(ctx, root, configured_targets(config))
    LoopLagMonitor(clock, ctx.metrics.reactor_lag_seconds).setServiceParent(root)
    http = HttpService(reactor, clock, config.http_endpoint, lambda: build_site(ctx))
    http.setServiceParent(root)
    ctx.parts["http"] = http
    return root


def _add_registry_and_auth(ctx: ManagerContext, root: ManagerService) -> None:
    """The registry (PostgreSQL or memory), controller leases and the JWT auth part."""
    from .auth.service import AuthService
    from .controller.leases import Leases
    from .registry.service import build_registry

    registry = build_registry(ctx.config, ctx.clock, ctx.parts.get("postgres"))
    auth = AuthService(ctx.config, ctx.reactor, ctx.clock, ctx.metrics)
    for part in (registry, auth):
        part.setServiceParent(root)
        ctx.parts[part.name] = part
    ctx.parts["leases"] = Leases(registry.store, ctx.clock)


def _add_hosts(ctx: ManagerContext, root: ManagerService) -> None:
    """The hosts this manager joins as a Beach client: transports, mirrors, bus (``parts["hosts"]``)."""
    from .transport.hosts import HostManager

    hosts = HostManager(ctx)
    hosts.setServiceParent(root)
    ctx.parts["hosts"] = hosts


def _add_controller(ctx: ManagerContext, root: ManagerService) -> None:
    """Action queues, delivery over the bus and ack/state/health ingestion (``parts["controller"]``)."""
    from .controller.service import ControllerService

    controller = ControllerService(ctx)
    controller.setServiceParent(root)
    ctx.parts["controller"] = controller


def _add_assignment(ctx: ManagerContext, root: ManagerService, targets) -> None:
    """Membership and host placement (``parts["assign"]``); added after the hosts and the
    controller so that on SIGTERM it drains (hands hosts over) before they stop.  It is
    given ``--host``/``--hosts-file``: each configured host is attached by its owner only."""
    from .assign.build import build_assignment

    assign = build_assignment(ctx, targets)
    assign.stop_timeout = ctx.config.stop_timeout
    assign.setServiceParent(root)
    ctx.parts["assign"] = assign


def _store_services(config: Config, clock) -> list[Any]:
    parts: list[Any] = []
    if config.database_url:
        from .registry.migrate import enter_app_role, migrate_in_thread
        from .registry.postgres_conn import PostgresService

        owner_url = config.database_migrate_url or config.database_url
        parts.append(PostgresService(config.database_url, clock,
                                     prepare=lambda: migrate_in_thread(owner_url),
                                     configure=enter_app_role))
    if config.redis_url:
        from .registry.redis_conn import RedisService

        parts.append(RedisService(config.redis_url, clock))
    return parts
