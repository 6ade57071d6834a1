"""The crash hook: on an unhandled error, log the attach/transport state and the recent errors.

Parts of the manager register *state providers* (callables returning a small,
JSON-friendly summary, never payloads).  :class:`CrashReporter` watches the log
for errors, keeps the last few, and when something goes unhandled (an uncaught
exception, an unhandled error in a Deferred, an asyncio task nobody awaited)
logs one ``crash_report`` event with every provider's state and those errors.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.logger import ILogObserver, Logger, LogLevel, formatEvent, globalLogPublisher
from zope.interface import implementer

StateProvider = Callable[[], Any]

RECENT_ERRORS = 20


@implementer(ILogObserver)
class CrashReporter:
    log = Logger()

    def __init__(self, recent: int = RECENT_ERRORS):
        self.providers: dict[str, StateProvider] = {}
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=recent)
        self.reports = 0
        self._reporting = False
        self._installed = False

    def add_state_provider(self, name: str, provider: StateProvider) -> None:
        self.providers[name] = provider

    def remove_state_provider(self, name: str) -> None:
        self.providers.pop(name, None)

    # -- observing the log --------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        if "crash_report" in event:
            return
        level = event.get("log_level")
        if level not in (LogLevel.error, LogLevel.critical) and "log_failure" not in event:
            return
        failure = event.get("log_failure")
        self.recent_errors.append({
            "time": event.get("log_time"),
            "namespace": event.get("log_namespace"),
            "message": formatEvent(event)[:500],
            "error": failure.getErrorMessage()[:500] if failure is not None else None,
        })
        if "unhandled" in str(event.get("log_format", "")).lower():
            # Twisted's "Unhandled error in Deferred:", "Unhandled Error", ...: nobody caught it.
            self.report("unhandled error: " + formatEvent(event)[:200])

    # -- reporting ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for name, provider in list(self.providers.items()):
            try:
                state[name] = provider()
            except Exception as e:  # a broken provider must not hide the others
                state[name] = {"provider_error": repr(e)}
        return {"state": state, "recent_errors": list(self.recent_errors)}

    def report(self, reason: str) -> None:
        if self._reporting:
            return
        self._reporting = True
        try:
            self.reports += 1
            snap = self.snapshot()
            self.log.critical("crash_report: {reason}", reason=reason, crash_report=snap)
        finally:
            self._reporting = False

    # -- hooks ----------------------------------------------------------------
    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Observe the global log and hook uncaught exceptions (threads, asyncio, main)."""
        if self._installed:
            return
        self._installed = True
        globalLogPublisher.addObserver(self)
        previous_hook = sys.excepthook

        def excepthook(tp, value, tb):
            self.report(f"uncaught {tp.__name__}: {value}")
            previous_hook(tp, value, tb)

        sys.excepthook = excepthook
        previous_thread_hook = threading.excepthook

        def thread_hook(args):
            self.report(f"uncaught {args.exc_type.__name__} in thread: {args.exc_value}")
            previous_thread_hook(args)

        threading.excepthook = thread_hook
        if loop is not None:
            def loop_handler(loop_, context):
                exc = context.get("exception")
                self.log.error("asyncio: {message} {exc!r}", message=context.get("message"), exc=exc)
                self.report(f"asyncio: {context.get('message')}")

            loop.set_exception_handler(loop_handler)

    def uninstall(self) -> None:
        if self._installed:
            globalLogPublisher.removeObserver(self)
            self._installed = False
