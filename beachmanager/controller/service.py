"""The controller part of the manager: queue, delivery, ingestion.

Every collaborator is handed in by the composition root (``manager.build_manager``):

* ``stores``: builds the action queue and the runtime cache at start (Redis Streams and the
  Redis runtime cache on the Redis service's connections, or the in-memory twins);
* ``store`` / ``leases``: the registry store (action log) and the lease module, or None;
* ``publisher`` / ``subscriber``: the bus ends (the hosts service's);
* ``events``: the session stream; delivery lanes open and close as sessions change
  (:class:`~.session_link.SessionLink`), and ``transport_state`` reads it.

Public API (used by ``api/actions.py`` and benchmarks):

* :meth:`~ControllerService.transport_state` -- ``ready`` | ``offline`` | ``not_attached``;
* :meth:`~ControllerService.submit` -- enqueue validated commands, hand them to delivery;
* :meth:`~ControllerService.describe` -- queued / delivered / acked view of one action;
* :meth:`~ControllerService.snapshot` -- latest ``state`` or ``health`` of a host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ..service import ReadyService
from ..telemetry.logs import fields
from ..transport.events import SessionEvents
from .admission import Admission, Refusal
from .deadlines import DeadlineExceeded, Deadlines
from .delivery import DeliveryEngine, FinalAck, Publisher
from .ingest import AckWriter, Ingest
from .lease_watch import LeaseWatch
from .queue import NewAction, QueuedAction, QueueFull, QueueUnavailable
from .session_link import SessionLink

if TYPE_CHECKING:
    from ..bus.subscriber import ManagerSubscriber
    from ..registry.store import RegistryStore
    from .leases import Leases

#: Seconds an enqueue may wait for the queue's store before the request gets a 503.
ENQUEUE_TIMEOUT = 5.0

#: Builds ``(action queue, runtime cache)`` once the stores' connections exist.
StoresFactory = Callable[[], tuple[Any, Any]]


class Overloaded(Exception):
    """This instance holds more work than it can finish within the admission target."""

    def __init__(self, refusal: Refusal):
        super().__init__(f"{refusal.backlog} actions in progress (limit {refusal.limit})")
        self.refusal = refusal


#: Seconds the backlog count is reused (it sums every lane); admissions in between add up.
BACKLOG_REFRESH = 0.02


@dataclass(frozen=True)
class Submitted:
    action_ids: list[str]
    enqueued: list[str]
    duplicates: list[str]
    queue_depth: int


def cfg_target(cfg) -> float:
    return float(getattr(cfg, "action_admission_target", 0) or 0)


def memory_stores(clock, bound: int) -> StoresFactory:
    def build() -> tuple[Any, Any]:
        from .queue_memory import MemoryActionQueue
        from .runtime import MemoryRuntimeCache

        return MemoryActionQueue(clock, bound=bound), MemoryRuntimeCache(clock)

    return build


def redis_stores(redis, bound: int) -> StoresFactory:
    """Queue and cache on the Redis service's shared connection; the queue's blocking reads
    on a dedicated one (``actions``)."""
    def build() -> tuple[Any, Any]:
        from .queue_redis import RedisActionQueue
        from .runtime import RedisRuntimeCache

        return (RedisActionQueue(redis.shared, redis.dedicated("actions"), bound=bound),
                RedisRuntimeCache(redis.shared))

    return build


class ControllerService(ReadyService):
    log = Logger()
    critical = False

    def __init__(self, ctx, *, events: SessionEvents, publisher: Publisher,
                 stores: StoresFactory, subscriber: ManagerSubscriber | None = None,
                 store: RegistryStore | None = None, leases: Leases | None = None,
                 epoch_of: Callable[[str], int | None] = lambda host: None):
        super().__init__("controller", ctx.clock)
        self.ctx = ctx
        cfg = ctx.config
        self.instance_id = cfg.instance_id
        self.events = events
        self.publisher = publisher
        self.subscriber = subscriber
        self._stores = stores
        self.store = store
        self.leases = leases
        self.epoch_of = epoch_of
        self.window = cfg.action_inflight_window
        self.ack_timeout = cfg.action_ack_timeout
        self.claim_timeout = cfg.action_claim_timeout
        self.queue: Any = None
        self.cache: Any = None
        self.link: SessionLink | None = None
        self.engine: DeliveryEngine | None = None
        self.writer: AckWriter | None = None
        self.ingest: Ingest | None = None
        self.lease_watch: LeaseWatch | None = None
        self.admission: Admission | None = None
        self._backlog_at, self._backlog = float("-inf"), 0
        self._full_log: dict[str, tuple[float, int]] = {}
        self.deadlines = Deadlines(ctx.clock)  # enqueue timeouts: one timer, not one per request
        self._final_watchers: list[Callable[[FinalAck], object]] = []
        ctx.metrics.action_queue_bound.set(cfg.action_queue_bound)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        ctx = self.ctx
        self.queue, self.cache = self._stores()
        self.writer = AckWriter(self.queue, ctx.clock, store=self.store, cache=self.cache,
                                metrics=ctx.metrics, concurrency=ctx.config.action_ack_writers)
        self.engine = DeliveryEngine(
            self.queue, self.publisher, ctx.clock, consumer=self.instance_id,
            window=self.window, ack_timeout=self.ack_timeout, claim_timeout=self.claim_timeout,
            on_final=self._on_final, lease_check=self._lease_check, metrics=ctx.metrics,
            manager_instance_id=self.instance_id, epoch_of=self.epoch_of)
        self.writer.confirm = self.engine.confirm
        self.ingest = Ingest(self.engine, self.cache, ctx.clock, self.instance_id)
        if cfg_target(ctx.config) > 0:
            self.admission = Admission(ctx.clock, self._held, self._finished,
                                       target=cfg_target(ctx.config),
                                       floor=ctx.config.action_admission_floor)
        self.writer.start()
        self.engine.start()
        self.deadlines.start()
        if self.leases is not None:
            self.lease_watch = LeaseWatch(self.leases, ctx.clock)
            self.lease_watch.start(self.engine)
        self.link = SessionLink(self.engine, self.ingest, self.subscriber, self.events)
        self.link.start()

    async def _stop(self) -> None:
        self.deadlines.stop()
        if self.link is not None:
            self.link.stop()
        if self.lease_watch is not None:
            self.lease_watch.stop()
        if self.engine is not None:
            reader = self.engine.stop()
            if self.queue is not None:
                await self.queue.close()
            if reader is not None:
                await reader
        if self.writer is not None:
            await self.writer.stop()

    def stop(self):
        return ensureDeferred(self._stop())

    def status(self) -> dict[str, Any]:
        out = super().status()
        if self.engine is not None:
            out["delivery"] = self.engine.stats()
        if self.writer is not None:
            out["acks"] = self.writer.status()
        if self.admission is not None:
            out["admission"] = self.admission.status()
        return out

    def transport_state(self, host: str) -> str:
        if self.link is None:
            raise RuntimeError("the controller is not running")
        return self.link.transport_state(host)

    def _held(self) -> int:
        """Actions this instance is working on: waiting or in flight for a host whose transport
        is up, or finished and not yet stored (summed at most every BACKLOG_REFRESH seconds;
        admissions in between add up).  Actions waiting for a host that is down cost nothing
        until it is back; the host's queue bound governs those."""
        now = self.ctx.clock.seconds()
        if now - self._backlog_at >= BACKLOG_REFRESH and self.engine is not None:
            engine, writer = self.engine, self.writer
            self._backlog = sum(len(x.waiting) + len(x.inflight) for x in engine.lanes.values()
                                if x.ready) + (writer.pending if writer is not None else 0)
            self._backlog_at = now
        return self._backlog

    def _finished(self) -> int:
        c = self.engine.counters if self.engine is not None else {}
        return c.get("acked", 0) + c.get("expired", 0) + c.get("preempted", 0)

    def admit(self, host: str, adding: int) -> None:
        """Refuse (``Overloaded``) new actions for a host delivered from here when this
        instance is over its admission target; before anything is parsed or written."""
        lane = self.engine.lanes.get(host) if self.engine is not None else None
        if self.admission is None or self.link is None or not self.link.delivers(host) \
                or lane is None or not lane.ready:
            return
        refusal = self.admission.check(adding)
        if refusal is not None:
            self.ctx.metrics.actions_refused_total.labels(reason="overloaded").inc(adding)
            raise Overloaded(refusal)
        self._backlog += adding

    def watch_finals(self, fn: Callable[[FinalAck], object]) -> None:
        """Call ``fn(final)`` for every action this instance finishes (acked, expired,
        preempted), after it is handed to the ack writer; *fn* must not block."""
        self._final_watchers.append(fn)

    def _on_final(self, final: FinalAck) -> None:
        if self.writer is not None:  # (always: set in start, before the engine exists)
            self.writer.submit(final)
        for fn in self._final_watchers:
            try:
                fn(final)
            except Exception:
                self.log.failure("final-ack watcher {fn!r} failed", fn=fn)

    def _lease_check(self, host: str, action: QueuedAction) -> bool | None:
        return self.lease_watch.check(host, action) if self.lease_watch is not None else None

    # -- actions --------------------------------------------------------------------------------
    async def submit(self, host: str, commands: list[dict[str, Any]], *, controller_token: str | None,
                     beach: str | None) -> Submitted:
        """Enqueue validated commands (``QueueFull`` / ``QueueUnavailable`` propagate).

        A host managed here: the new entries are handed to this instance's consumer at once
        and delivered from here (not read back).  A host another instance manages: they go
        into the host's shared stream, where its owner's reader takes them."""
        now = self.ctx.clock.seconds()
        new = [NewAction(c["id"], c, controller_token, now, beach) for c in commands]
        here = self.link is not None and self.link.delivers(host)
        try:
            result = await self.deadlines.wait(ensureDeferred(self.queue.enqueue(
                host, new, consumer=self.instance_id if here else None)), ENQUEUE_TIMEOUT)
        except DeadlineExceeded:
            raise QueueUnavailable("the action queue did not answer in time") from None
        except QueueFull as e:
            self._log_full(host, e, controller_token)
            raise
        if result.accepted:
            self.ctx.metrics.actions_enqueued_total.inc(len(result.accepted))
        if here:
            if controller_token and self.lease_watch is not None:
                self.lease_watch.granted(host, controller_token)
            by_id = {c["id"]: c for c in commands}
            fresh = [QueuedAction(host, result.entries[i], i, by_id[i], controller_token, now, beach)
                     for i in result.accepted]
            if (fresh or result.claimed) and self.engine is not None:
                self.engine.adopt(host, result.claimed + fresh)
        if result.duplicates:  # (nothing per plain request: the metrics count those)
            self.log.debug("queued {n} actions ({dups} repeated); queue depth {depth}",
                           n=len(result.accepted),
                           dups=len(result.duplicates), depth=result.depth,
                           **fields(host_session_id=host, controller_token=controller_token,
                                    manager_instance_id=self.instance_id))
        return Submitted([c["id"] for c in commands], result.accepted, result.duplicates, result.depth)

    def _log_full(self, host: str, e: QueueFull, token: str | None) -> None:
        """Drops are logged with the depth, at most once per host every 10 s (counted between)."""
        now = self.ctx.clock.seconds()
        last, count = self._full_log.get(host, (float("-inf"), 0))
        if now - last < 10:
            self._full_log[host] = (last, count + 1)
            return
        if len(self._full_log) > 10_000:
            self._full_log.clear()
        self._full_log[host] = (now, 0)
        self.log.warn("queue full: refused {adding} actions (depth {depth} of {bound}; {more} more "
                      "refusals since the last report)", adding=e.adding, depth=e.depth, bound=e.bound,
                      more=count, reason="queue_full",
                      **fields(host_session_id=host, controller_token=token,
                               manager_instance_id=self.instance_id))

    async def describe(self, host: str, action_id: str) -> dict[str, Any] | None:
        live = self.engine.describe(host, action_id) if self.engine is not None else None
        if live is not None and live["status"] != "acked":
            return live
        view = await self.cache.get_ack(host, action_id)  # acked and stored (with its latency)
        if view is not None:
            return view
        if live is not None:
            return live
        state = await self.queue.lookup(host, action_id)
        if state == "queued":
            return {"action_id": action_id, "host_session_id": host, "status": "queued"}
        if state is not None and state.startswith("done:"):
            return {"action_id": action_id, "host_session_id": host, "status": "acked",
                    "ack_status": state[5:]}
        return None

    async def snapshot(self, host: str, kind: str) -> Any:
        return await self.cache.get_snapshot(host, kind)
