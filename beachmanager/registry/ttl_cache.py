"""A small bounded map whose entries expire on an injected clock.

Used for the hot look-ups of the request path (which private beach holds a session,
which controller tokens hold a live lease), so that a steady stream of requests does
not cost a database transaction each.  Each entry carries its own deadline; the map
holds at most ``bound`` entries and drops the oldest-inserted first.  Nothing here
knows what the values mean: the callers decide what may be cached and for how long.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, clock: IReactorTime, ttl: float, bound: int = 10_000):
        if ttl < 0 or bound < 1:
            raise ValueError("ttl must be >= 0 and bound >= 1")
        self.clock = clock
        self.ttl = ttl
        self.bound = bound
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> V | None:
        item = self._items.get(key)
        if item is not None:
            if item[0] > self.clock.seconds():
                self.hits += 1
                return item[1]
            del self._items[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: V, until: float | None = None) -> None:
        """Keep *value* until ``min(until, now + ttl)`` (seconds on the clock)."""
        deadline = self.clock.seconds() + self.ttl
        if until is not None:
            deadline = min(deadline, until)
        if deadline <= self.clock.seconds():
            self._items.pop(key, None)
            return
        self._items[key] = (deadline, value)
        self._items.move_to_end(key)
        while len(self._items) > self.bound:
            self._items.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._items.pop(key, None)

    def discard_if(self, doomed: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key *doomed* accepts (a scan: for rare invalidations)."""
        keys = [k for k in self._items if doomed(k)]
        for k in keys:
            del self._items[k]
        return len(keys)

    def clear(self) -> None:
        self._items.clear()
