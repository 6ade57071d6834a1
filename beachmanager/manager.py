"""The manager's root service and the assembly of its children: the composition root.

:func:`build_manager` constructs every part once, hands each its collaborators through
its constructor and records them in one typed container, :class:`ManagerParts` (the whole
object graph, readable in one place; nothing is looked up by name at run time).

Children are added in start order; they stop in reverse order, one at a time:
the HTTP API first (stop taking work), then the parts that drain, then the stores.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from twisted.logger import Logger
from twisted.python.failure import Failure

from .config import Config
from .context import ManagerContext
from .service import OrderedMultiService, ReadyService
from .telemetry.crash import CrashReporter
from .telemetry.logs import bridge_stdlib_logging
from .telemetry.metrics import Metrics
from .transport.events import SessionEvents
from .transport.targets import configured_targets

if TYPE_CHECKING:
    from .api.deps import ApiDeps
    from .api.http_service import HttpService
    from .api.tenancy import SessionBeaches
    from .api.ui.hub import ConsoleHub
    from .assign.intake import HostIntake
    from .assign.service import AssignmentService
    from .auth.service import AuthService
    from .bus.association import AssociationPublisher
    from .controller.agent_gateway import AgentGateway
    from .controller.delivery import Publisher
    from .controller.leases import Leases
    from .controller.service import ControllerService
    from .devstack.embedded import DevHosts
    from .devstack.road.service import RoadService
    from .registry.postgres_conn import PostgresService
    from .registry.redis_conn import RedisService
    from .registry.service import RegistryService
    from .transport.hosts import HostManager


@dataclass
class ManagerParts:
    """Every part of one manager, built once by :func:`build_manager`."""

    events: SessionEvents
    registry: RegistryService
    auth: AuthService
    leases: Leases
    hosts: HostManager
    controller: ControllerService
    assign: AssignmentService
    intake: HostIntake
    session_beaches: SessionBeaches
    http: HttpService
    associations: AssociationPublisher
    agents: AgentGateway | None = None
    console: ConsoleHub | None = None
    postgres: PostgresService | None = None
    redis: RedisService | None = None
    dev_road: RoadService | None = None
    dev_hosts: DevHosts | None = None

    def stores(self) -> dict[str, Any]:
        # named by ReadyService.__init__; Twisted's Service declares ``name = None``
        return {cast(str, s.name): s.status() for s in (self.postgres, self.redis) if s is not None}


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

    #: Set by :func:`build_manager` once every part exists.
    parts: ManagerParts
    api: ApiDeps

    def __init__(self, ctx: ManagerContext, on_fatal=None):
        super().__init__("beach-manager", ctx.clock, stop_timeout=ctx.config.stop_timeout)
        self.ctx = ctx
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
                child.whenReady().addErrback(self._fatal, cast(str, child.name))
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
                  on_fatal=None, publisher: Publisher | None = None) -> ManagerService:
    """The manager for *config*.  *publisher* replaces the controller's bus end (default: the
    hosts service's publisher); tests of the HTTP surface hand in a recording one."""
    from .api.access import BeachAccess, MemberRoles
    from .api.app import build_site
    from .api.deps import ApiDeps
    from .api.http_service import HttpService
    from .api.tenancy import SessionBeaches
    from .api.ui.hub import ConsoleHub
    from .api.ui.view import ConsoleSource
    from .assign.build import build_assignment
    from .assign.intake import HostIntake
    from .auth.service import AuthService
    from .controller.leases import Leases
    from .controller.service import ControllerService, memory_stores, redis_stores
    from .ratelimit import RateLimits
    from .registry.service import build_registry
    from .telemetry.loop_lag import LoopLagMonitor
    from .transport.hosts import HostManager

    clock = clock or reactor
    if config.dev_road:  # the embedded dev Road replaces --road-url
        config = config.replace(road_url=f"http://127.0.0.1:{config.dev_road}")
    ctx = ManagerContext(config=config, reactor=reactor, clock=clock,
                         metrics=metrics or Metrics(), crash=CrashReporter())
    root = ManagerService(ctx, on_fatal=on_fatal)
    deps: ApiDeps  # built last, once every part exists (the site is built when HTTP starts)

    def add(part):
        part.setServiceParent(root)
        return part

    dev_road = None
    if config.dev_road:
        from .devstack.embedded import dev_road as make_dev_road

        dev_road = add(make_dev_road(ctx))  # first in, last out
    postgres = add(_postgres(config, clock)) if config.database_url else None
    redis = add(_redis(config, clock)) if config.redis_url else None
    registry = add(build_registry(config, clock, postgres))
    auth = add(AuthService(config, reactor, clock, ctx.metrics))
    leases = Leases(registry.store, clock)
    events = SessionEvents(clock.seconds)
    http = HttpService(reactor, clock, config.http_endpoint, lambda: build_site(deps))
    session_beaches = SessionBeaches(registry.store, clock)
    access = BeachAccess(auth, session_beaches, MemberRoles(registry.store, clock))
    limits = RateLimits(clock, config, ctx.metrics)
    hosts = HostManager(ctx, events)
    stores = (redis_stores(redis, config.action_queue_bound) if redis is not None
              else memory_stores(clock, config.action_queue_bound))
    controller = ControllerService(ctx, events=events, publisher=publisher or hosts.publisher,
                                   subscriber=hosts.subscriber, stores=stores,
                                   store=registry.store, leases=leases, epoch_of=hosts.epoch_of)
    assign = build_assignment(ctx, events=events, hosts=hosts, registry_store=registry.store,
                              redis=redis, postgres=postgres, http=http,
                              depends_on=[p for p in (redis, postgres, registry, hosts) if p],
                              targets=configured_targets(config))
    assign.stop_timeout = config.stop_timeout
    hosts.publisher.deliver_only_while(assign.lease_held)
    associations = _associations(ctx, events, hosts, assign, session_beaches, http)
    agents = _agent_gateway(ctx, auth, leases, access, limits, controller, hosts, redis,
                            associations)
    intake = HostIntake(config.instance_id, clock, registry.store, events, hosts, assign)
    dev_hosts = None
    if config.dev_hosts:
        from .devstack.embedded import DevHosts

        # added before the transports: it stops after the manager's transports to its hosts
        dev_hosts = add(DevHosts(ctx, config.dev_hosts, tuple(config.dev_host_command.split()),
                                 store=registry.store, intake=intake, events=events,
                                 authority=associations.authority.authority.public_key,
                                 depends_on=[p for p in (dev_road, registry, hosts, assign) if p]))
    add(hosts)
    add(controller)
    add(assign)  # after hosts and controller: on SIGTERM it hands hosts over before they stop
    add(agents)  # after the stores (its relay reads Redis)
    add(LoopLagMonitor(clock, ctx.metrics.reactor_lag_seconds))
    # just before the HTTP API: it stops right after it, closing the console's open streams
    console = add(ConsoleHub(ConsoleSource(ctx, events, hosts, controller, assign), clock))
    add(http)
    root.parts = ManagerParts(
        events=events, registry=registry, auth=auth, leases=leases, hosts=hosts,
        controller=controller, assign=assign, intake=intake,
        session_beaches=session_beaches, http=http, associations=associations, agents=agents,
        postgres=postgres, console=console,
        redis=redis, dev_road=dev_road, dev_hosts=dev_hosts)
    parts = root.parts
    deps = root.api = ApiDeps(ctx=ctx, readiness=root.readiness, auth=auth, registry=registry.store,
                   leases=leases, session_beaches=parts.session_beaches, access=access, limits=limits, hosts=hosts,
                   events=events, controller=controller, assign=assign, intake=intake,
                   console=console, stores=parts.stores)
    return root


