"""The per-host action queue on Redis Streams (see :mod:`.queue` for the semantics).

Keys per host (``{host}`` is a hash tag, so one host's keys share a cluster slot)::

    <prefix>q:{host}        stream, one entry per action: id, cmd (JSON), tok, at, pb
    <prefix>q:{host}:ids    hash action id -> entry id while queued, "done:<status>" after
    <prefix>q:{host}:done   list of finished ids, oldest first, capped (idempotency memory)

* One consumer group (``managers``) per stream; each manager instance is a consumer.
* Enqueue and finish are Lua scripts, so the bound and the id checks are atomic
  across managers.  XADD carries ``MAXLEN ~ bound`` as a safety net; the script's
  depth check keeps the stream under it, so trimming never drops an accepted entry.
* Finish is XACK + XDEL (the stream only holds unfinished entries, so XLEN is the
  depth); ``finish_many`` finishes an ack batch's hosts in one script call.
* Blocking reads (``read_new_many``) use a dedicated connection: a blocking
  XREADGROUP holds up every other command on its connection.
* Every key carries a TTL (default a day, renewed on each write) so abandoned hosts
  leave nothing behind.
* :meth:`RedisActionQueue.server_epoch` returns the server's ``run_id``; a change
  means Redis restarted (and, without persistence, lost the streams): the delivery
  engine then re-enqueues what it holds (``enqueue(..., force=True)``).
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from .queue import (
    DEFAULT_BOUND,
    DONE_MEMORY,
    EnqueueResult,
    NewAction,
    QueuedAction,
    QueueError,
    QueueFull,
    QueueUnavailable,
    check_batch,
)

GROUP = "managers"
DEFAULT_TTL = 24 * 3600

_ENQUEUE = """
local stream, ids = KEYS[1], KEYS[2]
local bound, group, ttl, n, force = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local consumer = ARGV[6]
local fresh, dups = {}, {}
for i = 0, n - 1 do
  local base = 7 + i * 5
  if redis.call('HEXISTS', ids, ARGV[base]) == 1 then
    table.insert(dups, ARGV[base])
  else
    table.insert(fresh, base)
  end
end
local depth = redis.call('XLEN', stream)
if force ~= '1' and depth + #fresh > bound then
  return {'full', depth}
