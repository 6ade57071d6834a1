"""The ``beach-asyncio`` reactor: Twisted's asyncio reactor on a loop that is current.

aiortc and psycopg schedule work with ``asyncio.ensure_future`` and
``get_event_loop`` without passing a loop, so the loop that drives the reactor
must also be the thread's current loop.  Twisted does not call
``set_event_loop`` when it is handed a loop, hence this module.
"""

from __future__ import annotations

import asyncio
import sys

REACTOR_HINT = "--reactor=beach-asyncio"


def install():
    """Create a new asyncio loop, make it current, install the asyncio reactor on it."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


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
