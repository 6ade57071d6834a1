"""The assignment service: which hosts this instance owns, kept true on every tick.

* **Placement** (:meth:`AssignmentService.assign`): one atomic store call; sticky while
  the owner lives; a full cluster raises :class:`CapacityExhausted` (HTTP 503) and counts
  ``assignment_refused_total`` — nothing is queued.
* **Tick** (every ``timings.tick`` s): sweep hosts away from members that missed two
  heartbeats (``failover`` log with old/new ids and the hosts), then *reconcile*: attach
  every host the store says we own, detach every host we hold but no longer own (a peer
  took it while we were unreachable: the store is the only truth).
* **Drain** (``stopService``, i.e. SIGTERM): publish ``DRAINING``, hand each host to the
  next owner in its ranking, keep our transport until the new owner reports it ready
  (make-before-break), leave when empty or when the drain time is spent (whatever is left
  is orphaned at once and taken by the survivors' sweeps).

The transport is reached through an :class:`Attacher`, which starts or stops a host's
session and nothing more: the session retries its own attach (the one retry policy), and
its readiness reaches this service through the session stream
(:class:`~beachmanager.transport.events.SessionEvents`), which it mirrors to the shared
store so that any instance (and ``/debug/assignments``) can tell where a host is ready.
A slot records ownership only (held or handing over); readiness is read from the stream.
A session whose join code is refused, or whose code nobody knows, is released (placed
again when it registers or is configured again); a session that could not be started
(e.g. the registry did not answer) is started again on the next tick.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from twisted.internet import defer
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    DeferredLock,
    ensureDeferred,
)
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .._aio import background
from ..retry import backoff, retrying
from ..service import FatalStartupError, ReadyService, with_timeout
from ..telemetry.logs import fields
from ..telemetry.metrics import Metrics
from ..transport.events import Role, SessionChange, SessionEvents, SessionState
from . import standby
from .attacher import NoJoinCode
from .failover import FailoverTracker
from .membership import STORE_TIMEOUT, Membership, Timings
from .model import (
    SERVING,
    AssignmentUnavailable,
    CapacityExhausted,
    Decision,
    Heartbeat,
    InstanceInfo,
    Member,
    Move,
    Ownership,
    SweepResult,
    Takeover,
)
from .rendezvous import check_id

#: Hosts named in one log line (the count is always complete).
LOG_HOSTS = 50

_T = TypeVar("_T")


class AssignmentStore(Protocol):
    """The shared assignment store (Redis, or in memory for one instance)."""

    name: str

    async def heartbeat(self, info: InstanceInfo, ttl_ms: int, incarnation: str,
                        fresh: bool = False) -> Heartbeat: ...

    async def leave(self, instance_id: str) -> int: ...

    async def members(self) -> list[Member]: ...

    async def assign(self, host: str, reason: str = "attach") -> Decision | None: ...

    async def sweep(self) -> SweepResult: ...

    async def handover(self, instance_id: str) -> SweepResult: ...

    async def rebalance(self, instance_id: str, budget: int) -> SweepResult: ...

    async def release(self, host: str, expected_owner: str | None = None) -> Move | None: ...

    async def take_over(self, host: str, claimant: str, expected_owner: str, expected_epoch: int,
                        min_interval_ms: int) -> Takeover: ...

    async def adopt(self, instance_id: str, capacity: int, hosts: list[str]) -> list[Move]: ...

    async def mark_ready(self, host: str, instance_id: str, ready: bool) -> bool: ...

    async def holdings(self, instance_id: str) -> tuple[bool, set[str]]: ...

    async def lookup(self, host: str) -> Ownership | None: ...

    async def ownerships(self, limit: int = 10_000) -> list[Ownership]: ...

    async def recent_moves(self, count: int = 50) -> list[Move]: ...


class Audit(Protocol):
    """The audit tables the assignment state is mirrored to (Postgres, or in memory)."""

    def note_instance(self, info: InstanceInfo, load: int, at_ms: int) -> None: ...

    def note_owned(self, rows: list[Ownership]) -> None: ...

    def note_moves(self, moves: list[Move], recorded_by: str) -> None: ...

    def flush(self) -> Deferred[Any]: ...

    def status(self) -> dict[str, Any]: ...


class Attacher(Protocol):
    """What the assignment service needs from the transport."""

    def attach(self, host_session_id: str, epoch: int = 0) -> Deferred[None]:
        """Start managing *host_session_id* (owned here at ownership *epoch*, for fencing):
        fires once its session runs (not when ready)."""

    def detach(self, host_session_id: str) -> Deferred[None]:
        """Stop managing it and close its transport."""

    def attached(self) -> set[str]:
        """Hosts the transport manages now, whoever asked for them."""

    def remember(self, host_session_id: str, join_code: str) -> None:
        """A join code for the next attach of *host_session_id* (attach-by-code)."""


class StandbyKeeper(Protocol):
    """Standby sessions to hosts other instances own (hot failover; ``--standby``)."""

    def standby(self, host_session_id: str) -> Deferred[None]:
        """Open a standby session to *host_session_id* (a no-op if one runs)."""

    def detach(self, host_session_id: str) -> Deferred[None]:
        """Close the host's session."""

    def standing_by(self) -> set[str]:
        """Hosts this instance holds a standby session to now."""

    def on_owner_silent(self, listener: Callable[[str, str, int, int | None], None]) -> None:
        """Call ``listener(host, owner, epoch, silent_ms)`` when a host tells a standby session
        here that its active manager (*owner*, at *epoch*) has gone silent."""

    def on_next_delivery(self, host_session_id: str, fn: Callable[[], None]) -> None:
        """Call *fn* once, when the next action is delivered to the host from here."""


