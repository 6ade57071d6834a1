"""The delivery engine: queued actions to hosts over the bus, acks matched, at least once.

For every host this manager owns (one :class:`Lane` each):

* entries come from the queue (a reader loop; a restart re-reads this consumer's own
  pending entries and claims other consumers' stale ones) and, for actions accepted
  by this process, straight from the REST route (:meth:`DeliveryEngine.adopt`);
* at most ``window`` actions are in flight (delivered, not acked); an ack is matched
  by action id; any final ack (ok, rejected, expired, preempted) finishes the action;
* an action not acked within ``ack_timeout`` is delivered again (the harness applies
  an id once and re-acks a repeat), with the wait doubling up to 8x, when it looks lost:
  a later delivery was acked, or the host acked nothing for a whole timeout.  A host
  that keeps acking is only slow, and gets no extra load (no redelivery storm);
* an action past its ``expires_at`` that was never delivered is finished ``expired``
  without delivering it; a pending action whose lease is gone is finished
  ``preempted`` (error code ``controller_preempted``);
* while the transport is down, actions wait (the queue bound bounds them) and flow
  on reconnect; in-flight ones go back to the front and are delivered again.
  Nothing here ever switches to another transport: there is no stall deadline.

Finished actions go to ``on_final`` (the ingestion side persists them, then removes
them from the queue).  The publisher is a small interface, so the engine is tested
with a fake one; :mod:`.session_link` follows the session stream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from ..protocol import harness
from ..protocol.fencing import STALE_EPOCH, refused_epoch
from ..telemetry.logs import fields
from .commands import action_envelope, expires_at, system_time
from .queue import ActionQueue, QueuedAction

#: Recently finished ids remembered per host (late duplicate acks, GET status).
FINISHED_MEMORY = 4096
REDELIVERY_BACKOFF_CAP = 8
#: Seconds before sending again after the transport refused a send on a full buffer.
BACKPRESSURE_RETRY = 0.005


class Publisher(Protocol):
    """The bus as the engine sees it."""

    def publish_action(self, host: str, payload: bytes) -> bool:
        """Send one ``beach.manager.action`` envelope; False when it cannot go now."""

    def is_ready(self, host: str) -> bool: ...


@dataclass
class Tracked:
    action: QueuedAction
    expires: float | None = None  # the command's expires_at, parsed once (ticks look at it often)
    attempts: int = 0
    first_sent_at: float | None = None
    sent_at: float | None = None
    deadline: float | None = None
    send_no: int = 0  # the lane's send counter at the latest delivery


@dataclass(frozen=True)
class FinalAck:
    """An action's end: what the host (or the engine) said and when."""

    host: str
    action: QueuedAction
    status: str
    acked_at: float
    attempts: int
    delivered_at: float | None
    error_code: str | None = None
    error_message: str | None = None
    host_latency_ms: int | None = None
    synthesized: bool = False  # expired/preempted decided here, never delivered
    repeat: bool = False  # finished before; only the queue removal is to be redone

    @property
    def latency(self) -> float:
        return max(0.0, self.acked_at - self.action.enqueued_at)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.action.action_id, "status": self.status,
                "applied_at": system_time(self.acked_at),
                "latency_ms": round(self.latency * 1000, 3),
                "error_code": self.error_code, "error_message": self.error_message}


@dataclass
class Lane:
    host: str
    ready: bool = False
    waiting: OrderedDict[str, Tracked] = field(default_factory=OrderedDict)
    inflight: dict[str, Tracked] = field(default_factory=dict)
    finished: OrderedDict[str, FinalAck] = field(default_factory=OrderedDict)
    written: set[str] = field(default_factory=set)  # finished ids whose ack is stored
    recovered: bool = False
    retry: Any = None  # a pending call after a refused (backpressured) send
    sends: int = 0  # deliveries so far (orders them: the channel is ordered)
    acked_send_no: int = 0  # highest send number an ack came back for
    last_ack_at: float = float("-inf")

    def holds(self, action_id: str) -> Tracked | None:
        return self.inflight.get(action_id) or self.waiting.get(action_id)


