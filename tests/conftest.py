"""Root test configuration: install the beach-asyncio reactor before anything imports a reactor.

pytest-twisted (``--reactor=asyncio`` in setup.cfg) accepts an asyncio reactor that is
already installed, so the loop it runs is the explicit, current loop aiortc needs.

Shared fixtures have one home each and are registered here for every test: the Beach
Gate / Clerk stand-ins (tests/support/auth_fixtures.py) and the devstack Road and hosts
(tests/support/road_fixtures.py).
"""

import pytest
from twisted.logger import formatEvent, globalLogPublisher  # installs no reactor

from beachmanager import _reactor

if _reactor.installed_reactor() is None:
    _reactor.install()

# after the reactor: these import twisted.internet.reactor
from tests.support.auth_fixtures import clerk, gate, jwks  # noqa: F401 (fixtures)
from tests.support.road_fixtures import (  # noqa: F401 (fixtures)
    road,
    road_small_bounds,
    start_host,
)


class _UnformattableEvents:
    """Collects log events whose format string names a field the event lacks."""

    def __init__(self):
        self.bad: list[str] = []

    def __call__(self, event):
        if "log_format" in event and formatEvent(event).startswith("Unable to format event"):
            self.bad.append(f"{event.get('log_namespace')}: {event.get('log_format')!r}")


_unformattable = _UnformattableEvents()
globalLogPublisher.addObserver(_unformattable)


@pytest.fixture(autouse=True)
def _every_log_event_formats():
    """A log line that cannot be rendered loses its message: fail the test that emitted it."""
    del _unformattable.bad[:]
    yield
    bad, _unformattable.bad[:] = list(_unformattable.bad), []
    assert not bad, f"log events that cannot be formatted: {bad[:5]}"
