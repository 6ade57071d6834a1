"""Service discipline shared by every child of the manager's service tree.

* :class:`ReadyService` starts asynchronously: ``startService`` only schedules
  :meth:`ReadyService.start`; :meth:`ReadyService.whenReady` fires when it is done
  (or fails with its error).  ``stopService`` runs :meth:`ReadyService.stop` under a
  hard timeout.
* :class:`OrderedMultiService` stops its children one at a time in reverse order
  of addition (Twisted's ``MultiService`` stops them all at once), each under a
  timeout, so the tree can stop taking work, then drain, then close its stores.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

DEFAULT_STOP_TIMEOUT = 10.0


class FatalStartupError(Exception):
    """A child cannot start and the process must exit non-zero (bad config, port taken...)."""


def with_timeout(d: Deferred, seconds: float, clock: IReactorTime) -> Deferred:
    """*d*, cancelled with ``TimeoutError`` after *seconds* on *clock*."""
    return d.addTimeout(seconds, clock)


class ReadyService(Service):
    """A service whose start-up is asynchronous and observable.

    Subclasses implement :meth:`start` and :meth:`stop` (both may return Deferreds)
    and may override :meth:`status` to describe themselves on ``/readyz``.
    """

    log = Logger()
    #: Seconds allowed for :meth:`stop` before it is abandoned (the parent may override).
    stop_timeout = DEFAULT_STOP_TIMEOUT
    #: A start failure of a critical service ends the process (see ManagerService).
    critical = True

    def __init__(self, name: str, clock: IReactorTime):
        self.setName(name)
        self.clock = clock
        self.ready = False
        self.start_error: Failure | None = None
        self._waiters: list[Deferred] = []

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Deferred | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> Deferred | None:
        return None

    def startService(self) -> None:
        super().startService()
        self.ready = False
        self.start_error = None
        d = maybeDeferred(self.start)
        d.addCallbacks(self._started, self._start_failed)

    def stopService(self) -> Deferred:
        super().stopService()
        self.ready = False
        d = with_timeout(maybeDeferred(self.stop), self.stop_timeout, self.clock)

        def _failed(failure: Failure) -> None:
            self.log.failure("{service} did not stop cleanly", failure=failure, service=self.name)

        return d.addErrback(_failed)

    def _started(self, _: Any) -> None:
        if not self.running:
            return
        self.ready = True
        self.log.info("{service} ready", service=self.name)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.callback(self)

    def _start_failed(self, failure: Failure) -> None:
        self.start_error = failure
        self.log.failure("{service} failed to start", failure=failure, service=self.name)
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            w.errback(failure)

    # -- readiness ---------------------------------------------------------
    def whenReady(self) -> Deferred:
        """A Deferred that fires with this service once it is ready, or fails with its start error."""
        if self.ready:
            return succeed(self)
        if self.start_error is not None:
            return fail(self.start_error)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    def status(self) -> dict[str, Any]:
        """What ``/readyz`` and ``/debug/info`` say about this service."""
        out: dict[str, Any] = {"ready": self.ready}
        if self.start_error is not None:
            out["error"] = self.start_error.getErrorMessage()
        return out


class OrderedMultiService(MultiService):
    """Starts children in order; stops them one by one in reverse order, each with a timeout."""

    log = Logger()

    def __init__(self, name: str, clock: IReactorTime, stop_timeout: float = DEFAULT_STOP_TIMEOUT):
        super().__init__()
        self.setName(name)
        self.clock = clock
        self.stop_timeout = stop_timeout

    def stopService(self) -> Deferred:
        Service.stopService(self)
        children = list(reversed(list(self)))

        async def _stop_in_order() -> None:
            for child in children:
                self.log.info("stopping {service}", service=child.name)
                d = with_timeout(maybeDeferred(child.stopService), self.stop_timeout, self.clock)
                try:
                    await d
                except Exception:
                    self.log.failure("{service} did not stop within {timeout}s",
                                     service=child.name, timeout=self.stop_timeout)

        return Deferred.fromCoroutine(_stop_in_order())

    def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """(all ready, per-child status) over every :class:`ReadyService` child, recursively."""
        report: dict[str, dict[str, Any]] = {}
        for child in self:
            if isinstance(child, ReadyService):
                # set by ReadyService.__init__; Twisted's Service declares ``name = None``
                report[cast(str, child.name)] = child.status()
            elif isinstance(child, OrderedMultiService):
                _, sub = child.readiness()
                report.update({f"{child.name}/{k}": v for k, v in sub.items()})
        return all(v["ready"] for v in report.values()), report
