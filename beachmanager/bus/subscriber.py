"""What the manager consumes from the bus (namespace ``manager``).

Topics consumed, each an envelope ``{"type", "payload"}`` from the host's harness:

* ``beach.manager.ack``    -- ``ActionAck`` (lane ``control_ordered``);
* ``beach.manager.state``  -- ``StateDiff``, e.g. a ``terminal_full`` payload (``state_unordered``);
* ``beach.manager.health`` -- ``HealthHeartbeat`` (``state_unordered``).

The intermediate-generation names ``controller/ack``, ``state/host`` and ``state/health`` are
accepted as aliases (:mod:`beachmanager.protocol.legacy_topics`, the one shim).  An envelope that does not parse, or whose ``type`` does not match its
topic, is dropped, counted (``extension_dropped_total{reason="bad_envelope"|"type_mismatch"}``)
and warned about once per host and topic.  Listeners (the controller, debug views) register
with :meth:`ManagerSubscriber.on`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ..protocol import harness
from ..protocol.extensions import NAMESPACE, TOPIC_ACK, TOPIC_HEALTH, TOPIC_STATE
from ..protocol.legacy_topics import MANAGER_INBOUND, canonical
from ..telemetry.logs import fields
from .bus import BusMessage, HostBus, Subscription

#: namespace -> topic -> logical lane
_LANES = {TOPIC_ACK: "control_ordered", TOPIC_STATE: "state_unordered",
          TOPIC_HEALTH: "state_unordered"}
SUBSCRIBES = {NAMESPACE: {topic: _LANES[canonical(topic)]
                          for topic in (*_LANES, *MANAGER_INBOUND)}}
#: topic -> envelope type
KIND_OF = {topic: {TOPIC_ACK: harness.ACK, TOPIC_STATE: harness.STATE,
                   TOPIC_HEALTH: harness.HEALTH}[canonical(topic)]
           for topic in SUBSCRIBES[NAMESPACE]}

Listener = Callable[[str, Any], Any]


class ManagerSubscriber:
    """Parses the host topics and fans them out to listeners: ``fn(host_session_id, value)``."""

    log = Logger()

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {harness.ACK: [], harness.STATE: [],
                                                      harness.HEALTH: []}
        self._warned: set[tuple[str, str, str]] = set()
        #: host -> the latest state sequence / health seen (for debug views).
        self.latest: dict[str, dict[str, Any]] = {}

    def on(self, kind: str, listener: Listener) -> Callable[[], None]:
        """Call *listener* for every ``ack``, ``state`` or ``health``; returns an unsubscribe."""
        self._listeners[kind].append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners[kind]:
                self._listeners[kind].remove(listener)

        return unsubscribe

    def attach(self, bus: HostBus) -> list[Subscription]:
        def handle(m: BusMessage) -> None:
            self._handle(bus, m)

        return [bus.subscribe(ns, topic, handle) for ns, topics in SUBSCRIBES.items() for topic in topics]

    def forget(self, host_session_id: str) -> None:
        self.latest.pop(host_session_id, None)

    def _handle(self, bus: HostBus, m: BusMessage) -> None:
        kind = KIND_OF[m.topic]
        try:
            env = harness.from_json(m.payload)
        except harness.HarnessError as e:
            self._reject(bus, m, "bad_envelope", str(e))
            return
        if env.type != kind:
            self._reject(bus, m, "type_mismatch", f"envelope type {env.type!r} on {m.topic}")
            return
        value = env.payload
        seen = self.latest.setdefault(m.host_session_id, {})
        if kind == harness.STATE:
            seen["state_sequence"] = value.sequence
        elif kind == harness.HEALTH:
            seen["health"] = {"queue_depth": value.queue_depth, "degraded": value.degraded,
                              "warnings": list(value.warnings)[:8]}
        else:
            seen["acks"] = seen.get("acks", 0) + 1
        for listener in list(self._listeners[kind]):
            try:
                listener(m.host_session_id, value)
            except Exception:
                self.log.failure("bus {kind} listener failed", kind=kind,
                                 **fields(host_session_id=m.host_session_id))

    def _reject(self, bus: HostBus, m: BusMessage, reason: str, detail: str) -> None:
        bus.count_drop(m.namespace, m.topic, reason)
        key = (m.host_session_id, m.topic, reason)
        if key not in self._warned and len(self._warned) < 4096:
            self._warned.add(key)
            self.log.warn("bus: dropping {topic} from the host: {detail}", topic=m.topic,
                          detail=detail, **fields(host_session_id=m.host_session_id))
