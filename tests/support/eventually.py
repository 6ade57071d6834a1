"""The one bounded polling helper, for conditions the product exposes no event for.

Prefer awaiting an event the product publishes (``SessionEvents.wait_for``, a Deferred
the part returns).  Where only state can be read (another process, a server's table),
use these: they poll with a short fixed step until *check* is truthy, return its value,
and fail with the last value or error and what was awaited when the bound runs out.

* :func:`eventually` (async, Twisted): ``await eventually(lambda: x.done, what="x")``;
  *check* may return a Deferred or coroutine, which is awaited.
* :func:`eventually_sync` (blocking, for subprocess and HTTP tests outside the reactor).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT = 10.0
STEP = 0.02


class NotYet(AssertionError):
    """The awaited condition did not hold within the bound."""


async def eventually(check: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT,
                     what: str = "the condition", step: float = STEP,
                     errors: tuple[type[BaseException], ...] = ()) -> Any:
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if isinstance(value, Deferred) or inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last = value
        except errors as e:  # expected while the condition cannot be read yet
            last = e
        if time.monotonic() >= deadline:
            raise NotYet(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})")
        await deferLater(reactor, step, lambda: None)


def eventually_sync(check: Callable[[], Any], *, timeout: float = DEFAULT_TIMEOUT,
                    what: str = "the condition", step: float = 0.05,
                    errors: tuple[type[BaseException], ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except errors as e:
            last = e
        if time.monotonic() >= deadline:
            raise NotYet(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})")
        time.sleep(step)
