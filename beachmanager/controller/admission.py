"""Load shedding for new actions: refuse early, so that an overloaded instance keeps storing
at its best rate instead of collapsing.

Each action accepted here costs work until its ack is stored.  When more arrive than the
instance can finish, the backlog grows, every accepted action waits longer, and the CPU goes
to requests that will time out: the stored rate falls (measured: 498/s at 2,000 offered,
against 811/s at 1,000).  :class:`Admission` refuses a request *before* it costs a queue
write when the backlog this instance holds (actions accepted for hosts it delivers to, not yet
finished) would take longer than ``target`` seconds to clear at the rate the instance is
finishing them, and has stayed over it for a whole ``window`` (the smallest backlog seen in
the last window is over the limit: a standing queue, not a burst that the instance clears on
its own; CoDel's idea).  Accepted actions then wait about ``target``, and the excess gets 429
with a ``Retry-After`` at once.

The backlog is read from the delivery engine on every check (a gauge it keeps, not a count
kept here that a lost action could skew), plus what was admitted since the engine last
counted.  The finishing rate is an exponentially weighted average over ``window``-second
slices of the engine's finished counter.  Nothing here reads a wall clock: the clock is the
one handed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

#: Seconds of backlog the instance accepts (at its measured rate) before it refuses.
TARGET_SECONDS = 0.25
#: Backlog always accepted, whatever the rate (a cold start, a quiet instance).
FLOOR = 100
#: Weight of the newest slice in the rate average.
ALPHA = 0.3


@dataclass(frozen=True)
class Refusal:
    backlog: int
    limit: int
    retry_after_seconds: int


class Admission:
    """*backlog* returns the actions held now (waiting, in flight, or finished and not yet
    stored); *finished* the engine's running count of finished actions."""

    def __init__(self, clock: IReactorTime, backlog: Callable[[], int],
                 finished: Callable[[], int], *, target: float = TARGET_SECONDS,
                 floor: int = FLOOR, window: float = 0.5) -> None:
        if target <= 0 or floor < 1 or window <= 0:
            raise ValueError("admission needs target > 0, floor >= 1, window > 0")
        self.clock, self.backlog, self.finished = clock, backlog, finished
        self.target, self.floor, self.window = target, floor, window
        self.rate = 0.0  # finished per second
        self._slice_start = clock.seconds()
        self._slice_finished = finished()
        self._slice_min: int | None = None  # smallest backlog seen in this slice
        self.standing = 0  # smallest backlog of the last whole slice
        self._refused = 0

    def _update(self, now: float, backlog: int) -> None:
        self._slice_min = backlog if self._slice_min is None else min(self._slice_min, backlog)
        elapsed = now - self._slice_start
        if elapsed < self.window:
            return
        done = self.finished()
        measured = max(0, done - self._slice_finished) / elapsed
        self.rate = measured if self.rate == 0 else ALPHA * measured + (1 - ALPHA) * self.rate
        self.standing = self._slice_min  # (this check's backlog included)
        self._slice_start, self._slice_finished, self._slice_min = now, done, None

    def limit(self) -> int:
        return max(self.floor, int(self.rate * self.target))

    def check(self, adding: int) -> Refusal | None:
        """None: take the *adding* actions; else why not and when to come back."""
        backlog = self.backlog()
        self._update(self.clock.seconds(), backlog)
        limit = self.limit()
        if backlog + adding <= limit or backlog == 0 or self.standing <= limit:
            return None
        self._refused += adding
        over = backlog + adding - limit
        wait = over / self.rate if self.rate > 0 else 1.0
        return Refusal(backlog, limit, max(1, math.ceil(wait)))

    def status(self) -> dict[str, float | int]:
        return {"backlog": self.backlog(), "standing": self.standing, "limit": self.limit(),
                "finished_per_s": round(self.rate, 1), "target_seconds": self.target,
                "refused_actions": self._refused}


__all__ = ["Admission", "Refusal"]
