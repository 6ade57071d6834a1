"""The in-memory twin of :class:`~.store_redis.RedisAssignmentStore` (the embedded default).

Same semantics, same contract tests; time comes from the injected clock instead of Redis
``TIME``, and TTLs are checked on read.  Several instances may share one object, which
is how the unit tests drive failover and drain on a :class:`~twisted.internet.task.Clock`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from .model import (
    SERVING,
    Decision,
    Heartbeat,
    InstanceInfo,
    Member,
    Move,
    Ownership,
    SweepResult,
    Takeover,
)
from .rendezvous import score
from .store_redis import LOG_MAX, SWEEP_BUDGET


@dataclass
class _Record:
    info: InstanceInfo
    heartbeat_ms: int
    expires_ms: int
    incarnation: str


class MemoryAssignmentStore:
    name = "memory"

    def __init__(self, clock: IReactorTime, *, dead_after_ms: int, log_max: int = LOG_MAX,
                 sweep_budget: int = SWEEP_BUDGET):
        self.clock = clock
        self.dead_after_ms = int(dead_after_ms)
        self.sweep_budget = sweep_budget
        self._members: set[str] = set()
        self._records: dict[str, _Record] = {}
        self._hosts: dict[str, set[str]] = {}
        self._owner: dict[str, str] = {}
        self._since: dict[str, tuple[int, str, str | None]] = {}
        self._epoch: dict[str, int] = {}  # +1 on every change of owner (fencing)
        self._ready: dict[str, str] = {}
        self._log: deque[Move] = deque(maxlen=log_max)

    # -- internals mirroring the Lua prelude -------------------------------------------------
    def _now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _record(self, instance_id: str, now: int) -> _Record | None:
        r = self._records.get(instance_id)
        if r is not None and r.expires_ms <= now:
            del self._records[instance_id]
            return None
        return r

    def _is_live(self, instance_id: str, now: int) -> bool:
        r = self._record(instance_id, now)
        return r is not None and now - r.heartbeat_ms <= self.dead_after_ms

    def _has_room(self, instance_id: str, now: int) -> bool:
        r = self._record(instance_id, now)
        if r is None or now - r.heartbeat_ms > self.dead_after_ms or r.info.state != SERVING:
            return False
        return len(self._hosts.get(instance_id, ())) < r.info.capacity

    def _choose(self, host: str, exclude: str | None, now: int) -> str | None:
        best: int | None = None
        chosen = None
        for instance_id in sorted(self._members):  # ascending: equal scores go to the smaller id
            if instance_id != exclude and self._has_room(instance_id, now):
                s = score(instance_id, host)
                if best is None or s > best:
                    best, chosen = s, instance_id
        return chosen

    def _move(self, host: str, from_: str | None, to: str | None, reason: str, now: int) -> Move:
        if from_:
            self._hosts.get(from_, set()).discard(host)
        self._ready.pop(host, None)
        if to:
            self._hosts.setdefault(to, set()).add(host)
            self._owner[host] = to
            self._since[host] = (now, reason, from_)
            self._epoch[host] = self._epoch.get(host, 0) + 1
        else:
            self._owner.pop(host, None)
            self._since.pop(host, None)
        move = Move(host, to, from_, reason, now)
        self._log.append(move)
        return move

    # -- membership ------------------------------------------------------------------------
    async def heartbeat(self, info: InstanceInfo, ttl_ms: int, incarnation: str,
                        fresh: bool = False) -> Heartbeat:
        now = self._now()
        old = self._record(info.id, now)
        load = len(self._hosts.get(info.id, ()))
        self._records[info.id] = _Record(info, now, now + int(ttl_ms), incarnation)
        self._members.add(info.id)
        return Heartbeat(now, load, old is not None, old.incarnation if old else None)

    async def leave(self, instance_id: str) -> int:
        self._records.pop(instance_id, None)
        left = len(self._hosts.get(instance_id, ()))
        if left == 0:
            self._members.discard(instance_id)
        return left

    async def members(self) -> list[Member]:
        now = self._now()
        out = []
        for instance_id in sorted(self._members):
            r = self._record(instance_id, now)
            load = len(self._hosts.get(instance_id, ()))
            if r is None:
                out.append(Member(instance_id, "", 0, load, "", 0, False, -1))
            else:
                age = now - r.heartbeat_ms
                out.append(Member(instance_id, r.info.endpoint, r.info.capacity, load, r.info.state,
                                  r.heartbeat_ms, age <= self.dead_after_ms, age))
        return out

    # -- placement -------------------------------------------------------------------------
    async def assign(self, host: str, reason: str = "attach") -> Decision | None:
        now = self._now()
        cur = self._owner.get(host)
        if cur and self._is_live(cur, now):
            return Decision(host, "kept", cur)
        to = self._choose(host, None, now)
        if to is None:
            return None
        move = self._move(host, cur, to, "failover" if cur else reason, now)
        return Decision(host, "assigned", to, move)

    async def sweep(self) -> SweepResult:
        now = self._now()
        out = SweepResult()
        budget = self.sweep_budget
        for instance_id in sorted(self._members):
            if self._is_live(instance_id, now):
                continue
            hosts = sorted(self._hosts.get(instance_id, ()))
            if not hosts and self._record(instance_id, now) is None:
                self._members.discard(instance_id)
            for host in hosts:
                to = self._choose(host, instance_id, now) if budget > 0 else None
                if to:
                    out.moves.append(self._move(host, instance_id, to, "failover", now))
                    budget -= 1
                else:
                    out.stranded.append((host, instance_id))
        return out

    async def handover(self, instance_id: str) -> SweepResult:
        now = self._now()
        out = SweepResult()
        for host in sorted(self._hosts.get(instance_id, ())):
            to = self._choose(host, instance_id, now)
            if to:
                out.moves.append(self._move(host, instance_id, to, "drain", now))
            else:
                out.stranded.append((host, instance_id))
        return out

    async def rebalance(self, instance_id: str, budget: int) -> SweepResult:
        now = self._now()
        out = SweepResult()
        for host in sorted(self._hosts.get(instance_id, ())):
            if budget <= 0:
                break
            best, best_score = None, score(instance_id, host)
            for other in sorted(self._members):
                s = score(other, host)
                if other != instance_id and s > best_score and self._has_room(other, now):
                    best, best_score = other, s
            if best is not None:
                out.moves.append(self._move(host, instance_id, best, "rebalance", now))
                budget -= 1
        return out

    async def release(self, host: str, expected_owner: str | None = None) -> Move | None:
        cur = self._owner.get(host)
        if cur is None or (expected_owner and cur != expected_owner):
            return None
        return self._move(host, cur, None, "release", self._now())

    async def take_over(self, host: str, claimant: str, expected_owner: str, expected_epoch: int,
                        min_interval_ms: int) -> Takeover:
        now = self._now()
        cur, epoch = self._owner.get(host), self._epoch.get(host, 0)
        if cur is None or cur != expected_owner or cur == claimant:
            return Takeover("moved", cur, epoch, now)
        if epoch != expected_epoch:
            return Takeover("stale", cur, epoch, now)
        since = self._since.get(host)
        if since is not None and now - since[0] < min_interval_ms:
            return Takeover("recent", cur, epoch, now)
        if not self._has_room(claimant, now):
            return Takeover("full", cur, epoch, now)
        self._move(host, cur, claimant, "failover", now)
        return Takeover("taken", claimant, epoch + 1, now)

    async def adopt(self, instance_id: str, capacity: int, hosts: list[str]) -> list[Move]:
        now = self._now()
        out = []
        for host in hosts:
            if host not in self._owner and len(self._hosts.get(instance_id, ())) < capacity:
                out.append(self._move(host, None, instance_id, "restore", now))
        return out

    async def mark_ready(self, host: str, instance_id: str, ready: bool) -> bool:
        if self._owner.get(host) != instance_id:
            return False
        if ready:
            self._ready[host] = instance_id
        else:
            self._ready.pop(host, None)
        return True

    # -- reads -----------------------------------------------------------------------------
    async def owned(self, instance_id: str) -> set[str]:
        return set(self._hosts.get(instance_id, ()))

    async def holdings(self, instance_id: str) -> tuple[bool, set[str]]:
        return (self._record(instance_id, self._now()) is not None,
                set(self._hosts.get(instance_id, ())))

    async def lookup(self, host: str) -> Ownership | None:
        owner = self._owner.get(host)
        if owner is None:
            return None
        at, reason, from_ = self._since[host]
        return Ownership(host, owner, at, reason, from_, self._ready.get(host) == owner,
                         self._epoch.get(host, 0))

    async def ownerships(self, limit: int = 10_000) -> list[Ownership]:
        out = []
        for host in sorted(self._owner)[:limit]:
            at, reason, from_ = self._since[host]
            out.append(Ownership(host, self._owner[host], at, reason, from_,
                                 self._ready.get(host) == self._owner[host],
                                 self._epoch.get(host, 0)))
        return out

    async def recent_moves(self, count: int = 50) -> list[Move]:
        return list(reversed(self._log))[:count]

