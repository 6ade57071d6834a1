"""The Redis connection service: txredisapi, ``convertNumbers=False``, readiness by PING."""

from __future__ import annotations

from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..config import redact_url
from ..retry import backoff, retrying
from ..service import ReadyService

PING_TIMEOUT = 2.0


def redis_args(url: str) -> dict:
    """txredisapi connection arguments from a ``redis://[:password@]host[:port][/db]`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return {"path": parts.path, "dbid": 0, "password": parts.password}
    db = parts.path.lstrip("/")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "dbid": int(db) if db else 0,
        "password": parts.password,
    }


def connect(url: str, *, blocking: bool = False):
    """A lazily-connecting, self-reconnecting txredisapi connection for *url*.

    ``blocking=True`` is for a dedicated blocking-read connection (no reply timeout).
    Imported lazily: importing txredisapi installs the default reactor.
    """
    import txredisapi

    args = redis_args(url)
    common = dict(dbid=args["dbid"], password=args["password"], reconnect=True,
                  convertNumbers=False, replyTimeout=None if blocking else 10)
    if "path" in args:
        return txredisapi.lazyUnixConnection(args["path"], **common)
    return txredisapi.lazyConnection(args["host"], args["port"], **common)


class RedisService(ReadyService):
    """Owns the shared Redis connection; ready once a PING succeeds (retried with backoff)."""

    log = Logger()

    def __init__(self, url: str, clock: IReactorTime):
        super().__init__("redis", clock)
        self.url = url
        self.conn = None
        self.last_error: str | None = None

    def start(self) -> Deferred:
        self.conn = connect(self.url)
        return ensureDeferred(self._wait_for_ping())

    async def _wait_for_ping(self) -> None:
        def on_retry(attempt: int, e: Exception, wait: float) -> None:
            self.last_error = str(e) or type(e).__name__
            self.log.warn("redis {url} not answering ({error}); retry {attempt} in {wait:.1f}s",
                          url=redact_url(self.url), error=self.last_error, attempt=attempt, wait=wait)

        # A lazy connection queues commands until it connects: bound each PING so that a dead
        # server shows up as an error on /readyz instead of a silent wait.
        await retrying(lambda: self.conn.ping().addTimeout(PING_TIMEOUT, self.clock), self.clock,
                       delay=backoff(0.2, 5.0), on_retry=on_retry)
        self.last_error = None

    def stop(self) -> Deferred | None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            return conn.disconnect()
        return None

    def status(self) -> dict:
        out = {**super().status(), "url": redact_url(self.url)}
        if not self.ready and self.last_error:
            out["error"] = self.last_error
        return out