end
if redis.call('EXISTS', stream) == 0 then
  redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local out = {'ok', 0, #dups}
for _, d in ipairs(dups) do table.insert(out, d) end
for _, base in ipairs(fresh) do
  local eid = redis.call('XADD', stream, 'MAXLEN', '~', math.max(bound, depth + #fresh), '*',
    'id', ARGV[base], 'cmd', ARGV[base + 1], 'tok', ARGV[base + 2], 'at', ARGV[base + 3],
    'pb', ARGV[base + 4])
  redis.call('HSET', ids, ARGV[base], eid)
  table.insert(out, ARGV[base])
  table.insert(out, eid)
end
out[2] = redis.call('XLEN', stream)
redis.call('EXPIRE', stream, ttl)
redis.call('EXPIRE', ids, ttl)
if consumer ~= '' and #fresh > 0 then
  -- hand the new entries (and unread ones ahead of them) to the consumer at once; on an
  -- error (e.g. the group is gone) the readers get them as before
  local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 100000, 'STREAMS', stream, '>')
  if type(read) == 'table' and read[1] then
    local claimed = {}
    for _, e in ipairs(read[1][2]) do table.insert(claimed, e) end
    table.insert(out, 'read')
    table.insert(out, claimed)
  end
end
return out
"""

#: KEYS three per host (stream, ids, done); ARGV group, keep, ttl, then per host its count
#: of finished actions followed by their (id, entry id, status)
_FINISH = """
local function finish(stream, ids, done, group, keep, ttl, first, last)
  for i = first, last, 3 do
    local id, eid, status = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local entry = redis.call('XRANGE', stream, eid, eid)
    if #entry == 1 then
      local f = entry[1][2]
      for j = 1, #f, 2 do
        if f[j] == 'id' and f[j + 1] == id then
          redis.call('XACK', stream, group, eid)
          redis.call('XDEL', stream, eid)
        end
      end
    end
    local cur = redis.call('HGET', ids, id)
    if (not cur) or string.sub(cur, 1, 5) ~= 'done:' then
      redis.call('HSET', ids, id, 'done:' .. status)
      redis.call('RPUSH', done, id)
    end
  end
  local extra = redis.call('LLEN', done) - keep
  for _ = 1, extra do
    local old = redis.call('LPOP', done)
    local cur = redis.call('HGET', ids, old)
    if cur and string.sub(cur, 1, 5) == 'done:' then redis.call('HDEL', ids, old) end
  end
  redis.call('EXPIRE', ids, ttl)
  redis.call('EXPIRE', done, ttl)
end

local group, keep, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local at = 4
for h = 1, #KEYS, 3 do
  local n = tonumber(ARGV[at])
  finish(KEYS[h], KEYS[h + 1], KEYS[h + 2], group, keep, ttl, at + 1, at + 3 * n)
  at = at + 1 + 3 * n
end
return 1
"""


def _is_nogroup(e: Exception) -> bool:
    return str(e).startswith("NOGROUP")


class RedisActionQueue:
    """Per-host streams on Redis; ``conn`` for commands, ``blocking_conn`` for blocking reads."""

    log = Logger()

    def __init__(self, conn, blocking_conn=None, *, prefix: str = "beach:", bound: int = DEFAULT_BOUND,
                 done_memory: int = DONE_MEMORY, ttl: int = DEFAULT_TTL, group: str = GROUP):
        self.conn = conn
        self.blocking_conn = blocking_conn
        self.prefix = prefix
        self.bound = bound
        self.done_memory = done_memory
        self.ttl = ttl
        self.group = group
        self._grouped: set[str] = set()
        #: consumer groups found missing and re-created (a sign that Redis lost its data)
        self.group_resets = 0

    # -- keys ----------------------------------------------------------------------------------
    def stream_key(self, host: str) -> str:
        return f"{self.prefix}q:{{{host}}}"

    def _keys(self, host: str) -> tuple[str, str, str]:
        s = self.stream_key(host)
        return s, s + ":ids", s + ":done"

    async def _cmd(self, *args: Any, conn=None) -> Any:
        try:
            return await (conn or self.conn).execute_command(*args)
        except QueueError:
            raise
        except Exception as e:
            if type(e).__name__ == "ResponseError":
                raise
            raise QueueUnavailable(f"redis: {e or type(e).__name__}") from e

    async def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.conn.eval(script, keys, args)
        except Exception as e:
            if type(e).__name__ in ("ResponseError", "ScriptDoesNotExist"):
                raise QueueError(f"redis script failed: {e}") from e
            raise QueueUnavailable(f"redis: {e or type(e).__name__}") from e

    # -- writes --------------------------------------------------------------------------------
    async def enqueue(self, host: str, actions: list[NewAction], *, force: bool = False,
                      consumer: str | None = None) -> EnqueueResult:
        check_batch(actions)
        stream, ids, _ = self._keys(host)
        args: list[Any] = [self.bound, self.group, self.ttl, len(actions), "1" if force else "0",
                           consumer or ""]
        for a in actions:
            enc = a.encode()
            args += [enc["id"], enc["cmd"], enc["tok"], enc["at"], enc["pb"]]
        reply = await self._eval(_ENQUEUE, [stream, ids], args)
        if reply[0] == "full":
            raise QueueFull(host, int(reply[1]), self.bound, len(actions))
        ndup = int(reply[2])
        result = EnqueueResult(depth=int(reply[1]), duplicates=list(reply[3:3 + ndup]))
        rest = reply[3 + ndup:]
        read = None
        if len(rest) % 2 == 0 and len(rest) >= 2 and rest[-2] == "read" and isinstance(rest[-1], list):
            rest, read = rest[:-2], rest[-1]
        for i in range(0, len(rest), 2):
            result.accepted.append(rest[i])
            result.entries[rest[i]] = rest[i + 1]
        if read is not None:
            mine = set(result.entries.values())
            for entry_id, flat in read:
                if entry_id in mine or flat is None:
                    continue
                try:
                    result.claimed.append(QueuedAction.decode(host, entry_id, _pairs(flat)))
                except QueueError as e:  # accepted all the same; the entry stays pending
                    self.log.warn("{error}", error=str(e))
        self._grouped.add(host)
        return result

    async def finish(self, host: str, done: list[tuple[str, str, str]]) -> None:
        await self.finish_many({host: done})

    async def finish_many(self, done_by_host: dict[str, list[tuple[str, str, str]]]) -> None:
        """:meth:`finish` for several hosts in one script call (one round trip for an ack
        batch).  The keys of different hosts sit in different cluster slots: this needs one
        Redis server, which is what the manager uses (txredisapi has no cluster client)."""
        keys: list[str] = []
        args: list[Any] = [self.group, self.done_memory, self.ttl]
        for host, done in done_by_host.items():
            if not done:
                continue
            keys.extend(self._keys(host))
            args.append(len(done))
            for action_id, entry_id, status in done:
                args += [action_id, entry_id, status]
        if keys:
            await self._eval(_FINISH, keys, args)

    # -- reads ---------------------------------------------------------------------------------
    async def _ensure_group(self, host: str) -> None:
        stream = self.stream_key(host)
        try:
            await self._cmd("XGROUP", "CREATE", stream, self.group, "0", "MKSTREAM")
        except QueueUnavailable:
            raise
        except Exception as e:
            if not str(e).startswith("BUSYGROUP"):
                raise QueueError(f"cannot create the consumer group of {stream}: {e}") from e
        else:
            await self._cmd("EXPIRE", stream, self.ttl)
        self._grouped.add(host)

    def _decode(self, reply) -> dict[str, list[QueuedAction]]:
        out: dict[str, list[QueuedAction]] = {}
        hosts = {self.stream_key(h): h for h in self._grouped}
        for stream, entries in reply or ():
            host = hosts.get(stream) or _host_of(stream, self.prefix)
            got = out.setdefault(host, [])
            for entry_id, flat in entries:
                if flat is None:  # deleted while pending
                    continue
                got.append(QueuedAction.decode(host, entry_id, _pairs(flat)))
        return {h: v for h, v in out.items() if v}

    async def _read(self, hosts: list[str], consumer: str, count: int, start: str,
                    block: float | None) -> dict[str, list[QueuedAction]]:
        for host in hosts:
            if host not in self._grouped:
                await self._ensure_group(host)
        args: list[Any] = ["XREADGROUP", "GROUP", self.group, consumer, "COUNT", count]
        conn = None
        if block is not None:
            args += ["BLOCK", max(1, int(block * 1000))]
            conn = self.blocking_conn
        args += ["STREAMS", *[self.stream_key(h) for h in hosts], *([start] * len(hosts))]
        try:
            reply = await self._cmd(*args, conn=conn)
        except QueueUnavailable:
            raise
        except Exception as e:
            if not _is_nogroup(e):
                raise QueueError(f"XREADGROUP failed: {e}") from e
            # A stream or its group vanished (Redis restarted or the key expired).
            self.group_resets += 1
            self._grouped.difference_update(hosts)
            for host in hosts:
                await self._ensure_group(host)
            reply = await self._cmd(*args, conn=conn)
        return self._decode(reply)

    async def read_new(self, host: str, consumer: str, count: int) -> list[QueuedAction]:
        return (await self._read([host], consumer, count, ">", None)).get(host, [])

    async def read_new_many(self, hosts: list[str], consumer: str, count: int,
                            block: float) -> dict[str, list[QueuedAction]]:
        if not hosts:
            return {}
        if block > 0 and self.blocking_conn is not None:
            return await self._read(hosts, consumer, count, ">", block)
        return await self._read(hosts, consumer, count, ">", None)

    async def read_pending(self, host: str, consumer: str, count: int) -> list[QueuedAction]:
        return (await self._read([host], consumer, count, "0", None)).get(host, [])

    async def claim_stale(self, host: str, consumer: str, min_idle: float,
                          count: int) -> list[QueuedAction]:
        if host not in self._grouped:
            await self._ensure_group(host)
        stream = self.stream_key(host)
        out: list[QueuedAction] = []
        cursor = "0-0"
        while len(out) < count:
            try:
                reply = await self._cmd("XAUTOCLAIM", stream, self.group, consumer,
                                        max(0, int(min_idle * 1000)), cursor, "COUNT", count - len(out))
            except QueueUnavailable:
                raise
            except Exception as e:
                if _is_nogroup(e):
                    self._grouped.discard(host)
                    return out
                raise QueueError(f"XAUTOCLAIM failed: {e}") from e
            cursor, entries = reply[0], reply[1]
            for entry_id, flat in entries:
                if flat is not None:
                    out.append(QueuedAction.decode(host, entry_id, _pairs(flat)))
            if cursor == "0-0":
                break
        return out

    async def depth(self, host: str) -> int:
        return int(await self._cmd("XLEN", self.stream_key(host)))

    async def lookup(self, host: str, action_id: str) -> str | None:
        state = await self._cmd("HGET", self._keys(host)[1], action_id)
        if state is None:
            return None
        return state if state.startswith("done:") else "queued"

    async def server_epoch(self) -> str | None:
        """The server's run id (changes when Redis restarts)."""
        info = await self._cmd("INFO", "server")
        for line in str(info).splitlines():
            if line.startswith("run_id:"):
                return line.split(":", 1)[1].strip()
        return None

    def forget_groups(self) -> None:
        """Re-create consumer groups on next use (after a server restart)."""
        self._grouped.clear()

    async def close(self) -> None:
        """Close the blocking connection: a read blocked on it ends now (its owner, the Redis
        service, would close it later, after this queue's reader has been waited for)."""
        for conn in (self.blocking_conn,):
            if conn is not None:
                try:
                    await conn.disconnect()
                except Exception:  # already gone
                    pass


def _pairs(flat: list) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def _host_of(stream: str, prefix: str) -> str:
    body = stream[len(prefix) + 2:] if stream.startswith(prefix + "q:") else stream
    return body[1:-1] if body.startswith("{") and body.endswith("}") else body
