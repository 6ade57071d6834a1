"""Drivers for a devstack host in agent mode (:mod:`beachmanager.harness.agent`).

* :class:`ScriptDriver` types the lines of a script into the target, one action per line,
  every *interval* seconds, once it holds the lease; it keeps the acks it gets back.
* A Pong player lives in :mod:`beachmanager.devstack.pong` (it reads the target's screen).

A driver is told when the lease is first granted, and of every state and ack forwarded to the
agent; it acts through ``agent.act`` / ``agent.type_text``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background


class ScriptDriver:
    log = Logger()

    def __init__(self, clock, lines: tuple[str, ...], interval: float = 0.1):
        self.clock = clock
        self.lines = list(lines)
        self.interval = interval
        self.acked: dict[str, str] = {}  # action id -> status
        self.states = 0
        self._next = 0
        self._loop: LoopingCall | None = None

    def started(self, agent) -> None:
        self._loop = LoopingCall(self._type, agent)
        self._loop.clock = self.clock
        background(self._loop.start(self.interval, now=True), "agent script", self.log)

    def _type(self, agent) -> None:
        if self._next >= len(self.lines):
            if self._loop is not None and self._loop.running:
                self._loop.stop()
            return
        if not agent.leased:
            return  # the lease went: wait for the next one
        if agent.type_text(self.lines[self._next] + "\r") is not None:
            self._next += 1

    def on_state(self, agent, state: Any) -> None:
        self.states += 1

    def on_ack(self, agent, ack: Any) -> None:
        if isinstance(ack, dict) and isinstance(ack.get("id"), str):
            self.acked[ack["id"]] = str(ack.get("status"))


__all__ = ["ScriptDriver"]
