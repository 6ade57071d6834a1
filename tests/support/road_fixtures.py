"""A real devstack Road (and devstack hosts on it) as pytest fixtures, registered in tests/conftest.py.

* ``road``: a Road with the default settings.
* ``road_small_bounds``: a Road whose bounds are small enough to hit in a test: 4 KiB
  request bodies, 2 pending offers per peer, 3 peers per room.
* ``start_host``: ``await start_host(**settings)`` starts a devstack host with a real
  shell on a PTY on ``road``; every host started is stopped afterwards.
"""

from __future__ import annotations

import pytest
import pytest_twisted

SMALL_BOUNDS = dict(max_body_bytes=4096, max_offers_per_peer=2, max_peers_per_room=3)


def _running_road(settings=None):
    from beachmanager.devstack.road.service import start_road

    running = pytest_twisted.blockon(start_road(settings=settings))
    yield running
    pytest_twisted.blockon(running.stop())


@pytest.fixture
def road():
    yield from _running_road()


@pytest.fixture
def road_small_bounds():
    from beachmanager.devstack.road.settings import RoadSettings

    yield from _running_road(RoadSettings(**SMALL_BOUNDS))


@pytest.fixture
def start_host(road):
    """``await start_host(**settings)``: a devstack host with a real shell on the PTY."""
    from twisted.internet import reactor

    from beachmanager.devstack.host.host import start_host as _start

    started = []

    async def start(**overrides):
        overrides.setdefault("command", ("/bin/sh",))
        overrides.setdefault("env", {"PS1": "$ ", "TERM": "xterm", "PATH": "/usr/bin:/bin"})
        host = await _start(road.url, reactor, **overrides)
        started.append(host)
        return host

    yield start
    for host in reversed(started):
        if host.host.running:
            pytest_twisted.blockon(host.stop())
