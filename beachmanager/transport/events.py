"""Host sessions' state, published once, in order: the one readiness stream of the manager.

Every host session (``transport.session.HostSession``) reports each change of its state here, exactly
once and only after the change is complete (a session announces ``ready`` after its bus
sender is attached, so a subscriber that publishes at once is not refused).  Everything
that cares whether a host is ready subscribes: the controller's delivery lanes, the
assignment service (which mirrors readiness to the shared store for other instances), the
attach-by-code bookkeeping, the debug views and the tests.  Nothing polls.

:class:`SessionEvents` also keeps the latest change of each managed host, so "is this
host ready here" has one answer (:meth:`SessionEvents.state`).  A host that stops being
managed publishes a final change with ``new=STOPPED`` and ``removed=True``; its entry is
then dropped (every map keyed by host follows it).

A change carries the session's :class:`Role`: today every session is ``ACTIVE``; a warm
standby transport (hot failover) is the same session with ``role=STANDBY``, so the
stream, its subscribers and the state table need no second copy.

Dispatch is synchronous, in subscription order.  A change published while subscribers
are being called (a subscriber reacting by changing another session) is queued and
delivered after the current one, to every subscriber, so all of them see one order.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ..protocol.session import SessionState


class Role(enum.Enum):
    """What the session is for: ``ACTIVE`` delivers actions; ``STANDBY`` only listens."""

    ACTIVE = "active"
    STANDBY = "standby"


@dataclass(frozen=True)
class SessionChange:
    """One state change of one host session; ``seq`` orders every change of the stream."""

    host_session_id: str
    seq: int
    old: SessionState | None  # None: the first change of a newly managed host
    new: SessionState
    role: Role = Role.ACTIVE
    at: float = 0.0
    reason: str | None = None
    transport_id: str | None = None
    removed: bool = False  # the host is no longer managed here (a final change)
    old_role: Role | None = None  # the role before this change (None: first change)

    @property
    def ready(self) -> bool:
        return self.new is SessionState.READY

    @property
    def was_ready(self) -> bool:
        return self.old is SessionState.READY

    @property
    def readiness_changed(self) -> bool:
        return self.ready != self.was_ready

    @property
    def role_changed(self) -> bool:
        """A standby promoted to active, or an active session stepping down."""
        return self.old_role is not None and self.old_role is not self.role


Subscriber = Callable[[SessionChange], object]
_Waiter = tuple[Callable[[SessionChange], bool], "Deferred[SessionChange]"]

#: Changes queued while dispatching (a subscriber changing sessions); bounded.
MAX_PENDING = 100_000
#: Recent changes kept for the debug views.
HISTORY = 256


class SessionEvents:
    """The ordered stream of session changes, and each managed host's latest one."""

    log = Logger()

    def __init__(self, clock: Callable[[], float]):
        self._now = clock
        self._subscribers: list[Subscriber] = []
        self._latest: dict[str, SessionChange] = {}
        self._pending: deque[SessionChange] = deque()
        self._dispatching = False
        self._seq = 0
        self._history: deque[SessionChange] = deque(maxlen=HISTORY)
        self._waiters: list[_Waiter] = []

    # -- publishing (host sessions) ---------------------------------------------------------
    def publish(self, host_session_id: str, new: SessionState, *, role: Role = Role.ACTIVE,
                reason: str | None = None, transport_id: str | None = None,
                removed: bool = False) -> SessionChange | None:
        """Record and announce a change; None when nothing changed (same state and role)."""
        last = self._latest.get(host_session_id)
        if last is not None and last.new is new and last.role is role and not removed:
            return None
        if last is None and removed:
            return None
        self._seq += 1
        change = SessionChange(host_session_id, self._seq, last.new if last else None, new, role,
                               self._now(), reason, transport_id, removed,
                               last.role if last else None)
        if removed:
            self._latest.pop(host_session_id, None)
        else:
            self._latest[host_session_id] = change
        self._history.append(change)
        if len(self._pending) >= MAX_PENDING:
            raise RuntimeError("session change storm: subscribers keep changing sessions")
        self._pending.append(change)
        if not self._dispatching:
            self._drain()
        return change

    def _drain(self) -> None:
        self._dispatching = True
        try:
            while self._pending:
                change = self._pending.popleft()
                for fn in list(self._subscribers):
                    try:
                        fn(change)
                    except Exception:
                        self.log.failure("session subscriber {fn!r} failed on {host} {new}", fn=fn,
                                         host=change.host_session_id, new=change.new.value)
                self._wake(change)
        finally:
            self._dispatching = False

    # -- subscribing ---------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber, *, replay: bool = False) -> Callable[[], None]:
        """Call ``fn(change)`` for every later change; with *replay*, first once for each
        managed host's latest change (a late subscriber catches up).  Returns the undo."""
        self._subscribers.append(fn)
        if replay:
            for change in list(self._latest.values()):
                fn(change)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    def wait_for(self, predicate: Callable[[SessionChange], bool],
                 *, current: bool = True) -> Deferred[SessionChange]:
        """A Deferred firing with the first change (or, with *current*, latest state) that
        satisfies *predicate*.  Cancelling it forgets the wait."""
        if current:
            for change in self._latest.values():
                if predicate(change):
                    return succeed(change)
        entry: list[_Waiter] = []

        def cancel(d: Deferred[SessionChange]) -> None:
            if entry and entry[0] in self._waiters:
                self._waiters.remove(entry[0])

        waiter: Deferred[SessionChange] = Deferred(cancel)
        entry.append((predicate, waiter))
        self._waiters.append(entry[0])
        return waiter

    def _wake(self, change: SessionChange) -> None:
        if not self._waiters:
            return
        fire = [(p, d) for p, d in self._waiters if p(change)]
        for item in fire:
            self._waiters.remove(item)
            item[1].callback(change)

    # -- reading ---------------------------------------------------------------------------------
    def latest(self, host_session_id: str) -> SessionChange | None:
        return self._latest.get(host_session_id)

    def state(self, host_session_id: str) -> SessionState | None:
        """The host's session state here; None when it is not managed here."""
        change = self._latest.get(host_session_id)
        return change.new if change is not None else None

    def is_ready(self, host_session_id: str, role: Role = Role.ACTIVE) -> bool:
        change = self._latest.get(host_session_id)
        return change is not None and change.ready and change.role is role

    def managed(self, host_session_id: str) -> bool:
        return host_session_id in self._latest

    def hosts(self) -> Iterator[str]:
        return iter(list(self._latest))

    def __len__(self) -> int:
        return len(self._latest)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for change in self._latest.values():
            out[change.new.value] = out.get(change.new.value, 0) + 1
        return out

    def recent(self, count: int = HISTORY) -> list[SessionChange]:
        """The latest *count* changes, oldest first."""
        return list(self._history)[-count:] if count > 0 else []


def ready_of(host_session_id: str) -> Callable[[SessionChange], bool]:
    """A :meth:`SessionEvents.wait_for` predicate: *host_session_id* is ready."""
    return lambda c: c.host_session_id == host_session_id and c.ready


__all__ = ["Role", "SessionChange", "SessionEvents", "SessionState", "ready_of"]
