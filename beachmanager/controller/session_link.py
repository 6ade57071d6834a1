"""Wires the controller to the manager's bus and session stream.  Nothing polls.

* acks, states and health from :class:`~beachmanager.bus.subscriber.ManagerSubscriber`
  go to :class:`~.ingest.Ingest`;
* every change of an active session on the stream
  (:class:`~beachmanager.transport.events.SessionEvents`) reaches the delivery engine as it
  happens: a lane opens when its host is ready (the session has attached its bus sender
  by then, so a backlog goes out at once) and closes when the transport is gone;
* a host no longer managed here loses its lane and its per-host state: its entries stay in
  the queue for the next owner (or for this instance, which re-reads them if the host
  comes back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from ..transport.events import Role, SessionChange, SessionEvents

if TYPE_CHECKING:
    from ..bus.subscriber import ManagerSubscriber
    from .delivery import DeliveryEngine
    from .ingest import Ingest

NOT_ATTACHED = "not_attached"
OFFLINE = "offline"
READY = "ready"


class SessionLink:
    log = Logger()

    def __init__(self, engine: DeliveryEngine, ingest: Ingest, subscriber: ManagerSubscriber | None,
                 events: SessionEvents):
        self.engine, self.ingest = engine, ingest
        self.subscriber = subscriber
        self.events = events
        self._undo: list[Callable[[], None]] = []

    def start(self) -> None:
        if self.subscriber is not None:
            self._undo = [self.subscriber.on("ack", self.ingest.ack_value),
                          self.subscriber.on("state", self.ingest.state_value),
                          self.subscriber.on("health", self.ingest.health_value)]
        self._undo.append(self.events.subscribe(self.changed, replay=True))

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []

    def changed(self, change: SessionChange) -> None:
        host = change.host_session_id
        if change.role is not Role.ACTIVE:  # a standby never delivers
            if change.role_changed:  # stepped down: its lane closes, its actions wait
                self.engine.transport_changed(host, False)
            return
        if change.removed:
            self.engine.forget_host(host)
            self.ingest.forget(host)
        elif change.readiness_changed or change.old is None or change.role_changed:
            self.engine.transport_changed(host, change.ready)  # (a promoted standby: at once)

    def transport_state(self, host: str) -> str:
        """``ready``, ``offline`` (its active session is here, transport down) or
        ``not_attached`` (no active session here: none, or only a standby)."""
        change = self.events.latest(host)
        if change is None or change.role is not Role.ACTIVE:
            return NOT_ATTACHED
        return READY if change.ready else OFFLINE

    def delivers(self, host: str) -> bool:
        """Whether this instance holds the host's active session (and so delivers to it)."""
        change = self.events.latest(host)
        return change is not None and change.role is Role.ACTIVE
