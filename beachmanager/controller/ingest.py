"""Ingestion: final acks made durable, host state and health kept hot.

:class:`AckWriter` takes every :class:`~.delivery.FinalAck` from the delivery engine
into a bounded buffer and, in batches, (1) appends it to the action log of the
registry store (idempotent on the action id; one ``record_actions_by_beach`` transaction
for the batch, each private beach under its own tenant), (2) removes it from the queue
(XACK + delete; one ``finish_many`` call for the batch) and
(3) publishes its view to the runtime cache; then it observes
``action_latency_seconds`` (accepted to ack stored).  The queue entry is removed only
after the log write, so a crash or a store outage never loses an ack: a failed
batch goes back to the front of the buffer and is retried with backoff, and an ack
that overflowed the buffer is still pending in the queue, gets claimed again and
comes back as a repeat.

Up to ``concurrency`` batches (default :data:`WRITERS`) are written at once: an ack that arrives while a batch
is being written starts the next batch instead of waiting for it (each write is a few
round trips through a busy event loop, so waiting would add most of one to every
ack's latency).  The buffer bound counts the acks being written.

:class:`Ingest` handles the host's ``beach.manager.ack|state|health`` payloads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
)
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ..protocol import harness
from ..telemetry.logs import fields
from .delivery import FinalAck, final_view

DEFAULT_BUFFER = 20_000
BATCH = 256
#: Batches written at once, each one transaction: 2 of the registry pool's 10 connections,
#: so request-path look-ups still get one.
WRITERS = 2


class AckWriter:
    log = Logger()

    def __init__(self, queue, clock: IReactorTime, *, store=None, cache=None, metrics=None,
                 bound: int = DEFAULT_BUFFER, record: Callable[[FinalAck], Any] | None = None,
                 concurrency: int = WRITERS):
        self.queue, self.clock, self.store, self.cache = queue, clock, store, cache
        self.metrics = metrics
        self.bound = bound
        self.concurrency = max(1, concurrency)
        self.record = record
        #: called with each final ack once it is stored and dequeued (the engine's ``confirm``)
        self.confirm: Callable[[FinalAck], Any] | None = None
        self.buffer: deque[FinalAck] = deque()
        self._held: set[tuple[str, str]] = set()  # buffered or being written
        self._writes: set[Deferred] = set()  # batches being written
        self._backing_off = 0  # failed writes waiting out their backoff: start no new ones
        # the reactor call that starts a batch for newly submitted acks
        self._soon: IDelayedCall | None = None
        self.running = False
        self._wake: Deferred | None = None
        self._loop: Deferred | None = None
        self.written = 0
        self.overflowed = 0
        self.failures = 0
        self.orphans = 0  # acks of sessions that no longer exist (nothing to log them under)
        self.last_error: str | None = None

    def start(self) -> None:
        self.running = True
        self._loop = ensureDeferred(self._run())
        self._loop.addErrback(lambda f: self.log.failure("ack writer stopped", failure=f))

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop after writing what is buffered (up to *drain_timeout* seconds)."""
        deadline = self.clock.seconds() + drain_timeout
        while (self.buffer or self._writes) and self.clock.seconds() < deadline and self.failures == 0:
            await deferLater(self.clock, 0.01, lambda: None)
        self.running = False
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        self._soon = None
        self._poke()
        busy = [d for d in (self._loop, *self._writes) if d is not None and not d.called]
        if busy:
            done: Deferred = Deferred()
            left = [len(busy)]

            def one_more(r):
                left[0] -= 1
                if left[0] == 0 and not done.called:
                    done.callback(None)
                return r

            for d in busy:
                d.addBoth(one_more)
            try:  # a cancelled or slow stop must not cancel a write midway
                await done.addTimeout(1.0, self.clock)
            except DeferredTimeout:
                self.log.warn("stopping with {n} acks not written (their actions stay queued and "
                              "are redelivered by the next owner)", n=len(self._held))

    def submit(self, final: FinalAck) -> None:
        key = (final.host, final.action.action_id)
        if key in self._held:
            return  # already waiting to be written (a repeat while the store is down)
        if len(self._held) >= self.bound:
            self.overflowed += 1
            if self.overflowed in (1, 100) or self.overflowed % 10_000 == 0:
                self.log.warn("ack buffer full ({bound}): {action_id} stays pending in the queue and "
                              "will be written when it is claimed again ({n} so far)",
                              bound=self.bound, action_id=final.action.action_id, n=self.overflowed,
                              **fields(host_session_id=final.host))
            return
        self.buffer.append(final)
        self._held.add(key)
        if self._soon is None:  # acks of the same reactor turn (one packet, one burst) share a batch
            self._soon = self.clock.callLater(0, self._poke_soon)

    def _poke_soon(self) -> None:
        self._soon = None
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and not self._wake.called:
            d, self._wake = self._wake, None
            d.callback(None)

    async def _run(self) -> None:
        while self.running:
            if not self.buffer or len(self._writes) >= self.concurrency or self._backing_off:
                self._wake = Deferred()
                await self._wake
                continue
            batch = [self.buffer.popleft() for _ in range(min(BATCH, len(self.buffer)))]
            d = ensureDeferred(self._write_batch(batch))
            self._writes.add(d)
            d.addErrback(lambda f: self.log.failure("ack write failed unexpectedly", failure=f))
            d.addBoth(self._written, d)

    def _written(self, _: object, d: Deferred[None]) -> None:
        """A batch write settled (its failure, if any, was logged): make room for the next."""
        self._writes.discard(d)
        self._poke()

    async def _write_batch(self, batch: list[FinalAck]) -> None:
        try:
            await self._write(batch)
        except CancelledError:
            self.buffer.extendleft(reversed(batch))
            return
        except Exception as e:
            self.buffer.extendleft(reversed(batch))  # back to the front, nothing lost
            self.failures += 1
            self.last_error = str(e) or type(e).__name__
            if self.failures in (1, 10) or self.failures % 100 == 0:
                self.log.warn("writing {n} acks failed ({error}); retrying (attempt {attempt})",
                              n=len(batch), error=self.last_error, attempt=self.failures)
            self._backing_off += 1
            try:
                await deferLater(self.clock, min(5.0, 0.05 * 2 ** min(self.failures, 7)), lambda: None)
            finally:
                self._backing_off -= 1
            return
        for final in batch:
            self._held.discard((final.host, final.action.action_id))
        if self.failures:
            self.log.info("acks written again after {n} failed attempts", n=self.failures)
        self.failures = 0
        self.last_error = None

    async def _write(self, batch: list[FinalAck]) -> None:
        if self.store is not None:
            await self._log_batches(batch)  # one transaction per private beach
        by_host: dict[str, list[tuple[str, str, str]]] = {}
        for final in batch:
            by_host.setdefault(final.host, []).append(
                (final.action.action_id, final.action.entry_id, final.status))
        await self.queue.finish_many(by_host)
        now = self.clock.seconds()  # "stored": logged and dequeued (what the latency measures)
        if self.cache is not None:
            await self.cache.put_acks([(f.host, f.action.action_id, _stored_view(f, now)) for f in batch])
        for final in batch:
            if self.confirm is not None:
                self.confirm(final)
            if final.repeat:
                continue
            self.written += 1
            if self.metrics is not None:
                self.metrics.action_latency_seconds.observe(max(0.0, now - final.action.enqueued_at))
            if self.record is not None:
                self.record(final)

    async def _log_batches(self, batch: list[FinalAck]) -> None:
        """``record_actions_by_beach``: one transaction for the batch, each beach under its own
        tenant, beaches in a fixed order."""
        from ..registry.store import Tenant

        by_beach: dict[str, list[FinalAck]] = {}
        for final in batch:
            if final.action.beach:
                by_beach.setdefault(final.action.beach, []).append(final)
        if not by_beach:
            return
        items = sorted(by_beach.items())
        outcomes = await self.store.record_actions_by_beach(
            [(Tenant(beach), [_record(f) for f in finals]) for beach, finals in items])
        for (_, finals), outcome in zip(items, outcomes, strict=True):
            for final, logged in zip(finals, outcome, strict=True):
                if logged == "no_session":
                    self._no_session(final)

    def _no_session(self, final: FinalAck) -> None:
        self.orphans += 1
        if self.orphans in (1, 10) or self.orphans % 1000 == 0:
            self.log.info("action {action_id} finished for a session that no longer exists ({n} so far)",
                          action_id=final.action.action_id, n=self.orphans,
                          **fields(host_session_id=final.host))


    @property
    def pending(self) -> int:
        """Final acks buffered or being written (not yet stored)."""
        return len(self._held)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"buffered": len(self._held), "written": self.written,
                               "overflowed": self.overflowed}
        if self.last_error:
            out["error"] = self.last_error
        return out


