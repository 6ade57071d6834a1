"""The Python beach-buggy: a terminal harness on the host's in-process bus.

Wires :class:`~.subscriber.ActionSubscriber` (actions in, PTY writes) and
:class:`~.publisher.Publisher` (acks, state, health out) to a bus and a terminal.
The host knows nothing of managers: it hands the harness a bus with
``subscribe(topic, handler(topic, payload, peer))`` / ``publish(topic, payload)`` /
``send_to(peer, topic, payload)`` / ``on_detach(fn(peer))`` and a terminal; the harness
calls :meth:`Harness.screen_changed` throttling into state messages.  It answers each
manager's bus heartbeat (:mod:`beachmanager.protocol.liveness`) on that manager's transport
only, saying which manager it takes as active and how long that one has been silent.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol import harness as hj
from ..protocol import liveness
from ..protocol.extensions import TOPIC_ASSOCIATION, TOPIC_HEARTBEAT
from .agent import Agent, AgentSettings, Driver
from .association import AssociationKeeper
from .publisher import DEFAULT_HEALTH_INTERVAL, DEFAULT_STATE_INTERVAL, Publisher
from .subscriber import DEFAULT_DEDUP_SIZE, DEFAULT_MAX_QUEUE, TOPICS, ActionSubscriber


class Bus(Protocol):
    def subscribe(self, topic: str,
                  handler: Callable[[str, bytes, str | None], None]) -> Callable[[], None]: ...

    def publish(self, topic: str, payload: bytes) -> None: ...

    def send_to(self, peer_id: str, topic: str, payload: bytes) -> bool: ...

    def on_detach(self, listener: Callable[[str], None]) -> None: ...

    def restrict_to(self, audience: Callable[[], set[str] | None]) -> None: ...


class Terminal(Protocol):
    @property
    def alive(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def terminal_full(self) -> dict[str, Any]: ...


def _rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class Harness:
    def __init__(self, bus: Bus, terminal: Terminal, clock, *, state_interval: float = DEFAULT_STATE_INTERVAL,
                 health_interval: float = DEFAULT_HEALTH_INTERVAL, dedup_size: int = DEFAULT_DEDUP_SIZE,
                 max_queue: int = DEFAULT_MAX_QUEUE, drop_first_acks: int = 0,
                 agent: AgentSettings | None = None, driver: Driver | None = None,
                 agent_events: Callable[[dict[str, Any]], None] | None = None,
                 authority: bytes | None = None, host_session_id: str | None = None):
        """*authority*: the manager cluster's public key to trust (None: the first that signs
        a valid association); *host_session_id*: this host's, which associations must name."""
        self.bus = bus
        self.terminal = terminal
        self.clock = clock
        self.publisher = Publisher(bus, clock, state=terminal.terminal_full, health=self.health,
                                   state_interval=state_interval, health_interval=health_interval)
        self.acks_to_drop = drop_first_acks  # fault injection (tests): acks lost on the wire
        self.subscriber = ActionSubscriber(clock, write=terminal.write, ack=self._ack,
                                           dedup_size=dedup_size, max_queue=max_queue)
        self.watch = liveness.ActiveWatch()
        self.association = AssociationKeeper(clock, self.subscriber.fence, bus.send_to,
                                             authority=authority, host_session_id=host_session_id,
                                             on_association=self._associated)
        #: agent mode: this host drives another one through its manager (``harness/agent.py``)
        self.agent = (Agent(bus, clock, self.subscriber.fence, agent, driver, agent_events,
                            bridge_token=lambda: self.association.bridge_token)
                      if agent is not None and driver is not None else None)
        self._unsubscribe: list[Callable[[], None]] = []
        self._rejects_reported = 0
        self.started = False
        bus.on_detach(self._peer_gone)
        bus.restrict_to(self._audience)

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._unsubscribe = [self.bus.subscribe(topic, self.subscriber.handle) for topic in TOPICS]
        self._unsubscribe.append(self.bus.subscribe(TOPIC_ASSOCIATION, self.association.handle))
        self._unsubscribe.append(self.bus.subscribe(TOPIC_HEARTBEAT, self._heartbeat))
        self.publisher.start()
        if self.agent is not None:
            self.agent.start()

    def stop(self) -> None:
        self.started = False
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe = []
        self.publisher.stop()
        self.subscriber.stop()
        self.association.stop()
        if self.agent is not None:
            self.agent.stop()

    def _ack(self, ack: hj.ActionAck) -> None:
        if self.acks_to_drop > 0 and ack.status is hj.AckStatus.OK:
            self.acks_to_drop -= 1
            return
        self.publisher.ack(ack)

    def _associated(self, a) -> None:
        if a.idle_snapshot_interval_ms:
            self.publisher.idle_snapshot_interval = a.idle_snapshot_interval_ms / 1000

    def _heartbeat(self, topic: str, payload: bytes, peer: str | None) -> None:
        if peer is None or liveness.kind_of(payload) != liveness.PING:
            return  # our own answers (a local publish) or another manager's: not for us
        try:
            ping = liveness.read_ping(payload)
        except liveness.LivenessError as e:
            self.subscriber.unparsable += 1
            self.subscriber.log.warn("dropping an unparsable heartbeat: {error}", error=str(e))
            return
        fence = self.subscriber.fence
        if ping.role == "active" and ping.manager_instance_id == fence.manager \
                and ping.epoch >= fence.epoch:
            fence.peer = peer  # the active manager's transport (after a redo, its new one)
        newcomer = peer not in self.watch.roles
        pong = self.watch.answer(ping, peer, self.clock.seconds(), active=fence.manager,
                                 epoch=fence.epoch)
        if newcomer:
            self.screen_changed()  # a fresh state for a manager it now sends to
        self.bus.send_to(peer, TOPIC_HEARTBEAT, pong.to_json())

    def _audience(self) -> set[str] | None:
        """Who receives this harness's frames: the active manager's transport and the peers
        that ping as managers (standbys); everyone until a manager has associated."""
        fence = self.subscriber.fence
        if fence.manager is None:
            return None
        peers = self.watch.manager_peers()
        if fence.peer is not None:
            peers.add(fence.peer)
        return peers

    def _peer_gone(self, peer: str) -> None:
        self.watch.forget(peer)
        self.subscriber.fence.forget_peer(peer)

    def screen_changed(self) -> None:
        if self.started:
            self.publisher.screen_changed()

    def health(self) -> hj.HealthHeartbeat:
        warnings = []
        depth = self.subscriber.queue_depth
        if not self.terminal.alive:
            warnings.append("terminal program is not running")
        if depth >= self.subscriber.max_queue * 3 // 4:
            warnings.append(f"action queue at {depth}/{self.subscriber.max_queue}")
        rejects = self.subscriber.queue_full_rejects - self._rejects_reported
        self._rejects_reported = self.subscriber.queue_full_rejects
        if rejects:
            warnings.append(f"{rejects} actions rejected on a full queue since the last report")
        return hj.HealthHeartbeat(queue_depth=depth, cpu_load=None, memory_bytes=_rss_bytes(),
                                  degraded=bool(warnings), warnings=tuple(warnings))

    def status(self) -> dict[str, Any]:
        return {**self.subscriber.status(), "state_sequence": self.publisher.state_sequence,
                "heartbeats_answered": self.watch.pings, "active_peer": self.watch.active_peer,
                "association": self.association.status(),
                **({"agent": self.agent.status()} if self.agent is not None else {}),
                "published": dict(self.publisher.published)}
