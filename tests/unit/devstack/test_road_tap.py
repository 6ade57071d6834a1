"""``beach-road-dev`` options: ports, environment fallbacks, clear errors; the service it builds."""

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage

from beachmanager.devstack.road import tap


def parse(args, environ=None):
    opts = tap.Options(environ=environ or {})
    opts.parseOptions(args)
    return opts


def test_defaults_and_env():
    opts = parse([])
    assert opts.endpoint == "tcp:4132:interface=127.0.0.1"
    assert opts.settings.peer_timeout == 60 and opts.settings.effective_sweep_interval == 30
    env = {"PORT": "5000", "SIGNALING_PEER_TIMEOUT_SECONDS": "20", "BEACH_PUBLIC_SESSION_SERVER": "road.example"}
    opts = parse([], env)
    assert opts.endpoint.startswith("tcp:5000:")
    assert opts.settings.peer_timeout == 20 and opts.settings.effective_sweep_interval == 10
    assert opts.settings.public_url == "road.example"
    assert parse(["--port", "7000"], {"BEACH_ROAD_PORT": "6000", "PORT": "5000"}).endpoint.startswith("tcp:7000:")
    assert parse([], {"BEACH_ROAD_PORT": "6000", "PORT": "5000"}).endpoint.startswith("tcp:6000:")


@pytest.mark.parametrize("args", [["--port", "x"], ["--port", "70000"], ["--port", "-1"], ["--peer-timeout", "0"],
                                  ["--max-sessions", "-1"]])
def test_bad_values(args):
    with pytest.raises(usage.UsageError):
        parse(args)


def test_make_service_builds_without_io():
    reactor = MemoryReactorClock()
    svc = tap.makeService(parse(["--port", "4999", "--viewer-token-secret", "s", "--viewer-jwks", "/x"]), reactor)
    assert svc.name == "beach-road-dev" and svc.endpoint == "tcp:4999:interface=127.0.0.1"
    assert svc.rooms.viewer is not None and reactor.tcpServers == []