def _record(final: FinalAck):
    from ..registry.store import ActionRecord

    cmd = final.action.command
    return ActionRecord(host_session_id=final.host, action_id=final.action.action_id,
                        action_type=str(cmd.get("action_type")), payload=cmd.get("payload"),
                        enqueued_at_ms=round(final.action.enqueued_at * 1000),
                        controller_token=final.action.controller_token, status=final.status,
                        acked_at_ms=round(final.acked_at * 1000))


def _stored_view(final: FinalAck, stored_at: float) -> dict[str, Any]:
    view = final_view(final)
    view["stored_latency_ms"] = round(max(0.0, stored_at - final.action.enqueued_at) * 1000, 3)
    return view


class Ingest:
    """Turns a host's ack/state/health (typed harness values from the bus subscriber) into
    engine calls and hot snapshots."""

    log = Logger()

    def __init__(self, engine, cache, clock: IReactorTime, manager_instance_id: str | None = None):
        self.engine, self.cache, self.clock = engine, cache, clock
        self.manager_instance_id = manager_instance_id
        self.last_state_seq: dict[str, int] = {}

    def forget(self, host: str) -> None:
        """*host* is no longer managed here."""
        self.last_state_seq.pop(host, None)

    # -- typed values (what the bus subscriber hands out) -------------------------------------
    def ack_value(self, host: str, ack: harness.ActionAck) -> None:
        self.engine.on_ack(host, ack)

    def state_value(self, host: str, diff: harness.StateDiff) -> None:
        seq = diff.sequence
        last = self.last_state_seq.get(host)
        if last is not None and 1 < seq <= last:
            return  # older than what we hold (a restarted harness starts again at 1)
        self.last_state_seq[host] = seq
        self._keep(host, "state", harness.to_value(diff))

    def health_value(self, host: str, health: harness.HealthHeartbeat) -> None:
        self._keep(host, "health", {**harness.to_value(health),
                                    "received_at_ms": round(self.clock.seconds() * 1000)})

    def _keep(self, host: str, kind: str, value: Any) -> None:
        d = ensureDeferred(self.cache.put_snapshot(host, kind, value))
        d.addErrback(lambda f: self.log.warn("keeping the {kind} of a host failed: {error}", kind=kind,
                                             error=f.getErrorMessage(), **fields(host_session_id=host)))
