"""The PostgreSQL pool service: psycopg 3 async pool opened and closed by the service lifecycle.

The pool is pure asyncio; it crosses into Twisted only through :mod:`beachmanager._aio`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .._aio import as_deferred
from ..config import redact_url
from ..retry import backoff, retrying
from ..service import ReadyService

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

POOL_MIN = 1
POOL_MAX = 10
#: A pooled connection idle for longer than this is checked (one round trip) before use.
IDLE_CHECK = 2.0


def make_pool(url: str, min_size: int = POOL_MIN, max_size: int = POOL_MAX, configure=None,
              clock: IReactorTime | None = None, idle_check: float = IDLE_CHECK,
              ) -> AsyncConnectionPool:
    """The pool.  A connection taken from it is checked with a round trip only when it sat
    idle for more than *idle_check* seconds (with *clock*; without one, always): one that
    was used a moment ago is almost surely alive, and the round trip would cost every
    transaction a pass through a busy event loop.  A connection that died anyway (the
    server restarted meanwhile) fails its first statement, is discarded by the pool, and
    the caller's retry takes another (:mod:`.postgres`)."""
    from psycopg_pool import AsyncConnectionPool

    returned_at: dict[int, float] = {}  # id(conn) -> when it went back to the pool

    async def check(conn) -> None:
        since = returned_at.pop(id(conn), None)
        if clock is None or since is None or clock.seconds() - since > idle_check:
            await AsyncConnectionPool.check_connection(conn)

    async def reset(conn) -> None:
        if clock is not None:
            if len(returned_at) > 4 * max_size:  # ids of connections the pool closed meanwhile
                returned_at.clear()
            returned_at[id(conn)] = clock.seconds()

    return AsyncConnectionPool(url, min_size=min_size, max_size=max_size, open=False, check=check,
                               reset=reset, configure=configure, name="beach-manager")


async def _ping(pool) -> None:
    async with pool.connection(timeout=5) as conn:
        await conn.execute("SELECT 1")


class PostgresService(ReadyService):
    """Owns the connection pool; ready once ``SELECT 1`` succeeds (retried with backoff).

    ``prepare()`` (a Deferred-returning callable, e.g. migrations) runs before the pool
    opens, retried while the server does not answer; ``configure`` is the pool's
    per-connection hook (an asyncio coroutine function, e.g. ``SET ROLE``).
    """

    log = Logger()

    def __init__(self, url: str, clock: IReactorTime, max_size: int = POOL_MAX,
                 prepare=None, configure=None):
        super().__init__("postgres", clock)
        self.url = url
        self.max_size = max_size
        self.prepare = prepare
        self.configure = configure
        self.pool: AsyncConnectionPool | None = None
        self.last_error: str | None = None

    def start(self) -> Deferred:
        return ensureDeferred(self._astart())

    async def _astart(self) -> None:
        def on_retry(attempt: int, e: Exception, wait: float) -> None:
            self.last_error = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.log.warn("postgres {url} not answering ({error}); retry {attempt} in {wait:.1f}s",
                          url=redact_url(self.url), error=self.last_error, attempt=attempt, wait=wait)

        if self.prepare is not None:
            import psycopg

            await retrying(self.prepare, self.clock, delay=backoff(0.2, 5.0), on_retry=on_retry,
                           should_retry=lambda e: isinstance(e, psycopg.OperationalError))
        self.pool = make_pool(self.url, max_size=self.max_size, configure=self.configure, clock=self.clock)
        await as_deferred(self.pool.open(wait=False))

        await retrying(lambda: as_deferred(_ping(self.pool)), self.clock,
                       delay=backoff(0.2, 5.0), on_retry=on_retry)
        self.last_error = None

    def stop(self) -> Deferred | None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            return as_deferred(pool.close(timeout=self.stop_timeout))
        return None

    def status(self) -> dict:
        out = {**super().status(), "url": redact_url(self.url)}
        if not self.ready and self.last_error:
            out["error"] = self.last_error
        return out
