"""The in-memory twin of the Redis Streams queue (the embedded, single-instance default).

Same semantics as :mod:`.queue_redis` (see :mod:`.queue`): entries per host in
order, one pending list per consumer with delivery times, idle reclaim, bounded
depth, idempotent ids, finished ids remembered.  Nothing survives a restart.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from .queue import (
    DEFAULT_BOUND,
    DONE_MEMORY,
    EnqueueResult,
    NewAction,
    QueuedAction,
    QueueFull,
    check_batch,
)


@dataclass
class _Pending:
    consumer: str
    delivered_at: float
    count: int = 1


@dataclass
class _Host:
    entries: OrderedDict[int, QueuedAction] = field(default_factory=OrderedDict)
    last_read: int = 0  # the group's "last delivered id"
    pending: dict[int, _Pending] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # action id -> entry id | done:<status>
    done: deque[str] = field(default_factory=deque)
    seq: int = 0


class MemoryActionQueue:
    """Per-host queues in this process; ``clock`` gives idle times."""

    def __init__(self, clock: IReactorTime, bound: int = DEFAULT_BOUND, done_memory: int = DONE_MEMORY):
        self.clock = clock
        self.bound = bound
        self.done_memory = done_memory
        self._hosts: dict[str, _Host] = {}
        self._waiters: list[tuple[set[str], Deferred]] = []
        self.group_resets = 0  # this process is the store: it never loses its groups alone

    def _host(self, host: str) -> _Host:
        h = self._hosts.get(host)
        if h is None:
            h = self._hosts[host] = _Host()
        return h

    async def enqueue(self, host: str, actions: list[NewAction], *, force: bool = False,
                      consumer: str | None = None) -> EnqueueResult:
        check_batch(actions)
        h = self._host(host)
        fresh = [a for a in actions if a.action_id not in h.ids]
        result = EnqueueResult(duplicates=[a.action_id for a in actions if a.action_id in h.ids])
        if not force and len(h.entries) + len(fresh) > self.bound:
            raise QueueFull(host, len(h.entries), self.bound, len(fresh))
        for a in fresh:
            h.seq += 1
            entry_id = f"{h.seq}-0"
            h.entries[h.seq] = QueuedAction(host, entry_id, a.action_id, dict(a.command),
                                            a.controller_token, a.enqueued_at, a.beach)
            h.ids[a.action_id] = entry_id
            result.accepted.append(a.action_id)
            result.entries[a.action_id] = entry_id
        result.depth = len(h.entries)
        if fresh and consumer is not None:  # handed over at once: nothing for the readers
            mine = set(result.entries.values())
            seqs = [seq for seq in h.entries if seq > h.last_read]
            h.last_read = h.seq
            result.claimed = [a for a in self._deliver(h, seqs, consumer) if a.entry_id not in mine]
        elif fresh:
            self._wake(host)
        return result

    def _wake(self, host: str) -> None:
        keep = []
        for hosts, d in self._waiters:
            if host in hosts and not d.called:
                d.callback(None)
            elif not d.called:
                keep.append((hosts, d))
        self._waiters = keep

    def _deliver(self, h: _Host, seqs: list[int], consumer: str) -> list[QueuedAction]:
        now = self.clock.seconds()
        out = []
        for s in seqs:
            p = h.pending.get(s)
            if p is None:
                h.pending[s] = _Pending(consumer, now)
            else:
                p.consumer, p.delivered_at, p.count = consumer, now, p.count + 1
            out.append(h.entries[s])
        return out

    async def read_new(self, host: str, consumer: str, count: int) -> list[QueuedAction]:
        h = self._hosts.get(host)
        if h is None:
            return []
        seqs = [s for s in h.entries if s > h.last_read][:count]
        if seqs:
            h.last_read = seqs[-1]
        return self._deliver(h, seqs, consumer)

    async def read_new_many(self, hosts: list[str], consumer: str, count: int,
                            block: float) -> dict[str, list[QueuedAction]]:
        out = await self._read_all(hosts, consumer, count)
        if out or block <= 0 or not hosts:
            return out
        d: Deferred = Deferred()
        self._waiters.append((set(hosts), d))
        def wake() -> None:
            if not d.called:
                d.callback(None)

        timer = self.clock.callLater(block, wake)
        try:
            await d
        finally:
            if timer.active():
                timer.cancel()
            self._waiters = [(hs, w) for hs, w in self._waiters if w is not d]
        return await self._read_all(hosts, consumer, count)

    async def _read_all(self, hosts, consumer, count) -> dict[str, list[QueuedAction]]:
        out: dict[str, list[QueuedAction]] = {}
        for host in hosts:
            got = await self.read_new(host, consumer, count)
            if got:
                out[host] = got
        return out

    async def read_pending(self, host: str, consumer: str, count: int) -> list[QueuedAction]:
        h = self._hosts.get(host)
        if h is None:
            return []
        seqs = sorted(s for s, p in h.pending.items() if p.consumer == consumer)[:count]
        return [h.entries[s] for s in seqs]

    async def claim_stale(self, host: str, consumer: str, min_idle: float,
                          count: int) -> list[QueuedAction]:
        h = self._hosts.get(host)
        if h is None:
            return []
        now = self.clock.seconds()
        seqs = sorted(s for s, p in h.pending.items() if now - p.delivered_at >= min_idle)[:count]
        return self._deliver(h, seqs, consumer)

    async def finish_many(self, done_by_host: dict[str, list[tuple[str, str, str]]]) -> None:
        for host, done in done_by_host.items():
            await self.finish(host, done)

    async def finish(self, host: str, done: list[tuple[str, str, str]]) -> None:
        h = self._hosts.get(host)
        if h is None:
            h = self._host(host)
        for action_id, entry_id, status in done:
            seq = _seq(entry_id)
            if seq is not None:
                entry = h.entries.get(seq)
                if entry is not None and entry.action_id == action_id:
                    del h.entries[seq]
                    h.pending.pop(seq, None)
            current = h.ids.get(action_id)
            if current is not None and current.startswith("done:"):
                continue
            h.ids[action_id] = f"done:{status}"
            h.done.append(action_id)
            while len(h.done) > self.done_memory:
                old = h.done.popleft()
                if h.ids.get(old, "").startswith("done:"):
                    del h.ids[old]

    async def depth(self, host: str) -> int:
        h = self._hosts.get(host)
        return len(h.entries) if h is not None else 0

    async def lookup(self, host: str, action_id: str) -> str | None:
        h = self._hosts.get(host)
        state = h.ids.get(action_id) if h is not None else None
        if state is None:
            return None
        return state if state.startswith("done:") else "queued"

    async def server_epoch(self) -> str | None:
        return None  # no server that could restart apart from this process

    def forget_groups(self) -> None:
        return None

    async def close(self) -> None:
        waiters, self._waiters = self._waiters, []
        for _, d in waiters:
            if not d.called:
                d.callback(None)


def _seq(entry_id: str) -> int | None:
    try:
        return int(entry_id.split("-", 1)[0])
    except ValueError:
        return None
