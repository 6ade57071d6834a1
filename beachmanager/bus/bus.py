"""A topic pub/sub facade over one host's extension frames.

Every bus message is ``(namespace, topic, payload bytes)``; on the wire it is an
Extension frame whose ``kind`` is the topic (reference ``wire-framing-and-bus.md``
§3.6, §4).  :class:`HostBus` is the manager's end for one host:

* ``subscribe(namespace, topic, handler)`` registers a handler for inbound frames;
* ``publish(namespace, topic, payload)`` sends one frame to the host.  Unlike the
  upstream ``UnifiedBus`` it does **not** deliver the message to local subscribers
  (that loopback made the upstream manager ingest its own actions);
* inbound frames for a namespace or topic nobody declared are warned about (once per
  namespace/topic) and counted in ``extension_dropped_total``;
* sent and received payload bytes are counted per topic; every frame is traced at
  debug level with its size and logical lane (never its payload).

The known namespaces and topics come from the manager's ``subscriber.py`` and
``publisher.py``; metric labels use a topic name only when it is known (``unknown``
otherwise), so a misbehaving host cannot blow up label cardinality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from ..telemetry.logs import fields

#: A sender returns True when the frame was handed to the transport.
Sender = Callable[[str, str, bytes], bool]


@dataclass(frozen=True)
class BusMessage:
    host_session_id: str
    namespace: str
    topic: str
    payload: bytes
    lane: str


Handler = Callable[[BusMessage], Any]


@dataclass(frozen=True)
class TopicTable:
    """Namespaces and topics this participant knows, with each topic's logical lane.

    All extension traffic rides the one ordered, reliable ``beach`` channel; the lane
    only says what kind of traffic it is (``control_ordered`` or ``state_unordered``).
    """

    topics: Mapping[str, Mapping[str, str]]  # namespace -> topic -> lane

    def knows_namespace(self, namespace: str) -> bool:
        return namespace in self.topics

    def lane(self, namespace: str, topic: str) -> str | None:
        return self.topics.get(namespace, {}).get(topic)

    def metric_topic(self, namespace: str, topic: str) -> tuple[str, str]:
        if namespace not in self.topics:
            return "unknown", "unknown"
        return namespace, topic if topic in self.topics[namespace] else "unknown"

    @classmethod
    def merge(cls, *tables: Mapping[str, Mapping[str, str]]) -> TopicTable:
        out: dict[str, dict[str, str]] = {}
        for table in tables:
            for ns, topics in table.items():
                out.setdefault(ns, {}).update(topics)
        return cls(out)


class Subscription:
    def __init__(self, bus: HostBus, key: tuple[str, str], handler: Handler):
        self._bus, self._key, self._handler = bus, key, handler

    def cancel(self) -> None:
        handlers = self._bus._handlers.get(self._key)
        if handlers and self._handler in handlers:
            handlers.remove(self._handler)


class HostBus:
    """The manager's bus end for one host; the transport attaches a sender when ready."""

    log = Logger()
    #: A debug line per frame in and out; off: at thousands of frames a second, building and
    #: filtering those events cost more than the bus itself (the counters and metrics stay).
    trace_frames = False

    def __init__(self, host_session_id: str, table: TopicTable, metrics=None,
                 manager_instance_id: str | None = None):
        self.host_session_id = host_session_id
        self.table = table
        self.metrics = metrics
        self.manager_instance_id = manager_instance_id
        self._sender: Sender | None = None
        self._handlers: dict[tuple[str, str], list[Handler]] = {}
        self._warned: set[tuple[str, str]] = set()
        self.sent_frames = 0
        self.sent_bytes = 0
        self.received_frames = 0
        self.received_bytes = 0
        self.dropped: dict[str, int] = {}
        #: (namespace, topic) -> the byte counters' children (``labels()`` is not free)
        self._sent_counter: dict[tuple[str, str], Any] = {}
        self._received_counter: dict[tuple[str, str], Any] = {}

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, sender: Sender) -> None:
        self._sender = sender

    def detach(self) -> None:
        self._sender = None

    @property
    def connected(self) -> bool:
        return self._sender is not None

    def subscribe(self, namespace: str, topic: str, handler: Handler) -> Subscription:
        self._handlers.setdefault((namespace, topic), []).append(handler)
        return Subscription(self, (namespace, topic), handler)

    # -- outbound ------------------------------------------------------------------------------
    def publish(self, namespace: str, topic: str, payload: bytes) -> bool:
        """Send one frame to the host; False (and counted as dropped) when it cannot go now."""
        if not isinstance(payload, bytes | bytearray):
            raise TypeError("bus payloads are bytes")
        lane = self.table.lane(namespace, topic) or "control_ordered"
        if self._sender is None:
            self.count_drop(namespace, topic, "not_connected")
            return False
        if not self._sender(namespace, topic, bytes(payload)):
            self.count_drop(namespace, topic, "backpressure")
            return False
        self.sent_frames += 1
        self.sent_bytes += len(payload)
        if self.metrics is not None:
            counter = self._sent_counter.get((namespace, topic))
            if counter is None:
                ns_l, topic_l = self.table.metric_topic(namespace, topic)
                counter = self.metrics.extension_sent_bytes_total.labels(namespace=ns_l,
                                                                        topic=topic_l)
                self._sent_counter[(namespace, topic)] = counter
            counter.inc(len(payload))
        if self.trace_frames:
            self.log.debug("bus frame out {namespace}/{topic}: {size} bytes, lane {lane}",
                           namespace=namespace, topic=topic, size=len(payload), lane=lane,
                           direction="out", **self._fields())
        return True

    # -- inbound -------------------------------------------------------------------------------
    def deliver(self, namespace: str, topic: str, payload: bytes) -> int:
        """Hand an inbound frame to its subscribers; returns how many handled it."""
        lane = self.table.lane(namespace, topic)
        self.received_frames += 1
        self.received_bytes += len(payload)
        if self.metrics is not None:
            counter = self._received_counter.get((namespace, topic)) if lane else None
            if counter is None:
                ns_l, topic_l = self.table.metric_topic(namespace, topic)
                counter = self.metrics.extension_received_bytes_total.labels(namespace=ns_l,
                                                                            topic=topic_l)
                if lane:  # known topics only: the map stays as small as the topic table
                    self._received_counter[(namespace, topic)] = counter
            counter.inc(len(payload))
        if self.trace_frames:
            self.log.debug("bus frame in {namespace}/{topic}: {size} bytes, lane {lane}",
                           namespace=namespace, topic=topic, size=len(payload),
                           lane=lane or "unknown", direction="in", **self._fields())
        if lane is None:
            reason = "unknown_topic" if self.table.knows_namespace(namespace) else "unknown_namespace"
            self.count_drop(namespace, topic, reason)
            if (namespace, topic) not in self._warned and len(self._warned) < 256:
                self._warned.add((namespace, topic))
                self.log.warn("bus: {reason} {namespace}/{topic} from the host ({size} bytes) "
                              "dropped; further ones are only counted", reason=reason.replace("_", " "),
                              namespace=namespace, topic=topic, size=len(payload), **self._fields())
            return 0
        handlers = list(self._handlers.get((namespace, topic), ()))
        if not handlers:
            self.count_drop(namespace, topic, "no_subscriber")
            return 0
        message = BusMessage(self.host_session_id, namespace, topic, bytes(payload), lane)
        handled = 0
        for handler in handlers:
            try:
                handler(message)
                handled += 1
            except Exception:
                self.count_drop(namespace, topic, "handler_error")
                self.log.failure("bus handler for {namespace}/{topic} failed", namespace=namespace,
                                 topic=topic, **self._fields())
        return handled

    # -- state ---------------------------------------------------------------------------------
    def count_drop(self, namespace: str, topic: str, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if self.metrics is not None:
            ns_l, topic_l = self.table.metric_topic(namespace, topic)
            self.metrics.extension_dropped_total.labels(namespace=ns_l, topic=topic_l,
                                                        reason=reason).inc()

    def _fields(self) -> dict[str, Any]:
        return fields(host_session_id=self.host_session_id,
                      manager_instance_id=self.manager_instance_id)

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected, "sent_frames": self.sent_frames,
                "sent_bytes": self.sent_bytes, "received_frames": self.received_frames,
                "received_bytes": self.received_bytes, "dropped": dict(self.dropped)}
