"""Wires the controller to the manager's bus and transports.

* acks, states and health from :class:`~beachmanager.bus.subscriber.ManagerSubscriber`
  go to :class:`~.ingest.Ingest`;
* the delivery engine publishes through :class:`~beachmanager.bus.publisher.ManagerPublisher`;
* transport transitions reported by ``on_transport_change`` reach the engine at once;
  readiness is also sampled every ``interval`` seconds for every managed host
  (``host_ids()``), as a safety net; a host no longer managed here keeps its lane
  down (its actions wait, bounded by the queue).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

NOT_ATTACHED = "not_attached"
OFFLINE = "offline"
READY = "ready"


class BusLink:
    log = Logger()

    def __init__(self, engine, ingest, publisher, subscriber, host_ids: Callable[[], Iterable[str]],
                 clock: IReactorTime, interval: float = 0.25, on_transport_change=None):
        self.engine, self.ingest = engine, ingest
        self.publisher, self.subscriber = publisher, subscriber
        self.host_ids = host_ids
        self.clock = clock
        self._poll = LoopingCall(self.sample)
        self._poll.clock = clock
        self.interval = interval
        self._unsubscribe: list[Callable[[], None]] = []
        self._on_change = on_transport_change

    def start(self) -> None:
        if self.subscriber is not None:
            self._unsubscribe = [self.subscriber.on("ack", self.ingest.ack_value),
                                 self.subscriber.on("state", self.ingest.state_value),
                                 self.subscriber.on("health", self.ingest.health_value)]
        if self._on_change is not None:
            self._unsubscribe.append(self._on_change(self.engine.transport_changed))
        self.sample()
        self._poll.start(self.interval, now=False)

    def stop(self) -> None:
        if self._poll.running:
            self._poll.stop()
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe = []

    def sample(self) -> None:
        managed = set(self.host_ids())
        for host in managed:
            self.engine.transport_changed(host, self.publisher.is_ready(host))
        for host, lane in list(self.engine.lanes.items()):
            if host not in managed:
                if lane.waiting or lane.inflight:
                    self.engine.transport_changed(host, False)  # its actions wait for it
                else:
                    self.engine.forget_host(host)  # nothing held: no lane for a departed host

    def transport_state(self, host: str) -> str:
        """``ready``, ``offline`` (managed, transport down) or ``not_attached``."""
        if host not in self.host_ids():  # per request: no copy of the host list
            return NOT_ATTACHED
        return READY if self.publisher.is_ready(host) else OFFLINE
