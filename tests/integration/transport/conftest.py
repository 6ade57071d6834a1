"""A HostManager under test, on the shared devstack Road (tests/support/road_fixtures.py)."""

from __future__ import annotations

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import reactor

from beachmanager import config
from beachmanager.context import ManagerContext
from beachmanager.telemetry.crash import CrashReporter
from beachmanager.telemetry.metrics import Metrics


def manager_context(road_url: str, **overrides) -> ManagerContext:
    values = {"road_url": road_url, "webrtc_disable_stun": True, "attach_phase_timeout": 10.0,
              "reconnect_max_delay": 2.0, **overrides}
    return ManagerContext(config=config.defaults(**values), reactor=reactor, clock=reactor,
                          metrics=Metrics(CollectorRegistry()), crash=CrashReporter())


@pytest.fixture
def hosts_service(road):
    """``await hosts_service(**config_overrides)`` → a started HostManager (stopped afterwards)."""
    from beachmanager.transport.events import SessionEvents
    from beachmanager.transport.hosts import HostManager

    made = []

    async def make(**overrides):
        ctx = manager_context(road.url, **overrides)
        hosts = HostManager(ctx, SessionEvents(ctx.clock.seconds))
        hosts.startService()
        made.append(hosts)
        await hosts.whenReady()
        return hosts

    yield make
    for hosts in made:
        if hosts.running:
            pytest_twisted.blockon(hosts.stopService())
