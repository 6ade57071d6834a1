"""Agents across manager instances: the target's acks and states to the agent's instance.

An agent's actions reach a target owned by another instance through the target's shared queue
stream already.  What comes back — the target's acks and states — arrives at the target's
owner.  :class:`AgentRelay` carries it over Redis:

* the agent's instance records that it *watches* the target: hash
  ``{prefix}watch:{target}`` (field: instance id, value: until when, ms), renewed while its
  agents hold a lease (at most every :data:`RENEW` s) and expiring by itself, and the target
  in the set ``{prefix}watched``;
* a new or renewed watch is also announced on the shared stream ``{prefix}watches``, which
  every instance reads with its inbox: the owner knows at once (before the agent's first
  action comes back as an ack); every instance also reads the set once a second (one
  ``SMEMBERS``, after a restart say).  A host nobody watches costs its owner one set lookup
  per event, nothing more;
* the target's owner looks a watched target's watchers up (cached for :data:`CACHE` s) and
  appends each ack or state for a target watched by *another* instance to that instance's
  inbox stream
  ``{prefix}inbox:{instance}`` (``MAXLEN ~`` :data:`INBOX_MAX`: a slow reader loses old states,
  never the owner's memory);
* each instance reads its own inbox with ``XREAD BLOCK`` on a dedicated connection and hands
  every entry to the gateway, which forwards it to its local agents.

An instance never relays to itself (its gateway forwarded locally already).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from .._aio import background

PREFIX = "beach:agents:"
RENEW = 3.0
WATCH_TTL = 15.0
CACHE = 1.0
INBOX_MAX = 1000
BLOCK_MS = 2000
MAX_TARGETS = 4096

OnEvent = Callable[[str, str, Any], None]  # (target, kind "ack"|"state", harness JSON value)


class AgentRelay:
    log = Logger()

    def __init__(self, conn, blocking_conn, clock: IReactorTime, instance_id: str,
                 prefix: str = PREFIX):
        self.conn = conn
        self.blocking = blocking_conn
        self.clock = clock
        self.instance_id = instance_id
        self.prefix = prefix
        self._on_event: OnEvent | None = None
        self._renewed: dict[str, float] = {}  # target -> when our watch was last written
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}  # target -> (at, watchers)
        self.watched: frozenset[str] = frozenset()  # targets some instance watches (SMEMBERS)
        self._refresh: Any = None
        self._last_ids = {"inbox": "$", "watches": "$"}
        self._running = False
        self._loop: Deferred | None = None
        self.relayed = 0
        self.received = 0
        self.errors = 0

    # -- the agent's side ---------------------------------------------------------------------
    def start(self, on_event: OnEvent) -> None:
        self._on_event = on_event
        self._running = True
        self._loop = background(ensureDeferred(self._read_loop()), "agent relay inbox",
                                self.log)
        from twisted.internet.task import LoopingCall

        self._refresh = LoopingCall(lambda: ensureDeferred(self._refresh_watched()))
        self._refresh.clock = self.clock
        background(self._refresh.start(CACHE, now=True), "agent relay watched set", self.log)

    def stop(self) -> None:
        self._running = False
        if self._refresh is not None and self._refresh.running:
            self._refresh.stop()

    async def _refresh_watched(self) -> None:
        try:
            members = await self.conn.execute_command("SMEMBERS", self._watched_key())
        except Exception:
            self.errors += 1
            return
        self.watched = frozenset(str(m) for m in members or [])

    def watches(self, target: str) -> bool:
        """Whether some instance watches *target* (as of the last second)."""
        return target in self.watched

    def watch(self, target: str) -> None:
        """This instance's agents hold a lease on *target*: ask its owner for its events."""
        now = self.clock.seconds()
        if now - self._renewed.get(target, float("-inf")) < RENEW:
            return
        self._renewed[target] = now
        if len(self._renewed) > MAX_TARGETS:
            oldest = min(self._renewed, key=self._renewed.__getitem__)
            del self._renewed[oldest]
        until = int((now + WATCH_TTL) * 1000)
        key = self._watch_key(target)
        d = ensureDeferred(self._write_watch(target, key, until))
        background(d, "agent relay watch", self.log, host_session_id=target)

    async def _write_watch(self, target: str, key: str, until: int) -> None:
        await self.conn.execute_command("HSET", key, self.instance_id, until)
        await self.conn.execute_command("PEXPIRE", key, int(WATCH_TTL * 1000))
        await self.conn.execute_command("SADD", self._watched_key(), target)
        await self.conn.execute_command("XADD", self._watches_key(), "MAXLEN", "~", INBOX_MAX,
                                        "*", "target", target, "instance", self.instance_id,
                                        "until", until)

    async def _read_loop(self) -> None:
        inbox, watches = self._inbox_key(self.instance_id), self._watches_key()
        while self._running:
            try:
                reply = await self.blocking.execute_command(
                    "XREAD", "COUNT", 100, "BLOCK", BLOCK_MS, "STREAMS", inbox, watches,
                    self._last_ids["inbox"], self._last_ids["watches"])
            except Exception as e:
                self.errors += 1
                if self.errors % 20 == 1:
                    self.log.warn("agent relay: reading the inbox failed ({error}); retrying",
                                  error=str(e) or type(e).__name__)
                await deferLater(self.clock, 1.0, lambda: None)
                continue
            for stream, entries in reply or []:
                which = "watches" if str(stream) == watches else "inbox"
                for entry_id, flat in entries:
                    self._last_ids[which] = entry_id
                    fields = dict(zip(flat[::2], flat[1::2], strict=False))
                    if which == "watches":
                        self._heard_watch(fields)
                    else:
                        self._deliver(fields)

    def _heard_watch(self, fields: dict[str, Any]) -> None:
        try:
            target, instance, until = (str(fields["target"]), str(fields["instance"]),
                                       int(fields["until"]))
        except (KeyError, ValueError, TypeError):
            self.errors += 1
            return
        self.watched = self.watched | {target}
        at, watchers = self._cache.get(target, (self.clock.seconds(), {}))
        self._cache[target] = (self.clock.seconds(), {**watchers, instance: until})

    def _deliver(self, fields: dict[str, Any]) -> None:
        try:
            target, kind = str(fields["target"]), str(fields["kind"])
            value = json.loads(fields["value"])
        except (KeyError, ValueError, TypeError):
            self.errors += 1
            return
        self.received += 1
        if self._on_event is not None and kind in ("ack", "state"):
            try:
                self._on_event(target, kind, value)
            except Exception:
                self.log.failure("agent relay: forwarding an event failed")

    # -- the target owner's side ----------------------------------------------------------------
    def relay(self, target: str, kind: str, value: Any) -> None:
        """An ack or state of *target* (owned here): append it to the inboxes of the other
        instances that watch it."""
        if target not in self.watched:
            return
        cached = self._cache.get(target)
        now = self.clock.seconds()
        if cached is not None and now - cached[0] < CACHE:
            self._send(target, kind, value, cached[1])
            return
        d = ensureDeferred(self._refresh_and_send(target, kind, value))
        background(d, "agent relay", self.log, host_session_id=target)

    async def _refresh_and_send(self, target: str, kind: str, value: Any) -> None:
        flat = await self.conn.execute_command("HGETALL", self._watch_key(target))
        watchers = {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat or []) - 1, 2)}
        self._cache[target] = (self.clock.seconds(), watchers)
        if not watchers:  # the watch expired: take the target out of the watched set
            await self.conn.execute_command("SREM", self._watched_key(), target)
        if len(self._cache) > MAX_TARGETS:
            oldest = min(self._cache, key=lambda t: self._cache[t][0])
            del self._cache[oldest]
        self._send(target, kind, value, watchers)

    def _send(self, target: str, kind: str, value: Any, watchers: dict[str, int]) -> None:
        now_ms = int(self.clock.seconds() * 1000)
        others = [i for i, until in watchers.items() if i != self.instance_id and until > now_ms]
        if not others:
            return
        body = json.dumps(value, separators=(",", ":"))
        for instance in others:
            d = self.conn.execute_command("XADD", self._inbox_key(instance), "MAXLEN", "~",
                                          INBOX_MAX, "*", "target", target, "kind", kind,
                                          "value", body)
            d.addErrback(self._failed)
            self.relayed += 1

    def _failed(self, failure) -> None:
        self.errors += 1
        if self.errors % 20 == 1:
            self.log.warn("agent relay: appending to an inbox failed ({error})",
                          error=failure.getErrorMessage())

    # -- keys ------------------------------------------------------------------------------------
    def _watch_key(self, target: str) -> str:
        return f"{self.prefix}watch:{target}"

    def _watches_key(self) -> str:
        return f"{self.prefix}watches"

    def _watched_key(self) -> str:
        return f"{self.prefix}watched"

    def _inbox_key(self, instance: str) -> str:
        return f"{self.prefix}inbox:{instance}"

    def status(self) -> dict[str, Any]:
        return {"relayed": self.relayed, "received": self.received, "errors": self.errors,
                "watching": len(self._renewed)}


__all__ = ["AgentRelay"]
