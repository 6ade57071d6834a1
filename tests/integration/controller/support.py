"""Queue fixtures shared by the controller tests: memory twin and real Redis with a random prefix."""

from __future__ import annotations

import time

import pytest_twisted
from twisted.internet import reactor

from beachmanager.controller.queue import NewAction
from beachmanager.controller.queue_memory import MemoryActionQueue
from beachmanager.controller.queue_redis import RedisActionQueue
from beachmanager.registry.redis_conn import connect
from tests.support.servers import MACHINE_REDIS, redis_prefix


def action(i, host_token="tok-a", **extra) -> NewAction:
    cmd = {"id": f"a-{i}", "action_type": "terminal_write",
           "payload": {"bytes": f"echo MARK-{i}\r"}, "expires_at": None, **extra}
    return NewAction(f"a-{i}", cmd, host_token, time.time(), "pb-1")


def make_redis_queue(url: str = MACHINE_REDIS, **kw) -> RedisActionQueue:
    return RedisActionQueue(connect(url), connect(url, blocking=True), prefix=redis_prefix(), **kw)


async def drop_redis_queue(q: RedisActionQueue) -> None:
    cursor = "0"
    while True:
        cursor, keys = await q.conn.execute_command("SCAN", cursor, "MATCH", q.prefix + "*",
                                                    "COUNT", 1000)
        if keys:
            await q.conn.execute_command("DEL", *keys)
        if cursor == "0":
            break
    await q.close()
    await q.conn.disconnect()


def make_queue(kind: str, **kw):
    if kind == "memory":
        return MemoryActionQueue(reactor, **kw)
    return make_redis_queue(**kw)


def close_queue(q) -> None:
    pytest_twisted.blockon(_drop(q))


def _drop(q):
    from twisted.internet.defer import ensureDeferred

    if isinstance(q, RedisActionQueue):
        return ensureDeferred(drop_redis_queue(q))
    return ensureDeferred(q.close())
