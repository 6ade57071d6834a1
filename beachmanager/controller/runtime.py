"""The hot runtime view of each host: latest state and health, recent final acks.

Redis (``RedisRuntimeCache``) when ``REDIS_URL`` is set, so every manager instance
answers ``GET /sessions/:id/state|health|actions/:id`` for any host; memory
(``MemoryRuntimeCache``) otherwise.  Everything expires (TTL) or is bounded (LRU).

Keys: ``<prefix>rt:{host}:state``, ``<prefix>rt:{host}:health`` (JSON, TTL) and
``<prefix>rt:{host}:ack:<action id>`` (JSON view of a finished action, TTL).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

#: Seconds a state/health snapshot and an ack view stay readable.
SNAPSHOT_TTL = 3600
ACK_TTL = 3600
#: Memory bounds.
MAX_HOSTS = 10_000
MAX_ACKS = 100_000


class MemoryRuntimeCache:
    def __init__(self, clock, snapshot_ttl: float = SNAPSHOT_TTL, ack_ttl: float = ACK_TTL):
        self.clock = clock
        self.snapshot_ttl, self.ack_ttl = snapshot_ttl, ack_ttl
        self._snap: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._acks: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()

    def _put(self, table: OrderedDict, key, value, ttl: float, bound: int) -> None:
        table[key] = (self.clock.seconds() + ttl, value)
        table.move_to_end(key)
        while len(table) > bound:
            table.popitem(last=False)

    def _get(self, table: OrderedDict, key):
        item = table.get(key)
        if item is None:
            return None
        if item[0] <= self.clock.seconds():
            del table[key]
            return None
        return item[1]

    async def put_snapshot(self, host: str, kind: str, value: Any) -> None:
        self._put(self._snap, (host, kind), value, self.snapshot_ttl, 2 * MAX_HOSTS)

    async def get_snapshot(self, host: str, kind: str) -> Any:
        return self._get(self._snap, (host, kind))

    async def put_acks(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        for host, action_id, view in items:
            self._put(self._acks, (host, action_id), view, self.ack_ttl, MAX_ACKS)

    async def get_ack(self, host: str, action_id: str) -> dict[str, Any] | None:
        return self._get(self._acks, (host, action_id))


class RedisRuntimeCache:
    def __init__(self, conn, prefix: str = "beach:", snapshot_ttl: int = SNAPSHOT_TTL,
                 ack_ttl: int = ACK_TTL):
        self.conn, self.prefix = conn, prefix
        self.snapshot_ttl, self.ack_ttl = snapshot_ttl, ack_ttl

    def _key(self, host: str, *rest: str) -> str:
        return ":".join([f"{self.prefix}rt:{{{host}}}", *rest])

    async def put_snapshot(self, host: str, kind: str, value: Any) -> None:
        await self.conn.execute_command("SET", self._key(host, kind), _dump(value),
                                        "EX", self.snapshot_ttl)

    async def get_snapshot(self, host: str, kind: str) -> Any:
        raw = await self.conn.execute_command("GET", self._key(host, kind))
        return json.loads(raw) if raw is not None else None

    async def put_acks(self, items: list[tuple[str, str, dict[str, Any]]]) -> None:
        if not items:
            return
        # one script call for the batch (a pipeline costs a command and a Deferred per key);
        # keys of several hosts: one Redis server, as for the queue's ``finish_many``
        await self.conn.eval(_PUT_ACKS, [self._key(host, "ack", action_id) for host, action_id, _ in items],
                             [self.ack_ttl, *(_dump(view) for _, _, view in items)])

    async def get_ack(self, host: str, action_id: str) -> dict[str, Any] | None:
        raw = await self.conn.execute_command("GET", self._key(host, "ack", action_id))
        return json.loads(raw) if raw is not None else None


_PUT_ACKS = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1]) end
return #KEYS
"""


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
