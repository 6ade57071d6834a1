"""The Redis queue across a Redis restart (a throwaway server without persistence)."""

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred

from beachmanager.controller.queue import QueueUnavailable
from tests.support.eventually import eventually
from tests.support.servers import throwaway_redis

from .support import action, drop_redis_queue, make_redis_queue


@pytest.fixture
def redis_server():
    with throwaway_redis() as server:
        yield server


@pytest_twisted.ensureDeferred
async def test_restart_is_detected_and_the_queue_recovers(redis_server):
    q = make_redis_queue(redis_server.url)
    try:
        await q.enqueue("h1", [action(1)])
        assert [a.action_id for a in await q.read_new("h1", "m1", 10)] == ["a-1"]
        epoch = await q.server_epoch()
        assert epoch

        redis_server.stop()
        # while the server is down a command fails or waits; it never succeeds falsely
        d = ensureDeferred(q.depth("h1")).addTimeout(1.0, reactor)
        with pytest.raises((QueueUnavailable, Exception)):
            await d
        redis_server.start()
        new_epoch = await eventually(
            lambda: ensureDeferred(q.server_epoch()).addTimeout(1.0, reactor), errors=(Exception,),
            what="the restarted server's epoch")
        assert new_epoch != epoch
        # the stream and its group are gone; reads re-create the group instead of failing
        assert await q.read_new_many(["h1"], "m1", 10, 0.05) == {}
        # re-enqueueing what the engine holds (force) makes the entry live again
        r = await q.enqueue("h1", [action(1)], force=True)
        assert r.accepted == ["a-1"]
        assert [a.action_id for a in await q.read_new("h1", "m1", 10)] == ["a-1"]
    finally:
        await drop_redis_queue(q)
