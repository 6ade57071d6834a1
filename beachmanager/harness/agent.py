"""Agent mode: this host's harness drives another host (the target) through its manager.

Over the host's own transport to its active manager (the peer the fence names: the one its
association came over), the agent asks for a controller lease on the target, then publishes
actions for it; the manager forwards the target's states and the acks of the agent's actions
(:mod:`beachmanager.protocol.agent`).  No REST call is made.  What to do with a state is a
:class:`Driver`'s business (``devstack/agents.py`` has a script typist and a Pong player).

The lease is asked for again when refused or lost (every :data:`RETRY` seconds) and renewed
before it expires.  Messages from any peer but the active manager's are ignored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background
from ..protocol import agent as ag
from ..protocol import fencing

#: Seconds between lease requests while none is held (and the tick of the agent's timer).
RETRY = 1.0
#: Codes that mean the lease is gone: ask for a new one.
LEASE_LOST = frozenset({"missing_lease", "lease_expired", "lease_revoked", "controller_mismatch"})


class Driver(Protocol):
    def started(self, agent: Agent) -> None: ...

    def on_state(self, agent: Agent, state: Any) -> None: ...

    def on_ack(self, agent: Agent, ack: Any) -> None: ...


@dataclass(frozen=True)
class AgentSettings:
    target: str
    token: str
    private_beach_id: str | None = None
    ttl_ms: int | None = None


class Agent:
    log = Logger()

    def __init__(self, bus, clock, fence: fencing.Fence, settings: AgentSettings, driver: Driver,
                 events: Callable[[dict[str, Any]], None] | None = None,
                 bridge_token: Callable[[], str | None] = lambda: None):
        """*bridge_token* reads the one this host's association gave it (sent with every
        request: it names this host to the manager)."""
        self.bus = bus
        self.clock = clock
        self.fence = fence
        self.settings = settings
        self.driver = driver
        self._events = events or (lambda e: None)
        self._bridge_token = bridge_token
        self.controller_token: str | None = None
        self.expires_at_ms = 0
        self._renew_at = 0.0  # two thirds into the lease's life
        self._asked_at: float | None = None
        self._ids = itertools.count(1)
        self._requests = itertools.count(1)
        self._loop: LoopingCall | None = None
        self._undo: list[Callable[[], None]] = []
        self.counts = {"sent": 0, "acks": 0, "states": 0, "errors": 0, "leases": 0}
        self._driving = False

    def start(self) -> None:
        self._undo = [self.bus.subscribe(topic, self._message) for topic in ag.TO_AGENT]
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        background(self._loop.start(RETRY / 4, now=False), "agent timer", self.log)

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    # -- the lease ----------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.clock.seconds()
        if self.controller_token is not None and now < self._renew_at:
            return  # renewed at two thirds of its life
        if self._asked_at is not None and now - self._asked_at < RETRY:
            return
        bridge = self._bridge_token()
        if self.fence.peer is None or bridge is None:
            return  # no active manager yet (its association brings the bridge token)
        self._asked_at = now
        rid = f"lease-{next(self._requests)}"
        self._send(ag.TOPIC_LEASE, ag.lease_request(ag.LeaseRequest(
            rid, self.settings.target, self.settings.token, self.settings.private_beach_id,
            self.settings.ttl_ms, bridge)))

    def _send(self, topic: str, payload: bytes) -> bool:
        peer = self.fence.peer
        return peer is not None and self.bus.send_to(peer, topic, payload)

    # -- driving ------------------------------------------------------------------------------
    @property
    def leased(self) -> bool:
        return self.controller_token is not None

    def act(self, commands: list[dict[str, Any]]) -> str | None:
        """Publish actions for the target (ids are given here if missing); the request id, or
        None when there is no lease or no manager to send to."""
        token = self.controller_token
        if token is None or not commands:
            return None
        for c in commands:
            c.setdefault("id", f"{self.settings.target}-agent-{next(self._ids)}")
        rid = f"act-{next(self._requests)}"
        sent = self._send(ag.TOPIC_ACTIONS, ag.actions_request(ag.ActionsRequest(
            rid, self.settings.target, self.settings.token, token, tuple(commands),
            self.settings.private_beach_id, self._bridge_token())))
        if sent:
            self.counts["sent"] += len(commands)
            self._events({"event": "sent", "request_id": rid, "ids": [c["id"] for c in commands]})
        return rid if sent else None

    def type_text(self, text: str) -> str | None:
        """One ``terminal_write`` action with *text*."""
        return self.act([{"action_type": "terminal_write", "payload": {"bytes": text}}])

    # -- from the manager ---------------------------------------------------------------------
    def _message(self, topic: str, payload: bytes, peer: str | None) -> None:
        if peer is None or peer != self.fence.peer:
            return  # only the active manager speaks for the target
        try:
            message = ag.read_from_manager(payload)
        except ag.AgentError as e:
            self.log.warn("agent: dropping a bad message on {topic}: {error}", topic=topic,
                          error=str(e))
            return
        if isinstance(message, ag.Lease):
            self.controller_token, self.expires_at_ms = (message.controller_token,
                                                         message.expires_at_ms)
            now = self.clock.seconds()
            self._renew_at = now + max(0.0, message.expires_at_ms / 1000 - now) * 2 / 3
            self._asked_at = None
            self.counts["leases"] += 1
            self._events({"event": "lease", "expires_at_ms": message.expires_at_ms})
            if not self._driving:
                self._driving = True
                self.driver.started(self)
        elif isinstance(message, ag.Forwarded) and message.kind == "ack":
            self.counts["acks"] += 1
            self._events({"event": "ack", "ack": message.value})
            self.driver.on_ack(self, message.value)
        elif isinstance(message, ag.Forwarded):
            self.counts["states"] += 1
            if self.counts["states"] % 10 == 1:  # the log keeps a sample, not every frame
                self._events({"event": "state", "n": self.counts["states"]})
            self.driver.on_state(self, message.value)
        elif isinstance(message, ag.Refusal):
            self.counts["errors"] += 1
            self._events({"event": "error", "code": message.code, "message": message.message,
                          "request_id": message.request_id})
            self.log.warn("agent: the manager refused {request}: {code}: {message}",
                          request=message.request_id, code=message.code, message=message.message)
            if message.code in LEASE_LOST or (message.request_id or "").startswith("lease-"):
                self.controller_token = None

    def status(self) -> dict[str, Any]:
        return {"target": self.settings.target, "leased": self.leased, **self.counts}


__all__ = ["Agent", "AgentSettings", "Driver"]
