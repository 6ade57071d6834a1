"""Membership: this instance's heartbeat in the shared store, mirrored to the audit tables.

Every ``interval`` seconds (default 5; 0.3 with standbys) the instance publishes ``{id,
endpoint, capacity, load, state, heartbeat_at}`` with a TTL (default 15 s): one call renews
its ownership lease on all its hosts.  Others judge it dead after ``dead_after`` (default two
missed heartbeats plus a tick; 1 s with standbys, see :func:`timings`), well before the TTL
removes the record.  A pause shorter than that (a GC, a 500 ms ``SIGSTOP`` at 0.3/1 s) moves
nothing.  The first heartbeat of a process clears the record a previous incarnation left
behind (``fresh``), so its stale state (say ``DRAINING``) never outlives it.

The loop is a :class:`~twisted.internet.task.LoopingCall` on the injected clock whose body
catches its own errors: a failed heartbeat is logged (once per distinct error) and the
next one tries again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background
from ..service import with_timeout
from .model import DRAINING, SERVING, Heartbeat, InstanceInfo

#: Seconds any one store call may take before it counts as failed.
STORE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Timings:
    """Heartbeat interval, record TTL, the age at which a member counts as dead, tick period."""

    interval: float
    ttl: float
    dead_after: float
    tick: float

    def check(self) -> None:
        if self.dead_after <= self.interval:
            raise ValueError(f"the lease timeout ({self.dead_after:g}s) must exceed the heartbeat "
                             f"interval ({self.interval:g}s), or live instances would be dead")
        if self.ttl <= self.dead_after:
            raise ValueError(f"membership TTL ({self.ttl:g}s) must exceed two heartbeat intervals "
                             f"plus a tick ({self.dead_after:g}s), or live instances would vanish")


def timings(interval: float, ttl: float, dead_after: float | None = None) -> Timings:
    """Dead after *dead_after* seconds without a heartbeat (unset: two missed heartbeats plus
    one tick of slack); ticks ten per interval (<= 1 s)."""
    tick = max(0.05, min(1.0, interval / 10))
    return Timings(interval, ttl, dead_after if dead_after is not None else 2 * interval + tick,
                   tick)


class Membership:
    log = Logger()

    def __init__(self, store, audit, clock: IReactorTime, *, instance_id: str, capacity: int,
                 endpoint: Callable[[], str], timings: Timings,
                 on_store_lost: Callable[[], Awaitable[object]] | None = None):
        self.store = store
        self.audit = audit
        self.clock = clock
        self.instance_id = instance_id
        self.capacity = capacity
        self.endpoint = endpoint
        self.timings = timings
        self.on_store_lost = on_store_lost
        self.incarnation = uuid.uuid4().hex
        self.state = SERVING
        self.last: Heartbeat | None = None
        self.last_ok_at: float | None = None
        self.lease_from: float | None = None  # when the last heartbeat the store took was sent
        self.failures = 0
        self.last_error: str | None = None
        self._loop: LoopingCall | None = None
        self._loop_done: Deferred | None = None

    def info(self) -> InstanceInfo:
        return InstanceInfo(self.instance_id, self.endpoint(), self.capacity, self.state)

    async def _beat(self, fresh: bool = False) -> Heartbeat:
        sent_at = self.clock.seconds()
        info = self.info()
        d = ensureDeferred(self.store.heartbeat(info, int(self.timings.ttl * 1000), self.incarnation,
                                                fresh=fresh))
        hb = await with_timeout(d, STORE_TIMEOUT, self.clock)
        lost = not fresh and self.last is not None and not hb.existed
        self.last, self.last_ok_at, self.lease_from = hb, self.clock.seconds(), sent_at
        self.audit.note_instance(info, hb.load, hb.now_ms)
        if lost:
            self.log.warn("membership record of {manager_instance_id} was gone from the shared store "
                          "(Redis restarted or we stalled past the TTL); re-registered",
                          manager_instance_id=self.instance_id)
            if self.on_store_lost is not None:
                await self.on_store_lost()
        return hb

    async def start(self) -> Heartbeat:
        """Clear our stale record and register (errors propagate: start-up retries)."""
        hb = await self._beat(fresh=True)
        if hb.existed:
            self.log.info("cleared the stale membership record of {manager_instance_id} (previous "
                          "incarnation {previous}); {load} host(s) still recorded as ours",
                          manager_instance_id=self.instance_id, previous=hb.previous_incarnation,
                          load=hb.load)
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop_done = background(self._loop.start(self.timings.interval, now=False),
                                     "membership heartbeat loop", self.log)
        return hb

    def _tick(self) -> Deferred:
        return ensureDeferred(self.beat_safely())

    async def beat_safely(self) -> bool:
        """One heartbeat; never raises.  True when the store took it."""
        try:
            await self._beat()
        except Exception as e:
            self.failures += 1
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
            if error != self.last_error or self.failures % 12 == 0:
                self.log.warn("heartbeat of {manager_instance_id} failed ({error}); {failures} in a "
                              "row", manager_instance_id=self.instance_id, error=error,
                              failures=self.failures)
            self.last_error = error
            return False
        if self.failures:
            self.log.info("heartbeat of {manager_instance_id} recovered after {failures} failure(s)",
                          manager_instance_id=self.instance_id, failures=self.failures)
        self.failures, self.last_error = 0, None
        return True

    def lease_held(self) -> bool:
        """Whether others still count this instance as live, by its own clock: the last
        heartbeat the store took was sent less than ``dead_after`` ago (measured from the
        send, so the lease ends here no later than in the store).  An owner that cannot renew
        (Redis partitioned away, a long pause) delivers nothing once its lease may be over."""
        if self.lease_from is None:
            return False
        return self.clock.seconds() - self.lease_from < self.timings.dead_after

    async def drain(self) -> bool:
        """Publish ``DRAINING`` now (no new hosts will be placed here)."""
        self.state = DRAINING
        return await self.beat_safely()

    def stop_loop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    async def leave(self) -> int:
        """Stop heartbeating and delete our record; returns hosts still recorded as ours."""
        self.stop_loop()
        d = ensureDeferred(self.store.leave(self.instance_id))
        return await with_timeout(d, STORE_TIMEOUT, self.clock)

    def status(self) -> dict:
        out: dict = {"state": self.state, "incarnation": self.incarnation,
                     "heartbeat_interval": self.timings.interval, "ttl": self.timings.ttl,
                     "dead_after": self.timings.dead_after}
        if self.last_ok_at is not None:
            out["last_heartbeat_age"] = round(self.clock.seconds() - self.last_ok_at, 3)
        if self.last is not None:
            out["load"] = self.last.load
        if self.last_error:
            out["error"] = self.last_error
            out["failures"] = self.failures
        return out
