"""One timer for many waits: a Deferred still waiting at its deadline is cancelled.

``Deferred.addTimeout`` schedules (and then cancels) a reactor call per wait; on the
request path that is one timer per request.  :class:`Deadlines` instead keeps the
waits in a dict and sweeps them every ``resolution`` seconds with one looping call,
so a wait times out between ``timeout`` and ``timeout + resolution`` seconds.  A
Deferred that has already fired is not registered at all (the in-memory queue
answers at once).
"""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The wait outlived its deadline (the awaited Deferred was cancelled)."""


class Deadlines:
    def __init__(self, clock: IReactorTime, resolution: float = 0.25):
        self.clock = clock
        self.resolution = resolution
        self._waits: dict[int, tuple[float, Deferred, list[bool]]] = {}
        self._loop = LoopingCall(self._sweep)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.resolution, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def __len__(self) -> int:
        return len(self._waits)

    async def wait(self, d: Deferred[T], timeout: float) -> T:
        """What *d* gives, or :class:`DeadlineExceeded` once *timeout* seconds have passed."""
        if d.called:
            return await d
        expired = [False]
        key = id(d)
        self._waits[key] = (self.clock.seconds() + timeout, d, expired)
        try:
            return await d
        except CancelledError:
            if expired[0]:
                raise DeadlineExceeded(f"no answer within {timeout:g}s") from None
            raise
        finally:
            self._waits.pop(key, None)

    def _sweep(self) -> None:
        now = self.clock.seconds()
        due = [(d, flag) for deadline, d, flag in self._waits.values() if deadline <= now]
        for d, flag in due:
            flag[0] = True
            d.cancel()
