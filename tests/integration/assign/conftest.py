"""Fixtures: one assignment store per test, on real Redis (own key prefix) or in memory."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import ensureDeferred

from beachmanager.assign.store_memory import MemoryAssignmentStore
from beachmanager.assign.store_redis import RedisAssignmentStore
from beachmanager.registry.redis_conn import connect
from tests.support.servers import MACHINE_REDIS, redis_prefix

#: Liveness window for store tests: short, so the real-Redis variant waits little.
DEAD_AFTER_MS = 400


class Harness:
    """A store plus a way to let time pass (a Clock for memory, real sleeps for Redis)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.conns = []
        if kind == "memory":
            self.clock = task.Clock()
            self.clock.advance(1_700_000_000)
            self.store = MemoryAssignmentStore(self.clock, dead_after_ms=DEAD_AFTER_MS)
        else:
            self.prefix = redis_prefix()
            self.store = self.redis_store()

    def redis_store(self) -> RedisAssignmentStore:
        conn = connect(MACHINE_REDIS)
        self.conns.append(conn)
        return RedisAssignmentStore(conn, dead_after_ms=DEAD_AFTER_MS, prefix=self.prefix)

    async def wait(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.advance(seconds)
        else:
            # a duration, not a wait for an event: the tests let liveness windows run out
            await task.deferLater(reactor, seconds)

    async def cleanup(self) -> None:
        if self.kind == "redis":
            conn = self.conns[0]
            keys = await conn.keys(self.prefix + "*")
            if keys:
                await conn.delete(keys)
        for c in self.conns:
            await c.disconnect()


@pytest.fixture(params=["memory", "redis"])
def harness(request):
    h = Harness(request.param)
    yield h
    pytest_twisted.blockon(ensureDeferred(h.cleanup()))
