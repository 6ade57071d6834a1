"""The one bridge between asyncio (aiortc, psycopg) and Twisted.

Rules (see the project's style guide):

* asyncio code lives in its own modules and crosses into Twisted only here;
* never ``await`` a Deferred inside asyncio code: use :func:`as_future`;
* never ``ensureDeferred`` a coroutine that awaits asyncio objects: use :func:`as_deferred`;
* every Deferred that nobody waits on gets a logging errback: use :func:`background`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

T = TypeVar("T")


def _loop() -> asyncio.AbstractEventLoop:
    from twisted.internet import reactor

    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        raise RuntimeError("the asyncio reactor is not installed (use --reactor=beach-asyncio)")
    return loop


def as_deferred(coro: Coroutine[Any, Any, T]) -> Deferred[T]:
    """Run an asyncio coroutine as a task on the reactor's loop; return a Deferred of its result.

    Cancelling the Deferred cancels the task; a cancelled task fails the Deferred with
    Twisted's ``CancelledError`` (never asyncio's), so callers handle one kind."""
    d = Deferred.fromFuture(_loop().create_task(coro))
    return d.addErrback(_one_cancellation)


def _one_cancellation(failure: Failure) -> Failure:
    if failure.check(asyncio.CancelledError):
        return Failure(CancelledError())
    return failure


def as_future(d: Deferred[T]) -> asyncio.Future[T]:
    """Await a Deferred from asyncio code: ``await as_future(d)``."""
    return d.asFuture(_loop())


def background(d: Deferred[Any], what: str, logger: Logger, **fields: Any) -> Deferred[None]:
    """Let *d* run unattended: its failure is logged by the owner's *logger* with *what*, and
    never left dangling."""

    def _failed(failure: Failure) -> None:
        logger.failure("background task failed: {what}", failure=failure, what=what, **fields)

    return d.addErrback(_failed)


def call_blocking(fn: Callable[..., T], *args: Any) -> Deferred[T]:
    """Run CPU-heavy or blocking work (e.g. Argon2id) in the reactor's thread pool."""
    from twisted.internet import reactor
    from twisted.internet.interfaces import IReactorThreads
    from twisted.internet.threads import deferToThreadPool

    threads = cast(IReactorThreads, reactor)  # the running reactor provides threads
    return deferToThreadPool(threads, threads.getThreadPool(), fn, *args)
