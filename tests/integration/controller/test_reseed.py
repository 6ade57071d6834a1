"""Actions held by the engine survive a Redis restart without persistence: they are put back
into the stream, so a manager crash after the restart still loses none of them."""

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from beachmanager.controller.delivery import DeliveryEngine
from tests.support.eventually import eventually
from tests.support.servers import throwaway_redis
from tests.unit.controller.test_delivery import FakePublisher

from .support import action, drop_redis_queue, make_redis_queue


@pytest_twisted.ensureDeferred
async def test_held_actions_are_reseeded_after_a_redis_restart():
    with throwaway_redis() as redis:
        q = make_redis_queue(redis.url)
        pub = FakePublisher(ready=())  # the host's transport is down: actions are held
        engine = DeliveryEngine(q, pub, reactor, consumer="m1", read_block=0.2, claim_timeout=2.0)
        engine.start()
        try:
            result = await q.enqueue("h1", [action(1), action(2)])
            entries = [a for a in await q.read_new("h1", "m1", 10)]
            engine.adopt("h1", entries)
            assert engine.depth("h1") == 2 and result.depth == 2
            # the reader has read the server's run id (only then is a restart noticed)
            await eventually(lambda: engine._epoch is not None, what="the engine to read the epoch")

            redis.stop()
            await deferLater(reactor, 0.5, lambda: None)  # the outage lasts 0.5 s (a duration)
            redis.start()
            await eventually(lambda: engine.counters["reseeded"] == 2, timeout=15,
                             what="both held actions re-enqueued")
            assert await q.depth("h1") == 2
        finally:
            await engine.stop()

        # the manager now dies; its successor finds both actions in Redis and delivers them
        q2 = make_redis_queue(redis.url)
        q2.prefix = q.prefix
        pub2 = FakePublisher(ready=("h1",))
        engine2 = DeliveryEngine(q2, pub2, reactor, consumer="m1", read_block=0.2, claim_timeout=2.0)
        engine2.start()
        try:
            engine2.transport_changed("h1", True)
            await eventually(lambda: len(pub2.ids()) >= 2, what="the successor to deliver both")
            assert sorted(pub2.ids()) == ["a-1", "a-2"]
        finally:
            await engine2.stop()
            await drop_redis_queue(q2)
            await q.close()
            await q.conn.disconnect()
