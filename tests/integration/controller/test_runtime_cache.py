"""The hot runtime view, one contract for both: the in-memory twin and Redis (real Redis)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.controller.runtime import MemoryRuntimeCache, RedisRuntimeCache
from beachmanager.registry.redis_conn import connect
from tests.support.servers import MACHINE_REDIS, redis_prefix


@pytest.fixture(params=["memory", "redis"])
def cache(request):
    if request.param == "memory":
        yield MemoryRuntimeCache(reactor)
        return
    c = RedisRuntimeCache(connect(MACHINE_REDIS), prefix=redis_prefix(), ack_ttl=30)
    yield c
    pytest_twisted.blockon(_drop(c))


async def _drop_async(c):
    cursor = "0"
    while True:
        cursor, keys = await c.conn.execute_command("SCAN", cursor, "MATCH", c.prefix + "*", "COUNT", 1000)
        if keys:
            await c.conn.execute_command("DEL", *keys)
        if cursor == "0":
            break
    await c.conn.disconnect()


def _drop(c):
    from twisted.internet.defer import ensureDeferred

    return ensureDeferred(_drop_async(c))


@pytest_twisted.ensureDeferred
async def test_a_batch_of_acks_of_several_hosts_is_readable_per_host(cache):
    await cache.put_acks([])
    views = [(f"h{i % 3}", f"a-{i}", {"status": "acked", "n": i, "text": "é\r\n"}) for i in range(40)]
    await cache.put_acks(views)
    for host, action_id, view in views:
        assert await cache.get_ack(host, action_id) == view
    assert await cache.get_ack("h0", "a-1") is None  # a-1 is h1's
    await cache.put_acks([("h1", "a-1", {"status": "acked", "n": -1})])  # a later view replaces it
    assert (await cache.get_ack("h1", "a-1"))["n"] == -1
    if isinstance(cache, RedisRuntimeCache):  # every key expires
        ttl = await cache.conn.execute_command("TTL", cache._key("h2", "ack", "a-2"))
        assert 0 < ttl <= 30
