"""The Redis service owns every connection and reports each of them on readiness."""

import pytest_twisted
from twisted.internet import reactor

from beachmanager.registry.redis_conn import RedisService
from tests.support.eventually import eventually
from tests.support.servers import throwaway_redis


@pytest_twisted.ensureDeferred
async def test_named_connections_are_created_once_and_all_count_for_readiness():
    with throwaway_redis() as server:
        svc = RedisService(server.url, reactor)
        svc.startService()
        try:
            await svc.whenReady()
            blocking = svc.dedicated("queue-reader")
            assert svc.dedicated("queue-reader") is blocking
            assert blocking is not svc.shared
            await blocking.ping()
            status = svc.status()
            assert status["ready"] is True
            assert status["connections"] == {"shared": True, "dedicated:queue-reader": True}

            server.stop()  # every connection loses its socket: readiness says which
            await eventually(lambda: not svc.status()["ready"], what="redis readiness to drop")
            assert "dedicated:queue-reader" in svc.status()["error"]

            server.start()  # both reconnect by themselves
            await eventually(lambda: svc.status()["ready"], timeout=15, what="redis readiness back")
        finally:
            await svc.stopService()
        assert svc.connections() == {"shared": False}
