"""The controller part of the manager: queue, delivery, ingestion; ``ctx.parts["controller"]``.

Built from the configuration: Redis Streams and the Redis runtime cache when
``REDIS_URL`` is set, the in-memory twins otherwise; the registry store (action log)
and the lease module when the registry part exists.  The bus is bound with
:meth:`ControllerService.bind_bus` (the manager's host service does it; without it
every host reads as not attached).

Public API (used by ``api/actions.py`` and benchmarks):

* :meth:`~ControllerService.transport_state` -- ``ready`` | ``offline`` | ``not_attached``;
* :meth:`~ControllerService.submit` -- enqueue validated commands, hand them to delivery;
* :meth:`~ControllerService.describe` -- queued / delivered / acked view of one action;
* :meth:`~ControllerService.snapshot` -- latest ``state`` or ``health`` of a host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ..service import ReadyService
from ..telemetry.logs import fields
from .bus_link import NOT_ATTACHED, BusLink
from .deadlines import DeadlineExceeded, Deadlines
from .delivery import DeliveryEngine
from .ingest import AckWriter, Ingest
from .queue import NewAction, QueuedAction, QueueFull, QueueUnavailable

#: Seconds an enqueue may wait for the queue's store before the request gets a 503.
ENQUEUE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Submitted:
    action_ids: list[str]
    enqueued: list[str]
    duplicates: list[str]
    queue_depth: int


class NullPublisher:
    def publish_action(self, host: str, payload: bytes) -> bool:
        return False

    def is_ready(self, host: str) -> bool:
        return False


class ControllerService(ReadyService):
    log = Logger()
    critical = False

    def __init__(self, ctx, *, queue=None, cache=None, store=None, leases=None):
        super().__init__("controller", ctx.clock)
        self.ctx = ctx
        cfg = ctx.config
        self.instance_id = cfg.instance_id
        self._given = (queue, cache, store, leases)
        self.queue = queue
        self.cache = cache
        self.store = store
        self.leases = leases
        self.window = cfg.get("action_inflight_window", 32)
        self.ack_timeout = cfg.get("action_ack_timeout", 5.0)
        self.claim_timeout = cfg.get("action_claim_timeout", 30.0)
        self.bound = cfg.get("action_queue_bound", 500)
        self.publisher: Any = NullPublisher()
        self.link: BusLink | None = None
        self.engine: DeliveryEngine | None = None
        self.writer: AckWriter | None = None
        self.ingest: Ingest | None = None
        self.lease_watch = None
        self._host_ids: Callable[[], Iterable[str]] = lambda: ()
        self._subscriber = None
        self._on_change = None
        self._host_ids_given = False
        self._full_log: dict[str, tuple[float, int]] = {}
        self.deadlines = Deadlines(ctx.clock)  # enqueue timeouts: one timer, not one per request

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        ctx, cfg = self.ctx, self.ctx.config
        if self.queue is None or self.cache is None:
            self._build_stores(cfg.redis_url)
        registry = ctx.parts.get("registry")
        if self.store is None and registry is not None:
            self.store = getattr(registry, "store", None)
        if self.leases is None:
            self.leases = ctx.parts.get("leases")
        if self.leases is None and self.store is not None:
            from .leases import Leases

            self.leases = ctx.parts["leases"] = Leases(self.store, ctx.clock)
        self.writer = AckWriter(self.queue, ctx.clock, store=self.store, cache=self.cache,
                                metrics=ctx.metrics)
        self.engine = DeliveryEngine(
            self.queue, self._publisher_view(), ctx.clock, consumer=self.instance_id,
            window=self.window, ack_timeout=self.ack_timeout, claim_timeout=self.claim_timeout,
            on_final=self.writer.submit, lease_check=self._lease_check, metrics=ctx.metrics,
            manager_instance_id=self.instance_id)
        self.writer.confirm = self.engine.confirm
        self.ingest = Ingest(self.engine, self.cache, ctx.clock, self.instance_id)
        self.writer.start()
        self.engine.start()
        self.deadlines.start()
        if self.leases is not None:
            from .lease_watch import LeaseWatch

            self.lease_watch = LeaseWatch(self.leases, ctx.clock)
            self.lease_watch.start(self.engine)
        hosts = ctx.parts.get("hosts")
        if self._host_ids_given:
            self.bind_bus(self.publisher, self._subscriber, self._host_ids, self._on_change)
        elif hosts is not None and hasattr(hosts, "publisher"):
            self.bind_bus(hosts.publisher, getattr(hosts, "subscriber", None),
                          lambda: hosts.machines, getattr(hosts, "on_transport_change", None))

    def _build_stores(self, redis_url: str | None) -> None:
        if redis_url:
            from ..registry.redis_conn import connect
            from .queue_redis import RedisActionQueue
            from .runtime import RedisRuntimeCache

            conn = connect(redis_url)
            self.queue = self.queue or RedisActionQueue(conn, connect(redis_url, blocking=True),
                                                        bound=self.bound)
            self.cache = self.cache or RedisRuntimeCache(conn)
        else:
            from .queue_memory import MemoryActionQueue
            from .runtime import MemoryRuntimeCache

            self.queue = self.queue or MemoryActionQueue(self.ctx.clock, bound=self.bound)
            self.cache = self.cache or MemoryRuntimeCache(self.ctx.clock)

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
        conn = getattr(self.queue, "conn", None)
        if conn is not None and self._given[0] is None:
            await conn.disconnect()

    def stop(self):
        return ensureDeferred(self._stop())

    def status(self) -> dict[str, Any]:
        out = super().status()
        if self.engine is not None:
            out["delivery"] = self.engine.stats()
        if self.writer is not None:
            out["acks"] = self.writer.status()
        return out

    # -- bus ------------------------------------------------------------------------------------
    def bind_bus(self, publisher, subscriber, host_ids: Callable[[], Iterable[str]],
                 on_transport_change=None) -> None:
        """Deliver through *publisher*, ingest from *subscriber*, manage the hosts of *host_ids*
        (a collection of host ids: a dict or set answers membership without a copy);
        ``on_transport_change(fn(host, ready))`` (optional) reports transitions at once."""
        self.publisher, self._subscriber = publisher, subscriber
        self._host_ids, self._on_change = host_ids, on_transport_change
        self._host_ids_given = True
        if self.engine is not None:
            if self.link is not None:
                self.link.stop()
            self.link = BusLink(self.engine, self.ingest, publisher, subscriber, host_ids,
                                self.ctx.clock, on_transport_change=on_transport_change)
            self.link.start()

    def _publisher_view(self):
        service = self

        class View:
            def publish_action(self, host: str, payload: bytes) -> bool:
                return service.publisher.publish_action(host, payload)

            def is_ready(self, host: str) -> bool:
                return service.publisher.is_ready(host)

        return View()

    def transport_state(self, host: str) -> str:
        return self.link.transport_state(host) if self.link is not None else NOT_ATTACHED

    def _lease_check(self, host: str, action: QueuedAction) -> bool | None:
        return self.lease_watch.check(host, action) if self.lease_watch is not None else None

    # -- actions --------------------------------------------------------------------------------
    async def submit(self, host: str, commands: list[dict[str, Any]], *, controller_token: str | None,
                     beach: str | None) -> Submitted:
        """Enqueue validated commands (``QueueFull`` / ``QueueUnavailable`` propagate)."""
        now = self.ctx.clock.seconds()
        new = [NewAction(c["id"], c, controller_token, now, beach) for c in commands]
        try:
            # handed to this instance's consumer at once: delivered from here, not read back
            result = await self.deadlines.wait(
                ensureDeferred(self.queue.enqueue(host, new, consumer=self.instance_id)), ENQUEUE_TIMEOUT)
        except DeadlineExceeded:
            raise QueueUnavailable("the action queue did not answer in time") from None
        except QueueFull as e:
            self._log_full(host, e, controller_token)
            raise
        if controller_token and self.lease_watch is not None:
            self.lease_watch.granted(host, controller_token)
        by_id = {c["id"]: c for c in commands}
        fresh = [QueuedAction(host, result.entries[i], i, by_id[i], controller_token, now, beach)
                 for i in result.accepted]
        if fresh:
            self.ctx.metrics.actions_enqueued_total.inc(len(fresh))
        if fresh or result.claimed:
            self.engine.adopt(host, result.claimed + fresh)
        if result.duplicates:  # (nothing per plain request: the metrics count those)
            self.log.debug("queued {n} actions ({dups} repeated); queue depth {depth}", n=len(fresh),
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