class DeliveryEngine:
    log = Logger()

    def __init__(self, queue: ActionQueue, publisher: Publisher, clock: IReactorTime, *, consumer: str,
                 window: int = 32, ack_timeout: float = 5.0, claim_timeout: float = 30.0,
                 read_block: float = 1.0, on_final: Callable[[FinalAck], Any] | None = None,
                 lease_check: Callable[[str, QueuedAction], bool | None] | None = None,
                 metrics=None, manager_instance_id: str | None = None,
                 epoch_of: Callable[[str], int | None] = lambda host: None):
        self.queue, self.publisher, self.clock = queue, publisher, clock
        self.epoch_of = epoch_of  # the host's ownership epoch, stamped on every action
        self.consumer = consumer
        self.window, self.ack_timeout, self.claim_timeout = window, ack_timeout, claim_timeout
        self.read_block = read_block
        self.on_final = on_final or (lambda final: None)
        self.lease_check = lease_check
        self.metrics = metrics
        self.manager_instance_id = manager_instance_id
        self.lanes: dict[str, Lane] = {}
        self.running = False
        self._tick = LoopingCall(self._on_tick)
        self._tick.clock = clock
        self._reader: Deferred | None = None
        self._last_claim = 0.0
        self._epoch: str | None = None
        self._resets = 0
        self.counters = {"delivered": 0, "redelivered": 0, "acked": 0, "expired": 0,
                         "preempted": 0, "duplicate_acks": 0, "unknown_acks": 0, "reseeded": 0,
                         "backpressure": 0, "fenced": 0, "others_fenced": 0}

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.running = True
        self._tick.start(max(0.02, min(0.25, self.ack_timeout / 4)), now=False)
        self._reader = ensureDeferred(self._read_loop())
        self._reader.addErrback(lambda f: self.log.failure("action reader stopped", failure=f))

    def stop(self) -> Deferred | None:
        self.running = False
        if self._tick.running:
            self._tick.stop()
        return self._reader

    # -- hosts ---------------------------------------------------------------------------------
    def lane(self, host: str) -> Lane:
        lane = self.lanes.get(host)
        if lane is None:
            lane = self.lanes[host] = Lane(host, ready=self.publisher.is_ready(host))
            if self.running:
                ensureDeferred(self._recover(lane)).addErrback(
                    lambda f: self.log.failure("recovering {host} failed", failure=f, host=host))
        return lane

    def transport_changed(self, host: str, ready: bool) -> None:
        """The transport of *host* became ready (True) or went down (False)."""
        lane = self.lane(host)
        if lane.ready == ready:
            return
        lane.ready = ready
        if lane.retry is not None:
            lane.retry.cancel()
            lane.retry = None
        if ready:
            self.log.info("transport ready: delivering {waiting} waiting actions",
                          waiting=len(lane.waiting) + len(lane.inflight), **self._fields(host))
            self._pump(lane)
        else:
            self._requeue_inflight(lane)
            self.log.info("transport down: {waiting} actions wait for it",
                          waiting=len(lane.waiting), **self._fields(host))

    def forget_host(self, host: str) -> None:
        """This manager no longer owns *host* (its entries stay in the queue for the next owner)."""
        lane = self.lanes.pop(host, None)
        if lane is not None and lane.retry is not None:
            lane.retry.cancel()

    def _requeue_inflight(self, lane: Lane) -> None:
        if not lane.inflight:
            return
        back = sorted(lane.inflight.values(), key=lambda t: _order(t.action.entry_id))
        lane.inflight.clear()
        for t in reversed(back):
            t.deadline = None
            lane.waiting[t.action.action_id] = t
            lane.waiting.move_to_end(t.action.action_id, last=False)

    # -- intake --------------------------------------------------------------------------------
    def adopt(self, host: str, actions: list[QueuedAction]) -> None:
        """Actions this process just enqueued: deliver without waiting for the reader."""
        self._take(self.lane(host), actions)

    def _take(self, lane: Lane, actions: list[QueuedAction]) -> None:
        for a in actions:
            held = lane.holds(a.action_id)
            if held is not None:
                if held.action.entry_id != a.entry_id:
                    held.action = a  # re-enqueued after a Redis restart: new position
                continue
            final = lane.finished.get(a.action_id)
            if final is not None:
                if a.action_id not in lane.written:
                    # finished here, its write pending or dropped: (re)submit it
                    self._emit(replace(final, action=a, repeat=True))
                continue  # else a read that raced the removal: nothing to do
            lane.waiting[a.action_id] = Tracked(a, expires_at(a.command))
        self._pump(lane)

    async def _recover(self, lane: Lane) -> None:
        """On taking a host: this consumer's own pending entries (after a restart), then every
        entry pending with another consumer (the previous owner's): taken at once, since the
        harness applies an id once, a brief overlap with a live previous owner is harmless.
        Later claims (housekeeping) only take entries idle for ``claim_timeout``."""
        own = await self.queue.read_pending(lane.host, self.consumer, 10_000)
        stale = await self.queue.claim_stale(lane.host, self.consumer, 0.0, 10_000)
        # entries nobody has read yet (enqueued elsewhere while no lane read this host): now,
        # not when the reader's current blocking read ends
        fresh = await self.queue.read_new(lane.host, self.consumer, 10_000)
        lane.recovered = True
        if own or stale or fresh:
            self.log.info("recovered {own} own and {stale} stale pending actions, {fresh} unread",
                          own=len(own), stale=len(stale), fresh=len(fresh), **self._fields(lane.host))
        self._take(lane, own + stale + fresh)

    async def _read_loop(self) -> None:
        failures = 0
        while self.running:
            hosts = list(self.lanes)
            try:
                if not hosts:
                    await deferLater(self.clock, self.read_block, lambda: None)
                    continue
                got = await self.queue.read_new_many(hosts, self.consumer, 512, self.read_block)
                for host, actions in got.items():
                    if host in self.lanes:
                        self._take(self.lanes[host], actions)
                resets = self.queue.group_resets
                if (failures or resets != self._resets
                        or self.clock.seconds() - self._last_claim >= self.claim_timeout / 2):
                    self._resets = resets
                    await self._housekeeping(failures > 0)
                failures = 0
            except CancelledError:
                return
            except Exception as e:  # the store is down or answered oddly: never stop reading
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    self.log.warn("action queue read failed ({error}); retrying (attempt {n})",
                                  error=str(e) or type(e).__name__, n=failures)
                await deferLater(self.clock, min(5.0, 0.1 * 2 ** min(failures, 6)), lambda: None)

    async def _housekeeping(self, after_failure: bool) -> None:
        self._last_claim = self.clock.seconds()
        epoch = await self.queue.server_epoch()
        if epoch is not None:
            if self._epoch is not None and epoch != self._epoch:
                self.log.warn("redis restarted (run id changed): re-enqueueing the actions held here")
                self.queue.forget_groups()
                await self.reseed()
            self._epoch = epoch
        for lane in list(self.lanes.values()):
            if not lane.recovered:
                await self._recover(lane)
                continue
            stale = await self.queue.claim_stale(lane.host, self.consumer, self.claim_timeout, 1000)
            self._take(lane, stale)

    async def reseed(self) -> None:
        """Put every unfinished action held here back into the queue (after a store loss)."""
        for lane in list(self.lanes.values()):
            held = list(lane.inflight.values()) + list(lane.waiting.values())
            if not held:
                continue
            result = await self.queue.enqueue(lane.host, [t.action.as_new() for t in held], force=True)
            for t in held:
                entry = result.entries.get(t.action.action_id)
                if entry is not None:
                    t.action = _with_entry(t.action, entry)
            self.counters["reseeded"] += len(result.accepted)

    # -- sending -------------------------------------------------------------------------------
    def _pump(self, lane: Lane) -> None:
        if not self.running:
            return  # stopping: what is not delivered stays queued for the next owner
        now = self.clock.seconds()
        while lane.waiting and len(lane.inflight) < self.window:
            action_id, t = next(iter(lane.waiting.items()))
            if t.attempts == 0 and self._expire_or_preempt(lane, t, now):
                continue
            if not lane.ready or lane.retry is not None:
                return
            envelope = action_envelope(t.action.command, self.epoch_of(lane.host))
            if not self.publisher.publish_action(lane.host, envelope):
                self._refused(lane)
                return
            del lane.waiting[action_id]
            self._sent(lane, t, now)

    def _refused(self, lane: Lane) -> None:
        """A send was refused: transport down, or (still ready) its send buffer is full."""
        if not self.publisher.is_ready(lane.host):
            self.transport_changed(lane.host, False)
            return
        self.counters["backpressure"] += 1
        if lane.retry is None:
            lane.retry = self.clock.callLater(BACKPRESSURE_RETRY, self._retry, lane)

    def _retry(self, lane: Lane) -> None:
        lane.retry = None
        if self.lanes.get(lane.host) is lane:
            self._on_tick_lane(lane, self.clock.seconds())

    def _sent(self, lane: Lane, t: Tracked, now: float) -> None:
        if t.attempts:
            self.counters["redelivered"] += 1
            self.log.info("action {action_id} delivered again (attempt {attempt})",
                          action_id=t.action.action_id, attempt=t.attempts + 1, **self._fields(lane.host))
        else:
            self.counters["delivered"] += 1
            t.first_sent_at = now
        t.attempts += 1
        t.sent_at = now
        lane.sends += 1
        t.send_no = lane.sends
        t.deadline = now + self.ack_timeout * min(2 ** (t.attempts - 1), REDELIVERY_BACKOFF_CAP)
        lane.inflight[t.action.action_id] = t

    def _expire_or_preempt(self, lane: Lane, t: Tracked, now: float) -> bool:
        """Finish a never-delivered action that expired or lost its lease; True if it did."""
        deadline = t.expires
        if deadline is not None and deadline <= now:
            lane.waiting.pop(t.action.action_id, None)
            self._finish(lane, t, "expired", now, "expired", "expires_at passed before delivery", True)
            return True
        if self.lease_check is not None and self.lease_check(lane.host, t.action) is False:
            lane.waiting.pop(t.action.action_id, None)
            self._finish(lane, t, "preempted", now, "controller_preempted",
                         "the controller lease changed hands", True)
            return True
        return False

    def preempt(self, host: str, keep: Callable[[QueuedAction], bool], reason: str) -> int:
        """Finish ``preempted`` every not-yet-delivered action of *host* that *keep* refuses."""
        lane = self.lanes.get(host)
        if lane is None:
            return 0
        now = self.clock.seconds()
        gone = [t for t in lane.waiting.values() if t.attempts == 0 and not keep(t.action)]
        for t in gone:
            del lane.waiting[t.action.action_id]
            self._finish(lane, t, "preempted", now, "controller_preempted", reason, True)
        if gone:
            self.log.info("preempted {n} pending actions: {reason}", n=len(gone), reason=reason,
                          **self._fields(host))
            self._pump(lane)
        return len(gone)

    def _on_tick(self) -> None:
        now = self.clock.seconds()
        for lane in list(self.lanes.values()):
            self._on_tick_lane(lane, now)
        self._gauges()

    def _lost(self, lane: Lane, t: Tracked, now: float) -> bool:
        """Is an overdue action lost (deliver again) or only slow (keep waiting)?

        The channel is ordered and reliable, so an ack for something delivered later means
        this delivery was dropped on the host; a host silent for a whole ack timeout may have
        lost it.  A host that keeps acking earlier actions is only busy: delivering again
        would add load to a congested path, so the deadline moves on instead."""
        if lane.acked_send_no > t.send_no or now - lane.last_ack_at >= self.ack_timeout:
            return True
        t.deadline = now + self.ack_timeout
        return False

    def _on_tick_lane(self, lane: Lane, now: float) -> None:
        if lane.ready and lane.retry is None:
            overdue = [t for t in lane.inflight.values() if t.deadline is not None and t.deadline <= now]
            for t in sorted((t for t in overdue if self._lost(lane, t, now)),
                            key=lambda t: _order(t.action.entry_id)):
                if not self.publisher.publish_action(
                        lane.host, action_envelope(t.action.command, self.epoch_of(lane.host))):
                    self._refused(lane)
                    break
                del lane.inflight[t.action.action_id]
                self._sent(lane, t, now)
        # expiry and lease loss of actions still waiting (e.g. while the transport is down)
        for t in [t for t in lane.waiting.values() if t.attempts == 0]:
            self._expire_or_preempt(lane, t, now)
        self._pump(lane)

    # -- acks ----------------------------------------------------------------------------------
    def on_ack(self, host: str, ack: harness.ActionAck) -> bool:
        """An ActionAck from *host* (decoded once by the bus subscriber); True when it
        finished an action."""
        lane = self.lanes.get(host)
        action_id = ack.id
        if ack.error_code == STALE_EPOCH and not self._refuses_us(host, ack):
            self.counters["others_fenced"] += 1  # (acks reach every peer of the host)
            return False
        t = None
        if lane is not None:
            t = lane.inflight.pop(action_id, None) or lane.waiting.pop(action_id, None)
        if lane is None or t is None:  # (a tracked action implies its lane)
            if lane is not None and action_id in lane.finished:
                self.counters["duplicate_acks"] += 1
            else:
                self.counters["unknown_acks"] += 1
                self.log.debug("ack for unknown action {action_id}", action_id=action_id,
                               **self._fields(host))
            return False
        if ack.error_code == STALE_EPOCH:
            self._fenced(lane, t)
            return False
        now = self.clock.seconds()
        lane.last_ack_at = now
        lane.acked_send_no = max(lane.acked_send_no, t.send_no)
        self._finish(lane, t, str(ack.status), now, ack.error_code, ack.error_message, False,
                     ack.latency_ms)
        self._pump(lane)
        return True

    def _refuses_us(self, host: str, ack: harness.ActionAck) -> bool:
        """Whether a stale-epoch refusal is of this instance's epoch (not of a former
        owner's older one)."""
        ours, refused = self.epoch_of(host), refused_epoch(ack.error_message)
        return ours is None or refused is None or refused >= ours

    def _fenced(self, lane: Lane, t: Tracked) -> None:
        """The host refused an action for its epoch: another instance owns the host now.  The
        action is not finished here (its entry stays for the owner, which delivers it); this
        lane closes until this instance's session is told otherwise."""
        self.counters["fenced"] += 1
        if self.metrics is not None:
            self.metrics.fenced_actions_total.inc()
        self.log.warn("action {action_id} refused by the host: this instance's epoch is stale "
                      "(another instance owns the host); delivery stops here",
                      action_id=t.action.action_id, **self._fields(lane.host))
        self.transport_changed(lane.host, False)

    def _finish(self, lane: Lane, t: Tracked, status: str, now: float, error_code: str | None,
                error_message: str | None, synthesized: bool, host_latency: int | None = None) -> None:
        final = FinalAck(lane.host, t.action, status, now, t.attempts, t.first_sent_at,
                         error_code, error_message, host_latency, synthesized)
        lane.finished[t.action.action_id] = final
        while len(lane.finished) > FINISHED_MEMORY:
            old_id, _ = lane.finished.popitem(last=False)
            lane.written.discard(old_id)
        key = status if status in ("expired", "preempted") else "acked"
        self.counters[key] += 1
        if self.metrics is not None:
            self.metrics.actions_acked_total.labels(status=status).inc()
        self._emit(final)

    def _emit(self, final: FinalAck) -> None:
        try:
            self.on_final(final)
        except Exception:
            self.log.failure("final ack sink failed for {action_id}", action_id=final.action.action_id)

    def confirm(self, final: FinalAck) -> None:
        """The ack of *final* is stored and its queue entry removed."""
        lane = self.lanes.get(final.host)
        if lane is not None and final.action.action_id in lane.finished:
            lane.written.add(final.action.action_id)

    # -- views ---------------------------------------------------------------------------------
    def describe(self, host: str, action_id: str) -> dict[str, Any] | None:
        """What this engine knows of one action (None when it does not hold it)."""
        lane = self.lanes.get(host)
        if lane is None:
            return None
        final = lane.finished.get(action_id)
        if final is not None:
            return final_view(final)
        t = lane.holds(action_id)
        if t is None:
            return None
        out: dict[str, Any] = {"action_id": action_id, "host_session_id": host,
                               "status": "delivered" if t.attempts else "queued",
                               "attempts": t.attempts,
                               "enqueued_at_ms": round(t.action.enqueued_at * 1000)}
        if t.first_sent_at is not None:
            out["delivered_at_ms"] = round(t.first_sent_at * 1000)
        return out

    def depth(self, host: str) -> int:
        lane = self.lanes.get(host)
        return len(lane.waiting) + len(lane.inflight) if lane else 0

    def stats(self) -> dict[str, Any]:
        return {"hosts": len(self.lanes), "inflight": sum(len(x.inflight) for x in self.lanes.values()),
                "waiting": sum(len(x.waiting) for x in self.lanes.values()), **self.counters}

    def _gauges(self) -> None:
        """``acks_pending``, ``actions_inflight`` and ``action_queue_depth_max``, refreshed every
        tick (not per action)."""
        if self.metrics is None:
            return
        inflight = waiting = deepest = 0
        for x in self.lanes.values():
            inflight += len(x.inflight)
            waiting += len(x.waiting)
            deepest = max(deepest, len(x.inflight) + len(x.waiting))
        self.metrics.acks_pending.set(inflight)
        self.metrics.actions_inflight.set(inflight + waiting)
        self.metrics.action_queue_depth_max.set(deepest)

    def _fields(self, host: str) -> dict[str, Any]:
        return fields(host_session_id=host, manager_instance_id=self.manager_instance_id)


def final_view(final: FinalAck) -> dict[str, Any]:
    """The ``GET /sessions/:id/actions/:action_id`` body of a finished action."""
    out: dict[str, Any] = {
        "action_id": final.action.action_id, "host_session_id": final.host, "status": "acked",
        "ack_status": final.status, "attempts": final.attempts,
        "latency_ms": round(final.latency * 1000, 3),
        "enqueued_at_ms": round(final.action.enqueued_at * 1000),
        "acked_at_ms": round(final.acked_at * 1000)}
    if final.delivered_at is not None:
        out["delivered_at_ms"] = round(final.delivered_at * 1000)
    for key in ("error_code", "error_message"):
        if getattr(final, key):
            out[key] = getattr(final, key)
    return out


def _order(entry_id: str) -> tuple[int, int]:
    try:
        a, _, b = entry_id.partition("-")
        return int(a), int(b or 0)
    except ValueError:
        return (0, 0)


def _with_entry(action: QueuedAction, entry_id: str) -> QueuedAction:
    return replace(action, entry_id=entry_id)
