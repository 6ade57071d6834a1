"""The hosts this manager manages: one host session per host, as a ReadyService.

A :class:`HostManager`:

* ``attach(host_session_id, join_code)`` starts managing a host (returns its
  :class:`~beachmanager.transport.session.HostSession`; ``when_ready()`` on it waits for the
  transport); ``detach(host_session_id)`` stops gracefully;
* ``get(id)`` / ``transport_state(id)`` / ``mirror(id)`` / ``bus(id)`` look a host up;
* ``events`` is the session stream (every state change of every session, in order: the one
  answer to "is this host ready here");
* ``publisher`` (``publish_action(host, envelope_bytes)``, ``is_ready(host)`` from the stream)
  and ``subscriber`` (``on("ack"|"state"|"health", fn(host, value))``) are the bus ends.

At start it logs the ICE configuration (servers without credentials, candidate policy,
address hints) with warnings for a missing TURN server or a private address advertised from
a container, then attaches the hosts named by ``--host`` and ``--hosts-file``.  The service
is ready once it can attach (hosts attach in the background; ``/debug/transports`` shows
them).  Stopping closes every transport gracefully, in parallel.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, succeed
from twisted.logger import Logger

from ..bus.bus import HostBus, TopicTable
from ..bus.publisher import PUBLISHES, ManagerPublisher
from ..bus.subscriber import SUBSCRIBES, ManagerSubscriber
from ..cache.mirror import TerminalMirror
from ..protocol import crypto
from ..protocol.agent import AGENT_TOPICS
from ..protocol.extensions import NAMESPACE
from ..service import FatalStartupError, ReadyService
from ..telemetry.logs import fields
from . import ice as ice_mod
from .events import Role, SessionEvents, SessionState
from .liveness import LIVENESS_TOPICS, LivenessKeeper
from .peer import tune_consent, tune_sctp
from .road import RoadHttp
from .session import AttachSettings, HostSession
from .targets import HostTarget

CRASH_HOSTS = 50


class CapacityExceeded(RuntimeError):
    """This instance already manages ``--capacity`` hosts."""


class HostAlreadyAttached(RuntimeError):
    """The host is managed already, with another join code."""


class HostManager(ReadyService):
    log = Logger()

    def __init__(self, ctx, events: SessionEvents, *, targets: tuple[HostTarget, ...] = (),
                 http_client=None, key_cache=None):
        """*targets* are attached at start; with assignment (the product's wiring) the
        assignment service attaches each configured host on its owner instead."""
        super().__init__("hosts", ctx.clock)
        self.ctx = ctx
        self.events = events
        self.targets = tuple(targets)
        self.stop_timeout = max(ctx.config.stop_timeout, 5.0)
        self.machines: dict[str, HostSession] = {}
        self.table = TopicTable.merge(SUBSCRIBES, PUBLISHES, LIVENESS_TOPICS, AGENT_TOPICS)
        self._bus_watchers: list[Callable[[HostBus], None]] = []
        self.subscriber = ManagerSubscriber()
        self.publisher = ManagerPublisher(self.bus, events)
        self.settings: AttachSettings | None = None
        self.road: RoadHttp | None = None
        self._http = http_client
        self._pool = None
        self.keys = key_cache
        #: host -> the ownership epoch this instance holds it at (set by the assignment
        #: service; stamped on actions and told to the harness; pruned with the session)
        self.epochs: dict[str, int] = {}
        self._epoch_listeners: list[Callable[[str], None]] = []
        cfg = ctx.config
        self.liveness = LivenessKeeper(ctx.clock, instance_id=cfg.instance_id,
                                       interval=cfg.liveness_every, timeout=cfg.liveness_timeout,
                                       standby_interval=cfg.liveness_standby_interval,
                                       sessions=lambda: self.machines, epoch_of=self.epoch_of)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Deferred:
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        cfg, reactor = self.ctx.config, self.ctx.reactor
        ice = ice_mod.IceSettings.from_config(cfg)
        if ice.public_host and not ice.public_ip:
            try:
                address = await reactor.resolve(ice.public_host)
            except Exception as e:
                raise FatalStartupError(f"BEACH_ICE_PUBLIC_HOST {ice.public_host!r} does not "
                                        f"resolve: {e}") from None
            ice = ice_mod.IceSettings(ice.configured, ice.disable_stun, ice.transport_policy,
                                      address, ice.public_host, ice.host_addresses)
        if ice.host_addresses:
            ice_mod.install_host_address_override(ice.host_addresses)
        tune_consent()
        tune_sctp()
        overrides = crypto.InsecureOverrides.from_environ(os.environ)
        for line in overrides.messages():
            self.log.critical(line)
        self._log_ice(ice)
        self.settings = AttachSettings(
            road_url=cfg.road_url, ice=ice, poll_interval=cfg.webrtc_poll_interval_ms / 1000.0,
            phase_timeout=cfg.attach_phase_timeout, ready_timeout=cfg.attach_phase_timeout,
            offer_timeout=cfg.attach_offer_timeout, ping_interval=cfg.signaling_ping_interval,
            heartbeat_timeout=cfg.host_heartbeat_timeout, backoff_max=cfg.reconnect_max_delay,
            overrides=overrides, manager_instance_id=cfg.instance_id,
            gate=DeferredSemaphore(cfg.attach_concurrency))
        if self._http is None:
            self._http = self._make_http_client(reactor)
        if self.keys is None:
            from .session_keys import SessionKeyCache

            # Every managed host's key stays cached (a redo needs it again), and all of them
            # may be waiting at once when many hosts attach together.
            room = max(256, cfg.capacity + 16)
            self.keys = SessionKeyCache(max_entries=room, max_pending=room)
        _preload()
        self.road = RoadHttp(cfg.road_url, self._http, self.clock)
        self.ctx.crash.add_state_provider("transports", self.crash_state)
        self.liveness.start()
        targets = self.targets
        for target in targets:
            self.attach(target.host_session_id, target.join_code)
        if targets:
            self.log.info("attaching {count} configured host(s) through {road_url}",
                          count=len(targets), road_url=cfg.road_url)

    def _make_http_client(self, reactor):
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        class QuietPool(HTTPConnectionPool):
            class _factory(HTTPConnectionPool._factory):
                noisy = False

        self._pool = QuietPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 64
        self._pool.cachedConnectionTimeout = 60
        self._pool.retryAutomatically = False
        return HTTPClient(Agent(reactor, connectTimeout=3, pool=self._pool))

    def _log_ice(self, ice: ice_mod.IceSettings) -> None:
        self.log.info("ICE: servers {servers}, candidate policy {policy}, host addresses "
                      "{addresses}, public ip {public_ip}, public host {public_host}",
                      servers=[s.describe() for s in ice.servers], policy=ice.transport_policy,
                      addresses=list(ice.host_addresses) or "auto", public_ip=ice.public_ip,
                      public_host=ice.public_host, effective=ice.effective())
        warnings = ice_mod.startup_warnings(ice, container=ice_mod.in_container(),
                                            addresses=ice_mod.local_addresses())
        for warning in warnings:
            self.log.warn("ICE: {warning}", warning=warning)

    def stop(self) -> Deferred:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self.liveness.stop()
        machines = list(self.machines.values())
        if machines:
            self.log.info("closing {count} host transport(s)", count=len(machines))
            await DeferredList([m.stop() for m in machines], consumeErrors=True)
        self.ctx.crash.remove_state_provider("transports")
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    # -- hosts -----------------------------------------------------------------------------------
    def attach(self, host_session_id: str, join_code: str,
               role: Role = Role.ACTIVE) -> HostSession:
        """Start managing *host_session_id*; idempotent for the same join code.  A
        ``STANDBY`` session joins the host as fully as an active one but never delivers
        (hot failover); it does not count against ``--capacity``."""
        settings, road = self.settings, self.road
        if settings is None or road is None or not self.running:
            raise RuntimeError("the hosts service is not running")
        target = HostTarget(host_session_id, join_code)  # validates nothing; callers did
        existing = self.machines.get(target.host_session_id)
        if existing is not None:
            rejected = existing.state is SessionState.REJECTED
            same_code = existing.uses_join_code(join_code)
            if same_code and not rejected:
                return existing
            if not same_code and not rejected:
                raise HostAlreadyAttached(f"host {host_session_id} is already managed with "
                                          f"another join code; detach it first")
            self._forget(existing)
            existing.stop()  # its loop has ended: this only publishes its removal
        active = sum(1 for m in self.machines.values() if m.role is Role.ACTIVE)
        if role is Role.ACTIVE and active >= self.ctx.config.capacity:
            raise CapacityExceeded(f"this manager already manages {active} hosts "
                                   f"(capacity {self.ctx.config.capacity})")
        cfg = self.ctx.config
        bus = HostBus(host_session_id, self.table, self.ctx.metrics, cfg.instance_id)
        self.subscriber.attach(bus)
        self.liveness.watch(bus)
        for watcher in self._bus_watchers:
            watcher(bus)
        machine = HostSession(host_session_id, join_code, settings, reactor=self.ctx.reactor,
                              clock=self.clock, road=road, keys=self.keys,
                              metrics=self.ctx.metrics, bus=bus, events=self.events, role=role,
                              mirror=TerminalMirror(self.clock.seconds))
        self.machines[host_session_id] = machine
        self.log.info("managing host {host_session_id}", **fields(host_session_id=host_session_id,
                                                                   manager_instance_id=cfg.instance_id))
        machine.start()
        return machine

    def add_bus_watcher(self, watcher: Callable[[HostBus], None]) -> None:
        """Call *watcher* with every host's bus from now on (to subscribe to its topics)."""
        self._bus_watchers.append(watcher)

    def send(self, host_session_id: str, topic: str, payload: bytes) -> bool:
        """Publish one frame in namespace ``manager`` to a host (False: not sent now)."""
        bus = self.bus(host_session_id)
        return bus is not None and bus.publish(NAMESPACE, topic, payload)

    def set_epoch(self, host_session_id: str, epoch: int) -> None:
        """The ownership epoch this instance holds the host at (fencing); listeners (the
        association, which tells the harness once the host is ready here) hear of it."""
        if epoch <= 0 or self.epochs.get(host_session_id) == epoch:
            return
        self.epochs[host_session_id] = epoch
        for listener in list(self._epoch_listeners):
            listener(host_session_id)

    def on_epoch_changed(self, listener: Callable[[str], None]) -> None:
        self._epoch_listeners.append(listener)

    def epoch_of(self, host_session_id: str) -> int | None:
        return self.epochs.get(host_session_id)

    def code_hint(self, host_session_id: str) -> str | None:
        """What a harness may be shown of the host's join code (never the code)."""
        m = self.machines.get(host_session_id)
        return m.attach_code_hint() if m is not None else None

    def promote(self, host_session_id: str) -> bool:
        """Make the host's standby session the active one; False when there is none."""
        m = self.machines.get(host_session_id)
        if m is None or m.role is Role.ACTIVE:
            return False
        m.set_role(Role.ACTIVE, "promoted: this instance owns the host now")
        return True

    def standbys(self) -> set[str]:
        return {h for h, m in self.machines.items() if m.role is Role.STANDBY}

    def detach(self, host_session_id: str) -> Deferred:
        """Stop managing a host; fires when its transport is closed."""
        machine = self.machines.get(host_session_id)
        if machine is None:
            return succeed(None)
        self._forget(machine)
        return machine.stop()

    def _forget(self, machine: HostSession) -> None:
        self.epochs.pop(machine.host_session_id, None)
        self.liveness.forget(machine.host_session_id)
        self.publisher.forget(machine.host_session_id)
        if self.machines.get(machine.host_session_id) is machine:
            del self.machines[machine.host_session_id]
        self.subscriber.forget(machine.host_session_id)

    def get(self, host_session_id: str) -> HostSession | None:
        return self.machines.get(host_session_id)

    def bus(self, host_session_id: str) -> HostBus | None:
        m = self.machines.get(host_session_id)
        return m.bus if m is not None else None

    def mirror(self, host_session_id: str) -> TerminalMirror | None:
        m = self.machines.get(host_session_id)
        return m.mirror if m is not None else None

    def is_ready(self, host_session_id: str) -> bool:
        return self.events.is_ready(host_session_id)

    def transport_state(self, host_session_id: str, detail: bool = False) -> dict[str, Any] | None:
        m = self.machines.get(host_session_id)
        if m is None:
            return None
        out = m.status(detail=detail)
        out["epoch"] = self.epochs.get(host_session_id)  # the ownership epoch held here (active)
        return out

    # -- reporting -------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return self.events.counts()

    def status(self) -> dict[str, Any]:
        out = super().status()
        out["hosts"] = self.counts()
        out["liveness"] = self.liveness.status()
        return out

    def crash_state(self) -> dict[str, Any]:
        """Small: counts, then the first hosts' phase, status and last error."""
        hosts = {}
        for host_id, m in list(self.machines.items())[:CRASH_HOSTS]:
            a = m.current
            hosts[host_id] = {"status": m.state.value, "phase": m.phase, "attempts": m.attempts,
                              "peer_session_id": a.peer_session_id if a else None,
                              "transport_id": a.transport_id if a else None,
                              "last_error": (m.last_error or {}).get("reason")}
        return {"counts": self.counts(), "total": len(self.machines), "hosts": hosts}


def _preload() -> None:
    """Import aiortc and autobahn now, not during the first attach (a few hundred ms)."""
    import aiortc  # noqa: F401
    import autobahn.twisted.websocket  # noqa: F401

