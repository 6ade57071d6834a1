"""The Redis connection service: txredisapi, ``convertNumbers=False``, readiness by PING."""

from __future__ import annotations

from typing import Any, Protocol
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


class RedisConnection(Protocol):
    """What this service uses of a txredisapi connection (which has no type stubs)."""

    def ping(self) -> Deferred[Any]: ...

    def disconnect(self) -> Deferred[Any]: ...


#: Named dedicated connections one service may hand out (each is one TCP connection).
MAX_DEDICATED = 8


def is_connected(conn) -> bool:
    """Whether a txredisapi connection holds a live socket now (no round trip)."""
    factory = getattr(conn, "_factory", None)
    return bool(getattr(factory, "pool", None))


class RedisService(ReadyService):
    """The one owner of this process's Redis connections.

    ``shared`` is the multiplexed connection for plain commands (ready once a PING
    succeeds, retried with backoff).  :meth:`dedicated` hands out a named connection of
    its own for blocking reads (``XREADGROUP BLOCK`` would stall every other command on the
    shared one); each name is created once.  ``/readyz`` reports every connection: the
    service is ready while all of them hold a live socket.
    """

    log = Logger()

    def __init__(self, url: str, clock: IReactorTime, connect_to=connect):
        super().__init__("redis", clock)
        self.url = url
        self._connect = connect_to
        self.shared: RedisConnection | None = None
        self._dedicated: dict[str, RedisConnection] = {}
        self.last_error: str | None = None

    @property
    def conn(self):
        """The shared connection (None before start)."""
        return self.shared

    def dedicated(self, name: str):
        """The dedicated, blocking-read connection called *name* (created on first use)."""
        found = self._dedicated.get(name)
        if found is None:
            if len(self._dedicated) >= MAX_DEDICATED:
                raise RuntimeError(f"too many dedicated Redis connections (asked for {name!r})")
            found = self._dedicated[name] = self._connect(self.url, blocking=True)
        return found

    def start(self) -> Deferred:
        self.shared = self._connect(self.url)
        return ensureDeferred(self._wait_for_ping())

    async def _wait_for_ping(self) -> None:
        def on_retry(attempt: int, e: Exception, wait: float) -> None:
            self.last_error = str(e) or type(e).__name__
            self.log.warn("redis {url} not answering ({error}); retry {attempt} in {wait:.1f}s",
                          url=redact_url(self.url), error=self.last_error, attempt=attempt, wait=wait)

        # A lazy connection queues commands until it connects: bound each PING so that a dead
        # server shows up as an error on /readyz instead of a silent wait.
        def ping() -> Deferred[Any]:
            shared = self.shared
            if shared is None:
                raise RuntimeError("the shared Redis connection is closed")
            return shared.ping().addTimeout(PING_TIMEOUT, self.clock)

        await retrying(ping, self.clock, delay=backoff(0.2, 5.0), on_retry=on_retry)
        self.last_error = None

    def stop(self) -> Deferred | None:
        conns = [c for c in (self.shared, *self._dedicated.values()) if c is not None]
        self.shared, self._dedicated = None, {}
        if not conns:
            return None
        from twisted.internet.defer import DeferredList

        return DeferredList([c.disconnect() for c in conns], consumeErrors=True)

    def connections(self) -> dict[str, bool]:
        """Every connection by name (``shared``, ``dedicated:<name>``): holds a socket now."""
        out = {"shared": self.shared is not None and is_connected(self.shared)}
        for name, conn in self._dedicated.items():
            out[f"dedicated:{name}"] = is_connected(conn)
        return out

    def status(self) -> dict:
        out = {**super().status(), "url": redact_url(self.url)}
        if self.ready:
            conns = self.connections()
            out["connections"] = conns
            down = sorted(name for name, up in conns.items() if not up)
            if down:
                out["ready"] = False
                out["error"] = f"not connected: {', '.join(down)}"
        elif self.last_error:
            out["error"] = self.last_error
        return out
