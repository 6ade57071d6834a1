"""Retry with capped exponential backoff and jitter, on an injected clock."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

T = TypeVar("T")


def backoff(initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0,
            jitter: Callable[[], float] = random.random) -> Callable[[int], float]:
    """``delay(attempt)``: initial * factor**attempt, capped, plus up to 50% jitter (full-redo safe)."""

    def delay(attempt: int) -> float:
        base = min(maximum, initial * (factor ** min(attempt, 64)))
        return min(maximum, base * (1.0 + 0.5 * jitter()))

    return delay


async def retrying(fn: Callable[[], Awaitable[T]], clock: IReactorTime, *,
                   should_retry: Callable[[Exception], bool] = lambda e: True,
                   delay: Callable[[int], float] | None = None,
                   attempts: int | None = None,
                   on_retry: Callable[[int, Exception, float], None] | None = None) -> T:
    """Await ``fn()`` until it succeeds; Twisted-side coroutine (awaits Deferreds only)."""
    delay = delay or backoff()
    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as e:
            attempt += 1
            if not should_retry(e) or (attempts is not None and attempt >= attempts):
                raise
            wait = delay(attempt - 1)
            if on_retry is not None:
                on_retry(attempt, e, wait)
            await deferLater(clock, wait)