HELD = "held"
HANDING = "handing"  # moved away during drain or rebalance; kept until the new owner is ready


@dataclass
class Slot:
    """A host this instance holds (``held``) or is handing over (``handing``)."""

    host: str
    state: str
    since: float
    row: Ownership | None = None
    attempts: int = 0
    started: bool = False  # its session runs (or it is being started)
    error: str | None = None

    def as_json(self, now: float, session: SessionState | None) -> dict[str, Any]:
        if self.state == HANDING:
            state = HANDING
        elif session is SessionState.READY:
            state = "ready"
        elif not self.started and self.error:
            state = "retry"
        else:
            state = "attaching"
        out = {"state": state, "for_seconds": round(now - self.since, 3), "attempts": self.attempts,
               "session": session.value if session is not None else None}
        if self.error:
            out["error"] = self.error
        return out


class AssignmentService(ReadyService):
    log = Logger()

    def __init__(self, clock: IReactorTime, metrics: Metrics, *, instance_id: str, capacity: int,
                 endpoint: Callable[[], str], timings: Timings,
                 store_factory: Callable[[], AssignmentStore],
                 audit_factory: Callable[[], Audit], events: SessionEvents,
                 attacher: Attacher | None = None, depends_on: Iterable[ReadyService] = (),
                 drain_timeout: float = 9.0, audit_every: int | None = None,
                 initial_hosts: Iterable[str] = (),
                 rebalance_batch: int = 5, standbys: StandbyKeeper | None = None,
                 failover_min_interval: float = 10.0):
        super().__init__("assign", clock)
        self.metrics = metrics
        self.instance_id = instance_id
        self.capacity = capacity
        self.endpoint = endpoint
        self.timings = timings
        self.store_factory = store_factory
        self.audit_factory = audit_factory
        self.attacher = attacher
        self.events = events
        self.depends_on = tuple(depends_on)
        self._unsubscribe: Callable[[], None] | None = None
        self.initial_hosts = list(initial_hosts)
        self.rebalance_batch = rebalance_batch
        self.standbys = standbys
        self.standby_wanted: frozenset[str] = frozenset()
        #: host owned here -> the instance that keeps its standby session (None: nobody can)
        self.standby_for: dict[str, str | None] = {}
        self._standby_listeners: list[Callable[[str], None]] = []
        self.failover_min_interval = failover_min_interval
        self.failovers = FailoverTracker(clock, metrics, instance_id,
                                         standbys.on_next_delivery if standbys else None)
        self._claiming: set[str] = set()
        if standbys is not None:
            standbys.on_owner_silent(self._owner_silent)
        self._handing_out: set[str] = set()
        self._unplaced: set[str] = set()
        self._members_cache: tuple[float, list] | None = None
        self.drain_timeout = drain_timeout
        self.audit_every = audit_every or max(1, round(timings.interval / timings.tick))
        self.store: AssignmentStore | None = None
        self.audit: Audit | None = None
        self.membership: Membership | None = None
        self.slots: dict[str, Slot] = {}
        self.draining = False
        self._lock = DeferredLock()
        self._loop: LoopingCall | None = None
        self._ticks = 0
        self._tick_error: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Deferred:
        return ensureDeferred(self._astart())

    async def _astart(self) -> None:
        try:
            self.timings.check()
        except ValueError as e:
            raise FatalStartupError(str(e)) from None
        for dep in self.depends_on:
            await dep.whenReady()
        self.store = self.store_factory()
        self.audit = self.audit_factory()
        self.membership = membership = Membership(
            self.store, self.audit, self.clock, instance_id=self.instance_id,
            capacity=self.capacity, endpoint=self.endpoint, timings=self.timings,
            on_store_lost=self._restore)

        def on_retry(attempt: int, e: Exception, wait: float) -> None:
            self.log.warn("assignment: cannot register {manager_instance_id} ({error}); retry "
                          "{attempt} in {wait:.1f}s", manager_instance_id=self.instance_id,
                          error=str(e) or type(e).__name__, attempt=attempt, wait=wait)

        await retrying(membership.start, self.clock, delay=backoff(0.2, 5.0), on_retry=on_retry)
        self._unsubscribe = self.events.subscribe(self._session_changed)
        await self._tick_body()
        await self._place_initial_hosts()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        background(self._loop.start(self.timings.tick, now=False), "assignment tick loop", self.log)
        self.log.info("assignment: {manager_instance_id} serving at {endpoint} with capacity "
                      "{capacity}; heartbeat every {interval}s, dead after {dead_after}s",
                      manager_instance_id=self.instance_id, endpoint=self.endpoint(),
                      capacity=self.capacity, interval=self.timings.interval,
                      dead_after=self.timings.dead_after)

    async def _place_initial_hosts(self, hosts: list[str] | None = None) -> None:
        """Place the configured hosts (every instance may name the same ones: placement is
        sticky).  Those refused for want of capacity are tried again every heartbeat interval."""
        first = hosts is None
        refused = []
        for host in self.initial_hosts if hosts is None else hosts:
            try:
                await self.assign(host)
                self._unplaced.discard(host)
            except CapacityExhausted:
                refused.append(host)
                self._unplaced.add(host)
            except AssignmentUnavailable as e:
                self._unplaced.add(host)
                self.log.warn("could not place configured host {host_session_id}: {error}",
                              host_session_id=host, error=str(e))
        if refused and first:
            self.log.warn("{count} configured host(s) refused: every instance is at capacity; "
                          "retrying every {interval}s: {hosts}", count=len(refused),
                          interval=self.timings.interval, hosts=refused[:LOG_HOSTS])

    def stop(self) -> Deferred | None:
        if self.membership is None:
            return None
        return ensureDeferred(self._drain())

    # -- started parts -------------------------------------------------------------------------
    def _running_store(self) -> AssignmentStore:
        if self.store is None:
            raise RuntimeError("the assignment service is not running (no store before start)")
        return self.store

    def _running_audit(self) -> Audit:
        if self.audit is None:
            raise RuntimeError("the assignment service is not running (no audit before start)")
        return self.audit

    def _running_membership(self) -> Membership:
        if self.membership is None:
            raise RuntimeError("the assignment service is not running (no membership before start)")
        return self.membership

    # -- public API ------------------------------------------------------------------------------
    def lease_held(self) -> bool:
        """False once this instance's membership lease may have expired (see
        :meth:`.Membership.lease_held`); True before the service runs (nothing delivers yet)."""
        return self.membership is None or self.membership.lease_held()

    def owns(self, host_session_id: str) -> bool:
        """Whether this instance holds the host now (local view, no I/O)."""
        slot = self.slots.get(host_session_id)
        return slot is not None and slot.state != HANDING

    @property
    def single_instance(self) -> bool:
        """On the in-memory store there is one instance: every host is here or nowhere."""
        return self.store is None or self.store.name == "memory"

    def owned_hosts(self) -> frozenset[str]:
        return frozenset(h for h, s in self.slots.items() if s.state != HANDING)

    def slot_view(self, host_session_id: str) -> dict[str, Any] | None:
        """This instance's slot of a host, for ``/debug/assignments`` (None when not held)."""
        slot = self.slots.get(host_session_id)
        if slot is None:
            return None
        return slot.as_json(self.clock.seconds(), self.events.state(host_session_id))

    def handing_over(self) -> list[str]:
        return sorted(h for h, s in self.slots.items() if s.state == HANDING)

    def standby_of(self, host_session_id: str) -> str | None:
        """The instance keeping a standby session to a host owned here (as of the last check,
        once per heartbeat interval; None without ``--standby``)."""
        return self.standby_for.get(host_session_id)

    def on_standby_changed(self, listener: Callable[[str], None]) -> None:
        """Call *listener(host)* when the standby instance of a host owned here changes."""
        self._standby_listeners.append(listener)

    async def assign(self, host_session_id: str, reason: str = "attach") -> Decision:
        """Place *host_session_id* (sticky).  Raises CapacityExhausted or AssignmentUnavailable."""
        check_id("host session id", host_session_id)
        decision = await self._store(self._running_store().assign(host_session_id, reason))
        if decision is None:
            members = await self._members_quietly()
            live = [m for m in members if m.live]
            serving = [m for m in live if m.state == SERVING]
            self.metrics.assignment_refused_total.inc()
            self.log.warn("assignment refused for {host_session_id}: every serving instance is at "
                          "capacity ({serving} serving of {live} live)", serving=len(serving),
                          live=len(live), **fields(host_session_id=host_session_id,
                                                   manager_instance_id=self.instance_id))
            raise CapacityExhausted(host_session_id, len(live), len(serving))
        if decision.move is not None:
            self._record_moves([decision.move])
        if decision.owner == self.instance_id and host_session_id not in self.slots:
            background(self.reconcile(), "assignment reconcile", self.log)
        return decision

    async def place(self, host_session_id: str, join_code: str | None = None) -> Decision:
        """Place a host that asked to be managed (attach-by-code, registration): its owner --
        this instance or another -- attaches it.  Raises CapacityExhausted (answer 503) when
        every instance is full, AssignmentUnavailable when the shared store does not answer."""
        if join_code and self.attacher is not None:
            self.attacher.remember(host_session_id, join_code)
        return await self.assign(host_session_id)

    async def release(self, host_session_id: str) -> Move | None:
        """Let a host go (its session ended): no instance owns it afterwards."""
        move = await self._store(self._running_store().release(host_session_id))
        if move is not None:
            self._record_moves([move])
            background(self.reconcile(), "assignment reconcile", self.log)
        return move

    async def lookup(self, host_session_id: str) -> Ownership | None:
        return await self._store(self._running_store().lookup(host_session_id))

    async def members(self):
        members = await self._store(self._running_store().members())
        self._members_cache = (self.clock.seconds(), members)
        return members

    async def endpoint_of(self, instance_id: str) -> str | None:
        """The advertised endpoint of a live member (membership read at most once per tick)."""
        cached = self._members_cache
        if cached is None or self.clock.seconds() - cached[0] > self.timings.tick:
            members = await self.members()
        else:
            members = cached[1]
        for m in members:
            if m.id == instance_id and m.live:
                return m.endpoint or None
        return None

    async def ownerships(self, limit: int = 10_000) -> list[Ownership]:
        return await self._store(self._running_store().ownerships(limit))

    async def recent_moves(self, count: int = 50) -> list[Move]:
        return await self._store(self._running_store().recent_moves(count))

    def _session_changed(self, change: SessionChange) -> None:
        """A host session changed (the one readiness stream): mirror readiness to the shared
        store; let go of a host whose join code was refused."""
        slot = self.slots.get(change.host_session_id)
        if slot is None or slot.state == HANDING:
            return
        if change.readiness_changed or (change.role_changed and change.ready):
            slot.since = self.clock.seconds()  # (a promoted standby is ready at once)
            self._mark_ready(change.host_session_id, change.ready)
        if change.new is SessionState.REJECTED:
            self._give_up(slot, change.reason or "the join code was refused")
        elif change.removed:
            slot.started = False  # stopped by someone else: started again on the next tick

    def _mark_ready(self, host_session_id: str, ready: bool) -> None:
        store = self._running_store()
        d = ensureDeferred(self._store(store.mark_ready(host_session_id, self.instance_id, ready)))
        background(d, "assignment mark ready", self.log)

    def _give_up(self, slot: Slot, why: str) -> None:
        """Nobody can attach this host as things are: release it (placed again when it
        registers or is configured again)."""
        slot.error = why
        self.log.warn("assignment: releasing {host_session_id}: {error}", error=why,
                      **fields(host_session_id=slot.host, manager_instance_id=self.instance_id))
        background(ensureDeferred(self.release(slot.host)), "release host", self.log)

    # -- tick --------------------------------------------------------------------------------------
    def _tick(self) -> Deferred:
        return ensureDeferred(self._tick_safely())

    async def _tick_safely(self) -> None:
        try:
            await self._tick_body()
        except Exception as e:
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
            if error != self._tick_error:
                self.log.warn("assignment tick failed ({error}); retrying every {tick}s",
                              error=error, tick=self.timings.tick)
            self._tick_error = error
        else:
            if self._tick_error:
                self.log.info("assignment tick recovered")
            self._tick_error = None

    async def _tick_body(self) -> None:
        self._ticks += 1
        if not self.draining:
            result = await self._store(self._running_store().sweep())
            if result.moves:
                self._failover_log(result)
            await self._rebalance()
        await self.reconcile()
        await self._finish_handing(force=False)
        if self.standbys is not None and not self.draining and self._ticks % self.audit_every == 1:
            await self._keep_standbys(self.standbys)  # once per heartbeat interval
        if self._ticks % self.audit_every == 0:
            self._running_audit().note_owned([s.row for s in self.slots.values()
                                              if s.row and s.state != HANDING])
            if self._unplaced and not self.draining:
                await self._place_initial_hosts(sorted(self._unplaced))
        await self._running_audit().flush()

    async def _rebalance(self) -> None:
        """Hand hosts that rank a live instance with room above us to it, a few at a time,
        make-before-break (after an instance joins, about 1/n of the hosts move to it).
        With standbys, owners stay put (no failback while a session is healthy): only the
        standbys follow the ranking."""
        if self.standbys is not None:
            return
        budget = self.rebalance_batch - sum(1 for s in self.slots.values() if s.state == HANDING)
        if budget <= 0 or not self.slots:
            return
        result = await self._store(self._running_store().rebalance(self.instance_id, budget))
        if result.moves:
            self._handing_out.update(m.host_session_id for m in result.moves)
            self._record_moves(result.moves)

    async def _keep_standbys(self, keeper: StandbyKeeper) -> None:
        """Hold a standby session to each host for which this instance is next in rank after
        the owner; open and close a few per tick (:mod:`.standby`)."""
        members = await self.members()
        rows = await self.ownerships()
        owners = {r.host_session_id: r.owner for r in rows if r.owner}
        held = keeper.standing_by() - set(self.slots)
        planned = standby.plan(self.instance_id, members, owners, held, self.rebalance_batch)
        self.standby_wanted = planned.wanted
        for host in planned.start:
            background(keeper.standby(host), "open a standby session", self.log,
                       host_session_id=host)
        for host in planned.stop:
            background(keeper.detach(host), "close a standby session", self.log,
                       host_session_id=host)
        ready = sum(1 for h in held if self.events.is_ready(h, Role.STANDBY))
        self.metrics.standby_ready_hosts.set(ready)
        self._note_standbys({m.id: m for m in members})

    def _note_standbys(self, members) -> None:
        """Who stands by for each host owned here; listeners hear of each change."""
        mine = set(self.owned_hosts())
        for host in list(self.standby_for):
            if host not in mine:
                del self.standby_for[host]
        for host in mine:
            now = standby.standby_of(host, self.instance_id, members)
            if host in self.standby_for and self.standby_for[host] == now:
                continue
            self.standby_for[host] = now
            for listener in list(self._standby_listeners):
                listener(host)

    # -- failover on the host's word -------------------------------------------------------------
    def _owner_silent(self, host: str, owner: str, epoch: int, silent_ms: int | None) -> None:
        if self.draining or self.store is None or host in self._claiming or host in self.slots:
            return
        self._claiming.add(host)
        background(ensureDeferred(self._take_over(host, owner, epoch, silent_ms)),
                   "take a host over", self.log, host_session_id=host)

    async def _take_over(self, host: str, owner: str, epoch: int, silent_ms: int | None) -> None:
        try:
            await self._take_over_once(host, owner, epoch, silent_ms)
        finally:
            self._claiming.discard(host)

    async def _take_over_once(self, host: str, owner: str, epoch: int,
                              silent_ms: int | None) -> None:
        """Take the host by compare-and-set (owner and epoch as the host named them); the
        store refuses if either changed, if the owner took it less than the min interval ago
        (flapping), or if this instance is full."""
        result = await self._store(self._running_store().take_over(
            host, self.instance_id, owner, epoch, int(self.failover_min_interval * 1000)))
        gap = silent_ms / 1000 if silent_ms is not None and silent_ms < 10**9 else None
        if not result.taken:
            self.log.info("{host_session_id} reports its manager {old_manager_instance_id} "
                          "silent; not taken over ({status}: owner {owner}, epoch {epoch})",
                          status=result.status, owner=result.owner, epoch=result.epoch,
                          old_manager_instance_id=owner,
                          **fields(host_session_id=host, manager_instance_id=self.instance_id))
            return
        self.failovers.initiated(host, owner, self.instance_id, "host", gap, result.epoch)
        self._record_moves([Move(host, self.instance_id, owner, "failover", result.now_ms)],
                           log_each=False)
        await self.reconcile()

    def _failover_log(self, result: SweepResult) -> None:
        for old, moves in result.by_old_owner().items():
            new_ids = sorted({m.to for m in moves if m.to})
            hosts = [m.host_session_id for m in moves]
            self.log.warn("failover: {old_manager_instance_id} missed two heartbeats; {count} host(s) "
                          "moved to {new_manager_instance_ids}: {hosts}", old_manager_instance_id=old,
                          new_manager_instance_ids=new_ids, count=len(hosts), hosts=hosts[:LOG_HOSTS],
                          **fields(manager_instance_id=self.instance_id))
            for i, m in enumerate(moves):
                self.failovers.initiated(m.host_session_id, old, m.to, "membership",
                                         quiet=i >= LOG_HOSTS)
        self._record_moves(result.moves, log_each=False)
        if result.stranded:
            self.log.warn("failover: {count} orphaned host(s) wait for capacity: {hosts}",
                          count=len(result.stranded), hosts=[h for h, _ in result.stranded][:LOG_HOSTS])

    def _record_moves(self, moves: list[Move], log_each: bool = True) -> None:
        for m in moves:
            if m.from_ and m.to:
                self.metrics.assignment_rebalance_total.labels(reason=m.reason).inc()
            if log_each:
                self.log.info("assignment: {host_session_id} -> {new_manager_instance_id} (from "
                              "{old_manager_instance_id}, reason {reason})",
                              new_manager_instance_id=m.to, old_manager_instance_id=m.from_,
                              reason=m.reason, **fields(host_session_id=m.host_session_id,
                                                        manager_instance_id=self.instance_id))
        self._running_audit().note_moves(moves, self.instance_id)

    # -- reconcile -----------------------------------------------------------------------------
    def reconcile(self) -> Deferred:
        """Make the hosts we hold match the hosts the store says we own (serialised)."""
        return self._lock.run(lambda: ensureDeferred(self._reconcile()))

    async def _reconcile(self) -> None:
        registered, owned = await self._store(self._running_store().holdings(self.instance_id))
        if not registered and not self.draining:
            # The store lost our record (Redis restarted, or we stalled past the TTL): register
            # again and restore what we hold before trusting its idea of what we own.
            await self._running_membership().beat_safely()
            registered, owned = await self._store(self._running_store().holdings(self.instance_id))
        now = self.clock.seconds()
        held = {h for h, s in self.slots.items() if s.state != HANDING}
        gained, lost = sorted(owned - held), sorted(held - owned)
        for host in lost:
            self._lose(host)
        if gained:
            self._make_room(len(gained))
            rows = await self._lookup_many(gained)
            for host in gained:
                if host in self.slots:  # was handing: it came back to us
                    del self.slots[host]
                self.slots[host] = Slot(host, HELD, now, rows.get(host))
            self._running_audit().note_owned([r for r in rows.values() if r is not None])
            by_reason: dict[str, list[str]] = {}
            for host in gained:
                row = rows.get(host)
                by_reason.setdefault(row.reason if row else "?", []).append(host)
            for reason, hosts in by_reason.items():
                self.log.info("assignment: {manager_instance_id} now owns {count} more host(s) "
                              "(reason {reason}): {hosts}", count=len(hosts), reason=reason,
                              hosts=hosts[:LOG_HOSTS], manager_instance_id=self.instance_id)
            # promoted only if its standby session was ready (one still attaching is no warmer
            # than a fresh attach)
            warm = ({h for h in self.standbys.standing_by() if self.events.is_ready(h, Role.STANDBY)}
                    if self.standbys is not None else set())
            for host in gained:
                row = rows.get(host)
                if row is not None and row.reason == "failover":
                    self.failovers.completed(host, row.reassigned_from, host in warm, row.epoch)
                self._start_attach(self.slots[host])
        for slot in list(self.slots.values()):
            if slot.state == HELD and not slot.started:
                self._start_attach(slot)  # its session could not be started: try again
        self.metrics.assigned_hosts.set(len(self.owned_hosts()))
        if not self.draining:
            await self._settle_strays()

    async def _settle_strays(self) -> None:
        """Hosts the transport holds that we do not own (attached by another part, e.g. an
        attach-by-code that skipped placement): place them; keep ours, let go of the rest."""
        if self.attacher is None:
            return
        for host in sorted(self.attacher.attached() - set(self.slots)):
            try:
                decision = await self.assign(host)
            except CapacityExhausted:
                decision = None
            if decision is not None and decision.owner == self.instance_id:
                continue  # the next reconcile takes it into our slots
            self.log.info("assignment: {host_session_id} was attached here but belongs to "
                          "{owner}; detaching", owner=decision.owner if decision else None,
                          **fields(host_session_id=host, manager_instance_id=self.instance_id))
            self._detach(host)

    def _make_room(self, coming: int) -> None:
        """Hosts being handed over still hold a transport (make-before-break); when new hosts
        would push the transports past our capacity, let the oldest hand-overs go now."""
        excess = len(self.slots) + coming - self.capacity
        handing = sorted((s.since, h) for h, s in self.slots.items() if s.state == HANDING)
        for _, host in handing[:max(0, excess)]:
            del self.slots[host]
            self._detach(host)
            self.log.info("handed over {host_session_id}: detached before the new owner is ready "
                          "to make room", **fields(host_session_id=host,
                                                   manager_instance_id=self.instance_id))

    def _lose(self, host: str) -> None:
        slot = self.slots[host]
        if self.draining or host in self._handing_out:
            self._handing_out.discard(host)
            slot.state, slot.since = HANDING, self.clock.seconds()
            return
        del self.slots[host]
        self.log.warn("assignment: {manager_instance_id} no longer owns {host_session_id}; "
                      "detaching", **fields(manager_instance_id=self.instance_id, host_session_id=host))
        self._detach(host)

    def _detach(self, host: str) -> None:
        if self.attacher is not None:
            background(self.attacher.detach(host), "detach host", self.log, host_session_id=host)

    def _start_attach(self, slot: Slot) -> None:
        """Start the host's session.  Readiness comes later, on the session stream; the
        session retries its own attach.  Only a session that could not be started at all
        is started again, by the next tick."""
        if self.attacher is None:
            return
        slot.started, slot.attempts = True, slot.attempts + 1
        host = slot.host

        def started(_: object) -> None:
            if self.slots.get(host) is slot:
                slot.error = None
                if self.events.is_ready(host):  # already up (e.g. attached by code)
                    self._mark_ready(host, True)

        def failed(failure: Failure) -> None:
            if self.slots.get(host) is not slot or slot.state == HANDING:
                return
            if failure.check(NoJoinCode):
                self._give_up(slot, failure.getErrorMessage())
                return
            slot.started = False
            slot.error = failure.getErrorMessage().splitlines()[0] if failure.getErrorMessage() else \
                failure.type.__name__
            self.log.warn("assignment: could not start the session of {host_session_id} ({error}); "
                          "trying again next tick", error=slot.error,
                          **fields(host_session_id=host, manager_instance_id=self.instance_id))

        try:
            d = self.attacher.attach(host, slot.row.epoch if slot.row is not None else 0)
        except Exception as e:
            failed(Failure(e))
            return
        d.addCallbacks(started, failed)
        background(d, "attach host", self.log, host_session_id=host)

    async def _lookup_many(self, hosts: list[str]) -> dict[str, Ownership | None]:
        results = await DeferredList([ensureDeferred(self._running_store().lookup(h)) for h in hosts],
                                     consumeErrors=True)
        return {h: (r if ok else None) for h, (ok, r) in zip(hosts, results, strict=True)}

    async def _restore(self) -> None:
        """The store lost our records: re-claim the hosts we hold that nobody owns now."""
        held = sorted(self.owned_hosts())
        moves = await self._store(self._running_store().adopt(self.instance_id, self.capacity, held))
        if moves:
            self.log.warn("assignment: restored {count} host(s) to {manager_instance_id} after the "
                          "shared store lost them", count=len(moves),
                          manager_instance_id=self.instance_id)
            self._record_moves(moves, log_each=False)

    # -- drain -------------------------------------------------------------------------------------
    async def _drain(self) -> None:
        self.draining = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        await self._lock.acquire()  # let an in-flight reconcile finish
        self._lock.release()
        self.log.info("draining {manager_instance_id}: handing {count} host(s) to their next owners",
                      manager_instance_id=self.instance_id, count=len(self.owned_hosts()))
        await self._running_membership().drain()
        deadline = self.clock.seconds() + self.drain_timeout
        while True:
            moved = 0
            try:
                result = await self._store(self._running_store().handover(self.instance_id))
                moved = len(result.moves)
                if result.moves:
                    self._record_moves(result.moves)
                await self.reconcile()
                await self._finish_handing(force=False)
            except Exception as e:
                self.log.warn("drain step failed: {error}", error=str(e) or type(e).__name__)
            if not self.slots:
                break
            if moved == 0 and all(s.state != HANDING for s in self.slots.values()):
                self.log.warn("drain: no instance has room for {count} host(s); leaving them to "
                              "the survivors' sweeps: {hosts}", count=len(self.slots),
                              hosts=sorted(self.slots)[:LOG_HOSTS])
                break
            if self.clock.seconds() >= deadline:
                self.log.warn("drain: time is up with {count} host(s) not yet handed over",
                              count=len(self.slots))
                break
            await deferLater(self.clock, self.timings.tick)
        await self._finish_handing(force=True)
        try:
            left = await self._running_membership().leave()
            self.log.info("{manager_instance_id} left the membership ({left} host(s) orphaned)",
                          manager_instance_id=self.instance_id, left=left)
        except Exception as e:
            self._running_membership().stop_loop()
            self.log.warn("could not delete our membership record ({error}); it expires by TTL",
                          error=str(e) or type(e).__name__)
        for host in list(self.slots):
            del self.slots[host]
            self._detach(host)
        await self._running_audit().flush()

    async def _finish_handing(self, force: bool) -> None:
        handing = [h for h, s in self.slots.items() if s.state == HANDING]
        if not handing:
            return
        # Without a transport there is nothing to keep until the new owner is ready.
        force = force or self.attacher is None
        rows = {} if force else await self._lookup_many(handing)
        now = self.clock.seconds()
        for host in handing:
            row = rows.get(host)
            overdue = now - self.slots[host].since > self.drain_timeout
            if force or overdue or row is None or row.ready or row.owner == self.instance_id:
                if row is not None and row.owner == self.instance_id:
                    continue  # it came back to us: the next reconcile takes it again
                del self.slots[host]
                self._detach(host)
                if not force:
                    self.log.info("handed over {host_session_id}: {state} at "
                                  "{new_manager_instance_id}; detached here",
                                  state="overdue" if overdue and not (row and row.ready) else "ready",
                                  new_manager_instance_id=row.owner if row else None,
                                  **fields(host_session_id=host, manager_instance_id=self.instance_id))

    # -- plumbing --------------------------------------------------------------------------------
    async def _store(self, coro: Coroutine[Any, Any, _T]) -> _T:
        try:
            return await with_timeout(ensureDeferred(coro), STORE_TIMEOUT, self.clock)
        except AssignmentUnavailable:
            raise
        except Exception as e:
            if isinstance(e, CancelledError | defer.TimeoutError | TimeoutError):
                raise AssignmentUnavailable(f"the shared store did not answer in {STORE_TIMEOUT:g}s") \
                    from None
            raise

    async def _members_quietly(self):
        try:
            return await self.members()
        except Exception:
            return []

    def status(self) -> dict[str, Any]:
        out = super().status()
        out["instance_id"] = self.instance_id
        out["owned"] = len(self.owned_hosts())
        out["capacity"] = self.capacity
        if self.membership is not None:
            out["membership"] = self.membership.status()
        if self.audit is not None:
            out["audit"] = self.audit.status()
        if self._tick_error:
            out["error"] = self._tick_error
        if self.failovers.recent:
            out["failovers"] = list(self.failovers.recent)
        return out
