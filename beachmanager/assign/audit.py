"""The audit mirror of assignment: ``manager_instance``, ``manager_assignment`` and every move.

Redis holds the live truth (atomic claims); PostgreSQL holds what auditors and
controllers read.  Writes are buffered (bounded) and flushed in one transaction per
tick, so a slow or restarting database never delays a placement:

* ``manager_instance``: this instance's row (endpoint, capacity, load, last heartbeat),
  written on every heartbeat.
* ``manager_assignment``: one row per host, written by its *owner* (whose instance row
  exists, satisfying the foreign key); the owner re-asserts all its rows every
  heartbeat, so the table heals after a database outage.  An update never moves a row
  back in time (``assigned_at`` only grows), so racing writers converge.
* ``manager_assignment_event``: every move, written once by the instance that made it.

When the database is down the pending writes wait (history capped at
:data:`MAX_PENDING_EVENTS`, oldest dropped with a warning) and are retried on the next
flush.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from .._aio import as_deferred
from .model import InstanceInfo, Move, Ownership

MAX_PENDING_EVENTS = 10_000
SCHEMA = "beach_manager"


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class MemoryAudit:
    """The embedded default: the same records, kept in memory (history bounded)."""

    def __init__(self, max_events: int = MAX_PENDING_EVENTS):
        self.instances: dict[str, tuple[InstanceInfo, int, int]] = {}
        self.assignments: dict[str, Ownership] = {}
        self.events: deque[tuple[Move, str]] = deque(maxlen=max_events)

    def note_instance(self, info: InstanceInfo, load: int, at_ms: int) -> None:
        self.instances[info.id] = (info, load, at_ms)

    def note_owned(self, rows: list[Ownership]) -> None:
        for row in rows:
            cur = self.assignments.get(row.host_session_id)
            if cur is None or cur.assigned_at_ms <= row.assigned_at_ms:
                self.assignments[row.host_session_id] = row

    def note_moves(self, moves: list[Move], recorded_by: str) -> None:
        for m in moves:
            self.events.append((m, recorded_by))
            if m.to is None:
                cur = self.assignments.get(m.host_session_id)
                if cur is not None and cur.owner == m.from_:
                    del self.assignments[m.host_session_id]

    def flush(self) -> Deferred:
        return succeed(True)

    def status(self) -> dict:
        return {"store": "memory", "pending": 0}


class PostgresAudit:
    """Buffers the notes, then writes them to PostgreSQL on :meth:`flush`."""

    log = Logger()

    def __init__(self, pool_owner, max_events: int = MAX_PENDING_EVENTS, pool_wait: float = 2.0):
        self.pool_owner = pool_owner  # has .pool (PostgresService)
        self.pool_wait = pool_wait
        self._instance: tuple[InstanceInfo, int, int] | None = None
        self._rows: dict[str, Ownership] = {}
        self._released: dict[str, Move] = {}
        self._events: deque[tuple[Move, str]] = deque()
        self._max_events = max_events
        self._flushing: Deferred | None = None
        self.dropped_events = 0
        self.last_error: str | None = None

    def note_instance(self, info: InstanceInfo, load: int, at_ms: int) -> None:
        self._instance = (info, load, at_ms)

    def note_owned(self, rows: list[Ownership]) -> None:
        for row in rows:
            self._rows[row.host_session_id] = row
            self._released.pop(row.host_session_id, None)

    def note_moves(self, moves: list[Move], recorded_by: str) -> None:
        for m in moves:
            if len(self._events) >= self._max_events:
                self._events.popleft()
                self.dropped_events += 1
                if self.dropped_events in (1, 100) or self.dropped_events % 1000 == 0:
                    self.log.warn("assignment audit: database unavailable, {dropped} oldest move "
                                  "records dropped", dropped=self.dropped_events)
            self._events.append((m, recorded_by))
            if m.to is None and m.from_:
                self._released[m.host_session_id] = m
                self._rows.pop(m.host_session_id, None)

    def flush(self) -> Deferred:
        """Write what is pending; fires True when written, False when it must wait (logged)."""
        if self._flushing is not None:
            after: Deferred = Deferred()

            def then_after(result: object) -> object:
                after.callback(None)
                return result

            self._flushing.addBoth(then_after)
            return after.addCallback(lambda _: self.flush())
        if self._instance is None and not (self._rows or self._released or self._events):
            return succeed(True)
        instance, rows = self._instance, list(self._rows.values())
        released, events = list(self._released.values()), list(self._events)
        self._instance, self._rows, self._released = None, {}, {}
        self._events = deque()

        def done(_):
            self._flushing = None
            self.last_error = None
            return True

        def failed(failure):
            self._flushing = None
            # Put back what was not written, newer notes taking precedence.
            if self._instance is None:
                self._instance = instance
            for row in rows:
                self._rows.setdefault(row.host_session_id, row)
            for m in released:
                self._released.setdefault(m.host_session_id, m)
            self._events = deque(events + list(self._events))
            while len(self._events) > self._max_events:
                self._events.popleft()
                self.dropped_events += 1
            error = failure.getErrorMessage().splitlines()[0] if failure.getErrorMessage() else \
                failure.type.__name__
            if error != self.last_error:
                self.log.warn("assignment audit: write to PostgreSQL failed ({error}); will retry",
                              error=error)
            self.last_error = error
            return False

        self._flushing = as_deferred(self._write(instance, rows, released, events))
        self._flushing.addCallbacks(done, failed)
        return self._flushing

    async def _write(self, instance, rows: list[Ownership], released: list[Move],
                     events: list[tuple[Move, str]]) -> None:
        pool = self.pool_owner.pool
        if pool is None:
            raise ConnectionError("the database pool is not open")
        async with pool.connection(timeout=self.pool_wait) as conn, conn.transaction():
            if instance is not None:
                info, load, at_ms = instance
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.manager_instance "
                    "(id, endpoint, capacity, load, last_heartbeat_at) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO UPDATE SET endpoint = EXCLUDED.endpoint, "
                    "capacity = EXCLUDED.capacity, load = EXCLUDED.load, "
                    "last_heartbeat_at = EXCLUDED.last_heartbeat_at",
                    (info.id, info.endpoint, info.capacity, load, _ts(at_ms)))
            if rows:
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.manager_assignment AS a "
                    "(host_session_id, manager_instance_id, assigned_at, reassigned_from, reason) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::text[], "
                    "%s::text[]) "
                    "ON CONFLICT (host_session_id) DO UPDATE SET "
                    "manager_instance_id = EXCLUDED.manager_instance_id, "
                    "assigned_at = EXCLUDED.assigned_at, reassigned_from = EXCLUDED.reassigned_from, "
                    "reason = EXCLUDED.reason "
                    "WHERE a.assigned_at <= EXCLUDED.assigned_at AND "
                    "(a.manager_instance_id, a.assigned_at, a.reason) IS DISTINCT FROM "
                    "(EXCLUDED.manager_instance_id, EXCLUDED.assigned_at, EXCLUDED.reason)",
                    ([r.host_session_id for r in rows], [r.owner for r in rows],
                     [_ts(r.assigned_at_ms) for r in rows], [r.reassigned_from for r in rows],
                     [r.reason for r in rows]))
            for m in released:
                await conn.execute(
                    f"DELETE FROM {SCHEMA}.manager_assignment "
                    "WHERE host_session_id = %s AND manager_instance_id = %s AND assigned_at <= %s",
                    (m.host_session_id, m.from_, _ts(m.at_ms)))
            if events:
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.manager_assignment_event "
                    "(host_session_id, manager_instance_id, reassigned_from, reason, assigned_at, "
                    "recorded_by) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
                    "%s::timestamptz[], %s::text[]) ON CONFLICT DO NOTHING",
                    ([m.host_session_id for m, _ in events], [m.to for m, _ in events],
                     [m.from_ for m, _ in events], [m.reason for m, _ in events],
                     [_ts(m.at_ms) for m, _ in events], [by for _, by in events]))

    def status(self) -> dict:
        out = {"store": "postgres", "pending": len(self._rows) + len(self._released) + len(self._events),
               "dropped_events": self.dropped_events}
        if self.last_error:
            out["error"] = self.last_error
        return out
