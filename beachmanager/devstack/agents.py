"""Drivers for a devstack host in agent mode (:mod:`beachmanager.harness.agent`).

* :class:`ScriptDriver` types the lines of a script into the target, one action per line,
  every *interval* seconds, once it holds the lease; it keeps the acks it gets back, and sends
  a line again (same action id) when its ack has not come within :data:`RESEND` seconds (a
  manager that died with it): the target's harness applies an id once.
* A Pong player lives in :mod:`beachmanager.devstack.pong` (it reads the target's screen).

A driver is told when the lease is first granted, and of every state and ack forwarded to the
agent; it acts through ``agent.act`` / ``agent.type_text``.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background

#: Seconds without an ack before a line is sent again (same id).
RESEND = 3.0


class ScriptDriver:
    log = Logger()

    def __init__(self, clock, lines: tuple[str, ...], interval: float = 0.1):
        self.clock = clock
        self.lines = list(lines)
        self.interval = interval
        self.acked: dict[str, str] = {}  # action id -> status
        self.pending: dict[str, tuple[str, float]] = {}  # action id -> (text, last sent)
        self.states = 0
        self.resent = 0
        self._next = 0
        self._tag = uuid.uuid4().hex[:8]  # ids of this run: two agents never share one
        self._loop: LoopingCall | None = None

    def started(self, agent) -> None:
        self._loop = LoopingCall(self._type, agent)
        self._loop.clock = self.clock
        background(self._loop.start(self.interval, now=True), "agent script", self.log)

    def _type(self, agent) -> None:
        if not agent.leased:
            return  # the lease went: wait for the next one
        now = self.clock.seconds()
        late = [(aid, text) for aid, (text, at) in self.pending.items() if now - at >= RESEND]
        if late:
            aid, text = late[0]
            if agent.act([{"id": aid, "action_type": "terminal_write",
                           "payload": {"bytes": text}}]) is not None:
                self.pending[aid] = (text, now)
                self.resent += 1
            return
        if self._next >= len(self.lines):
            if not self.pending and self._loop is not None and self._loop.running:
                self._loop.stop()
            return
        aid, text = f"{self._tag}-line-{self._next}", self.lines[self._next] + "\r"
        if agent.act([{"id": aid, "action_type": "terminal_write",
                       "payload": {"bytes": text}}]) is not None:
            self.pending[aid] = (text, now)
            self._next += 1

    def on_state(self, agent, state: Any) -> None:
        self.states += 1

    def on_ack(self, agent, ack: Any) -> None:
        if isinstance(ack, dict) and isinstance(ack.get("id"), str):
            self.acked[ack["id"]] = str(ack.get("status"))
            self.pending.pop(ack["id"], None)


__all__ = ["ScriptDriver"]