def _associations(ctx: ManagerContext, events: SessionEvents, hosts: HostManager,
                  assign: AssignmentService, session_beaches: SessionBeaches,
                  http: HttpService) -> AssociationPublisher:
    """The association handshake's sender, with the cluster's signing key: it tells a host's
    harness again whenever what it says changes (readiness, epoch, standby, private beach)."""
    from .assign.build import endpoint_of
    from .auth.bridge import AssociationAuthority
    from .bus.association import AssociationPublisher

    cfg = ctx.config
    authority = AssociationAuthority(cfg.association_key)
    if authority.ephemeral and (cfg.redis_url or cfg.database_url):
        ManagerService.log.warn(
            "no BEACH_MANAGER_ASSOCIATION_KEY: this instance signs associations with a key of "
            "its own ({key_id}); hosts that fail over to or from another instance will refuse "
            "its associations. Give every instance the same key.",
            key_id=authority.authority.key_id)
    associations = AssociationPublisher(
        ctx.clock, authority, instance_id=cfg.instance_id,
        manager_url=lambda: endpoint_of(cfg, http), bridge_ttl=cfg.bridge_token_ttl,
        idle_snapshot_interval_ms=cfg.idle_snapshot_interval_ms, events=events,
        beaches_of=session_beaches.lookup, epoch_of=hosts.epoch_of, code_hint_of=hosts.code_hint,
        standby_of=assign.standby_of, send=hosts.send, metrics=ctx.metrics)
    hosts.add_bus_watcher(associations.watch)
    hosts.on_epoch_changed(associations.associate)
    assign.on_standby_changed(associations.associate)
    session_beaches.on_change(associations.associate)
    return associations


def _agent_gateway(ctx, auth, leases, access, limits, controller, hosts, redis, associations):
    """Controller agents on the bus: checked like REST calls (membership included), sent down
    the same path."""
    from .api.route_table import CONTRIBUTOR
    from .controller.agent_gateway import AgentGateway

    def authenticate(token: str):
        return auth.authenticate("Bearer " + token, "bus:agent")

    relay_factory = None
    if redis is not None:  # several instances may share the stores: relay across them
        from .controller.agent_relay import AgentRelay

        def relay_factory():
            return AgentRelay(redis.shared, redis.dedicated("agents"), ctx.clock,
                              ctx.config.instance_id)

    agents = AgentGateway(ctx.clock, authenticate=authenticate,
                          authorize=lambda p, scope: auth.authorize(p, scope, "bus:agent"),
                          tenant_of=lambda p, s, w: access.in_session(p, s, w, CONTRIBUTOR,
                                                                      "bus:agent"),
                          leases=leases, submit=controller.submit, send=hosts.send,
                          check_bridge_token=associations.check_bridge_token,
                          metrics=ctx.metrics, relay_factory=relay_factory, limits=limits,
                          describe=controller.describe)
    hosts.add_bus_watcher(agents.watch)
    hosts.subscriber.on("ack", agents.target_ack)
    hosts.subscriber.on("state", agents.target_state)
    return agents


def _postgres(config: Config, clock) -> PostgresService:
    from .registry.migrate import enter_app_role, migrate_in_thread
    from .registry.postgres_conn import PostgresService

    owner_url = config.database_migrate_url or config.database_url
    return PostgresService(config.database_url, clock, prepare=lambda: migrate_in_thread(owner_url),
                           configure=enter_app_role)


def _redis(config: Config, clock) -> RedisService:
    from .registry.redis_conn import RedisService

    return RedisService(config.redis_url, clock)
