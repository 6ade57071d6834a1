"""The shared assignment store on Redis: membership records, owners, capacity claims.

Each method is one Lua script from :mod:`.scripts` (or one plain read), so every decision
is atomic across all instances.  Methods are Twisted-side coroutines that await
txredisapi Deferreds; a connection error becomes :class:`AssignmentUnavailable`.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger

from . import scripts
from .model import (
    AssignmentUnavailable,
    Decision,
    Heartbeat,
    InstanceInfo,
    Member,
    Move,
    Ownership,
    SweepResult,
    Takeover,
)

DEFAULT_PREFIX = "beach:{assign}:"
#: Moves kept in the ``log`` stream (approximately; MAXLEN ~).
LOG_MAX = 10_000
#: Most hosts one sweep moves (the rest wait for the next tick).
SWEEP_BUDGET = 2_000


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _moves(reply: list, reason: str) -> SweepResult:
    now = int(reply[0])
    rest = [_text(v) for v in reply[1:]]
    cut = rest.index("|")
    moved, stranded = rest[:cut], rest[cut + 1:]
    out = SweepResult()
    for i in range(0, len(moved), 3):
        out.moves.append(Move(moved[i], moved[i + 2], moved[i + 1], reason, now))
    for i in range(0, len(stranded), 2):
        out.stranded.append((stranded[i], stranded[i + 1]))
    return out


class RedisAssignmentStore:
    name = "redis"
    log = Logger()

    def __init__(self, conn, *, dead_after_ms: int, prefix: str = DEFAULT_PREFIX,
                 log_max: int = LOG_MAX, sweep_budget: int = SWEEP_BUDGET):
        self.conn = conn
        self.prefix = prefix
        self.dead_after_ms = int(dead_after_ms)
        self.log_max = log_max
        self.sweep_budget = sweep_budget

    async def _eval(self, script: str, *args: Any) -> Any:
        argv = [self.prefix, self.dead_after_ms, self.log_max, *args]
        try:
            return await self.conn.eval(script, [], argv)
        except Exception as e:
            if _is_connection_error(e):
                raise AssignmentUnavailable(f"redis did not answer: {e}") from e
            raise

    async def _cmd(self, *args: Any) -> Any:
        try:
            return await self.conn.execute_command(*args)
        except Exception as e:
            if _is_connection_error(e):
                raise AssignmentUnavailable(f"redis did not answer: {e}") from e
            raise

    # -- membership ------------------------------------------------------------------------
    async def heartbeat(self, info: InstanceInfo, ttl_ms: int, incarnation: str,
                        fresh: bool = False) -> Heartbeat:
        r = await self._eval(scripts.HEARTBEAT, info.id, info.endpoint, info.capacity, info.state,
                             int(ttl_ms), incarnation, "1" if fresh else "0")
        return Heartbeat(int(r[0]), int(r[1]), bool(int(r[2])), _text(r[3]) or None)

    async def leave(self, instance_id: str) -> int:
        """Delete our record; returns how many hosts we still own (they are orphaned now)."""
        return int(await self._eval(scripts.LEAVE, instance_id))

    async def members(self) -> list[Member]:
        r = await self._eval(scripts.MEMBERS)
        now = int(r[0])
        out = []
        for i in range(1, len(r), 6):
            hb = _text(r[i + 5])
            hb_ms = int(hb) if hb else 0
            age = now - hb_ms if hb else -1
            out.append(Member(_text(r[i]), _text(r[i + 1]), int(_text(r[i + 2]) or 0), int(r[i + 3]),
                              _text(r[i + 4]), hb_ms,
                              bool(hb) and age <= self.dead_after_ms, age))
        return sorted(out, key=lambda m: m.id)

    # -- placement -------------------------------------------------------------------------
    async def assign(self, host: str, reason: str = "attach") -> Decision | None:
        """Place *host* (sticky); None when no candidate has room."""
        r = await self._eval(scripts.ASSIGN, host, reason)
        status, owner, previous, why, now = _text(r[0]), _text(r[1]), _text(r[2]), _text(r[3]), int(r[4])
        if status == "full":
            return None
        move = Move(host, owner, previous or None, why, now) if status == "assigned" else None
        return Decision(host, status, owner, move)

    async def sweep(self) -> SweepResult:
        return _moves(await self._eval(scripts.SWEEP, self.sweep_budget), "failover")

    async def handover(self, instance_id: str) -> SweepResult:
        return _moves(await self._eval(scripts.HANDOVER, instance_id), "drain")

    async def rebalance(self, instance_id: str, budget: int) -> SweepResult:
        return _moves(await self._eval(scripts.REBALANCE, instance_id, budget), "rebalance")

    async def release(self, host: str, expected_owner: str | None = None) -> Move | None:
        r = await self._eval(scripts.RELEASE, host, expected_owner or "")
        if not int(r[0]):
            return None
        return Move(host, None, _text(r[1]), "release", int(r[2]))

    async def take_over(self, host: str, claimant: str, expected_owner: str, expected_epoch: int,
                        min_interval_ms: int) -> Takeover:
        r = await self._eval(scripts.TAKEOVER, host, claimant, expected_owner, expected_epoch,
                             int(min_interval_ms))
        return Takeover(_text(r[0]), _text(r[1]) or None, int(r[2]), int(r[3]))

    async def adopt(self, instance_id: str, capacity: int, hosts: list[str]) -> list[Move]:
        if not hosts:
            return []
        r = await self._eval(scripts.ADOPT, instance_id, capacity, *hosts)
        now = int(r[0])
        return [Move(_text(h), instance_id, None, "restore", now) for h in r[1:]]

    async def mark_ready(self, host: str, instance_id: str, ready: bool) -> bool:
        return bool(int(await self._eval(scripts.MARK_READY, host, instance_id, "1" if ready else "0")))

    # -- reads -----------------------------------------------------------------------------
    async def owned(self, instance_id: str) -> set[str]:
        return {_text(h) for h in await self._cmd("SMEMBERS", f"{self.prefix}hosts:{instance_id}")}

    async def holdings(self, instance_id: str) -> tuple[bool, set[str]]:
        """(our membership record exists, hosts we own), read atomically."""
        r = await self._eval(scripts.HOLDINGS, instance_id)
        return bool(int(r[0])), {_text(h) for h in r[1:]}

    async def lookup(self, host: str) -> Ownership | None:
        owner = await self._cmd("HGET", self.prefix + "owner", host)
        if not owner:
            return None
        since = await self._cmd("HGET", self.prefix + "since", host)
        ready = await self._cmd("HGET", self.prefix + "ready", host)
        return _ownership(host, _text(owner), since, _text(ready))

    async def ownerships(self, limit: int = 10_000) -> list[Ownership]:
        """Every owned host (at most *limit*), sorted by host id."""
        owners = _pairs(await self._cmd("HGETALL", self.prefix + "owner"))
        since = _pairs(await self._cmd("HGETALL", self.prefix + "since"))
        ready = _pairs(await self._cmd("HGETALL", self.prefix + "ready"))
        hosts = sorted(owners)[:limit]
        return [_ownership(h, owners[h], since.get(h), ready.get(h, "")) for h in hosts]

    async def recent_moves(self, count: int = 50) -> list[Move]:
        entries = await self._cmd("XREVRANGE", self.prefix + "log", "+", "-", "COUNT", count)
        out = []
        for _entry_id, flat in entries or []:
            f = _pairs(flat)
            out.append(Move(f.get("host", ""), f.get("to") or None, f.get("from") or None,
                            f.get("reason", ""), int(f.get("at") or 0)))
        return out


def _pairs(flat) -> dict[str, str]:
    if isinstance(flat, dict):
        return {_text(k): _text(v) for k, v in flat.items()}
    flat = list(flat or [])
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _ownership(host: str, owner: str, since: Any, ready: str) -> Ownership:
    meta = json.loads(_text(since)) if since else {}
    return Ownership(host, owner, int(meta.get("at", 0)), meta.get("reason", ""),
                     meta.get("from") or None, ready == owner, int(meta.get("epoch", 0)))


def _is_connection_error(e: Exception) -> bool:
    import txredisapi
    from twisted.internet.error import ConnectError, ConnectionLost

    return isinstance(e, txredisapi.ConnectionError | ConnectionLost | ConnectError | TimeoutError)
