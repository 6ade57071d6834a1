"""The ``beach-asyncio`` reactor: Twisted's asyncio reactor on a loop that is current
(uvloop's unless ``BEACH_EVENT_LOOP=asyncio``; see :func:`new_loop`).

aiortc and psycopg schedule work with ``asyncio.ensure_future`` and
``get_event_loop`` without passing a loop, so the loop that drives the reactor
must also be the thread's current loop.  Twisted does not call
``set_event_loop`` when it is handed a loop, hence this module.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

REACTOR_HINT = "--reactor=beach-asyncio"


def install():
    """Create a new asyncio loop, make it current, install the asyncio reactor on it."""
    from twisted.internet.main import installReactor

    loop = new_loop()
    asyncio.set_event_loop(loop)
    reactor = _reactor_class()(loop)
    installReactor(reactor)
    return reactor


def _reactor_class():
    from twisted.internet import process
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    class BeachAsyncioReactor(AsyncioSelectorReactor):
        """Twisted's asyncio reactor, told of a child's exit by a pidfd under any loop.

        Twisted learns of SIGCHLD through the signal wakeup fd; uvloop takes that fd while
        it runs, and libuv takes SIGCHLD itself once anything spawns through the loop
        (Playwright does), so neither a handler nor the wakeup fd can be relied on.  A
        pidfd (Linux 5.3+) becomes readable when its process exits, whoever holds the
        signal: the reactor reaps then (reaping is idempotent; Twisted's own waker, where
        it still fires, does no harm)."""

        def spawnProcess(self, *args: Any, **kwargs: Any):  # type: ignore[override]
            proc = super().spawnProcess(*args, **kwargs)
            pid = getattr(proc, "pid", None)
            if pid is not None and hasattr(os, "pidfd_open"):
                try:
                    fd = os.pidfd_open(pid)
                except OSError:  # already reaped
                    return proc
                loop = self._asyncioEventloop

                def exited() -> None:
                    loop.remove_reader(fd)
                    os.close(fd)
                    process.reapAllProcesses()

                loop.add_reader(fd, exited)
            return proc

    return BeachAsyncioReactor


def new_loop(kind: str | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's (the default, ``BEACH_EVENT_LOOP=uvloop``) or the standard
    library's (``BEACH_EVENT_LOOP=asyncio``).  uvloop runs the same code with a cheaper loop:
    measured with ``bench/actions.py`` (50 hosts, Redis + PostgreSQL), 12 % less manager CPU
    per action and the sustained rate up from ~1,800 to ~2,000 stored actions/s."""
    kind = kind if kind is not None else os.environ.get("BEACH_EVENT_LOOP", "uvloop")
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if kind != "asyncio":
        raise SystemExit(f"BEACH_EVENT_LOOP must be uvloop or asyncio, not {kind!r}")
    return asyncio.new_event_loop()


def installed_reactor():
    """The installed global reactor, or ``None`` when nothing has installed one yet."""
    return sys.modules.get("twisted.internet.reactor")


def asyncio_reactor_problem(reactor=None) -> str | None:
    """Explain in one line why *reactor* cannot run beach-manager, or return ``None``."""
    reactor = reactor if reactor is not None else installed_reactor()
    if reactor is None:
        return f"no reactor is installed; start with {REACTOR_HINT}"
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if not isinstance(reactor, AsyncioSelectorReactor):
        name = type(reactor).__name__
        return (
            f"beach-manager needs the asyncio reactor (aiortc, psycopg) but {name} is "
            f"installed; start it with {REACTOR_HINT}"
        )
    return None


def ensure_loop_current(reactor) -> asyncio.AbstractEventLoop:
    """Make the reactor's asyncio loop the current loop (stock ``--reactor=asyncio`` may not)."""
    loop = reactor._asyncioEventloop
    try:
        current = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        current = None
    if current is not loop:
        asyncio.set_event_loop(loop)
    return loop
