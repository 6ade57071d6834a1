"""What the harness publishes on the bus, and when.

Topics produced (namespace ``manager``):

* ``beach.manager.ack``    -- one :class:`ActionAck` per handled action (and again for a replay);
* ``beach.manager.state``  -- :class:`StateDiff` with a ``terminal_full`` payload, ``sequence``
  from 1, at most once per ``state_interval`` (100 ms) while the screen changes;
* ``beach.manager.health`` -- :class:`HealthHeartbeat` every ``health_interval`` (5 s), the
  first at start.  With an idle-snapshot hint (from the association), a state goes out with
  the health when none has for that long (an idle screen still refreshes managers' mirrors).

Every payload is the JSON envelope ``{"type": "ack"|"state"|"health", "payload": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..protocol import harness as hj
from ..protocol.extensions import TOPIC_ACK, TOPIC_HEALTH, TOPIC_STATE

TOPICS = (TOPIC_ACK, TOPIC_STATE, TOPIC_HEALTH)

DEFAULT_STATE_INTERVAL = 0.1
DEFAULT_HEALTH_INTERVAL = 5.0


class Bus(Protocol):
    def publish(self, topic: str, payload: bytes) -> None: ...


class Publisher:
    log = Logger()

    def __init__(self, bus: Bus, clock, *, state: Callable[[], Any], health: Callable[[], hj.HealthHeartbeat],
                 state_interval: float = DEFAULT_STATE_INTERVAL, health_interval: float = DEFAULT_HEALTH_INTERVAL):
        self.bus = bus
        self.clock = clock
        self._state = state
        self._health = health
        self.state_interval = state_interval
        self.health_interval = health_interval
        self.state_sequence = 0
        #: seconds of idle screen after which a full state is sent anyway (None: never)
        self.idle_snapshot_interval: float | None = None
        self._last_state_at: float | None = None
        self._state_call = None
        self._health_loop: LoopingCall | None = None
        self.published: dict[str, int] = dict.fromkeys(TOPICS, 0)

    def _publish(self, topic: str, value: Any) -> None:
        self.bus.publish(topic, hj.to_json(hj.Envelope.wrap(value)))
        self.published[topic] += 1

    # -- acks ---------------------------------------------------------------------------------
    def ack(self, ack: hj.ActionAck) -> None:
        self._publish(TOPIC_ACK, ack)

    # -- state -----------------------------------------------------------------------------------
    def screen_changed(self) -> None:
        """Emit a state now, or once the interval since the last one has passed."""
        if self._state_call is not None and self._state_call.active():
            return
        now = self.clock.seconds()
        wait = 0.0 if self._last_state_at is None else self._last_state_at + self.state_interval - now
        if wait <= 0:
            self._emit_state()
        else:
            self._state_call = self.clock.callLater(wait, self._emit_state)

    def _emit_state(self) -> None:
        self._state_call = None
        self._last_state_at = self.clock.seconds()
        self.state_sequence += 1
        try:
            payload = self._state()
            self._publish(TOPIC_STATE, hj.StateDiff(sequence=self.state_sequence,
                                                     emitted_at=hj.Timestamp.now(self.clock.seconds),
                                                     payload=payload))
        except Exception:
            self.log.failure("cannot publish state")

    # -- health -------------------------------------------------------------------------------------
    def _emit_health(self) -> None:
        try:
            self._publish(TOPIC_HEALTH, self._health())
        except Exception:
            self.log.failure("cannot publish health")
        idle, last = self.idle_snapshot_interval, self._last_state_at
        if idle and last is not None and self.clock.seconds() - last >= idle:
            self.screen_changed()

    def start(self) -> None:
        self._health_loop = LoopingCall(self._emit_health)
        self._health_loop.clock = self.clock
        self._health_loop.start(self.health_interval, now=True).addErrback(
            lambda f: self.log.failure("health loop stopped", failure=f))

    def stop(self) -> None:
        if self._health_loop is not None and self._health_loop.running:
            self._health_loop.stop()
        if self._state_call is not None and self._state_call.active():
            self._state_call.cancel()
        self._state_call = None
