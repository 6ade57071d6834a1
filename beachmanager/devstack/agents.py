"""Drivers for a devstack host in agent mode (:mod:`beachmanager.harness.agent`).

* :class:`ScriptDriver` types the lines of a script into the target, one action per line,
  every *interval* seconds, once it holds the lease; it keeps the acks it gets back, and sends
  a line again (same action id) when its ack has not come within :data:`RESEND` seconds (a
  manager that died with it, :class:`Unacked`): the target's harness applies an id once.
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

#: Seconds without an ack before an action is sent again (same id).
RESEND = 3.0
#: Most actions a driver keeps waiting for their ack (the oldest are forgotten beyond it).
MAX_UNACKED = 4096


class Unacked:
    """A driver's actions sent and not acked yet: the oldest one left without an ack for
    :data:`RESEND` seconds is due again, with its id (the target applies an id once)."""

    def __init__(self, clock, after: float = RESEND, bound: int = MAX_UNACKED):
        self.clock = clock
        self.after = after
        self.bound = bound
        self.pending: dict[str, tuple[str, float]] = {}  # action id -> (text, last sent)
        self.resent = 0

    def sent(self, action_id: str, text: str) -> None:
        self.pending[action_id] = (text, self.clock.seconds())
        while len(self.pending) > self.bound:
            del self.pending[next(iter(self.pending))]

    def acked(self, ack: Any) -> str | None:
        """Forget the action an ack names; its id (None when the ack names none)."""
        if isinstance(ack, dict) and isinstance(ack.get("id"), str):
            self.pending.pop(ack["id"], None)
            return ack["id"]
        return None

    def resend_one(self, agent) -> bool:
        """Send the oldest late action again; True when one went."""
        now = self.clock.seconds()
        late = next(((aid, text) for aid, (text, at) in self.pending.items()
                     if now - at >= self.after), None)
        if late is None:
            return False
        aid, text = late
        if agent.act([{"id": aid, "action_type": "terminal_write",
                       "payload": {"bytes": text}}]) is None:
            return False
        self.pending[aid] = (text, now)
        self.resent += 1
        return True

    def __len__(self) -> int:
        return len(self.pending)


class ScriptDriver:
    log = Logger()

    def __init__(self, clock, lines: tuple[str, ...], interval: float = 0.1):
        self.clock = clock
        self.lines = list(lines)
        self.interval = interval
        self.acked: dict[str, str] = {}  # action id -> status
        self.unacked = Unacked(clock)
        self.states = 0
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
        if self.unacked.resend_one(agent):
            return
        if self._next >= len(self.lines):
            if not self.unacked and self._loop is not None and self._loop.running:
                self._loop.stop()
            return
        aid, text = f"{self._tag}-line-{self._next}", self.lines[self._next] + "\r"
        if agent.act([{"id": aid, "action_type": "terminal_write",
                       "payload": {"bytes": text}}]) is not None:
            self.unacked.sent(aid, text)
            self._next += 1

    def on_state(self, agent, state: Any) -> None:
        self.states += 1

    def on_ack(self, agent, ack: Any) -> None:
        aid = self.unacked.acked(ack)
        if aid is not None:
            self.acked[aid] = str(ack.get("status"))


__all__ = ["ScriptDriver", "Unacked"]
