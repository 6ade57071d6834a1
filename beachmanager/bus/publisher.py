"""What the manager publishes on the bus (namespace ``manager``).

Topics published:

* ``beach.manager.action`` -- action envelopes ``{"type": "action", "payload": ActionCommand}``
  for the host's harness (lane ``control_ordered``), stamped with the host's ownership epoch;
* ``beach.manager.association`` -- the signed association (who manages the host, at which
  epoch, its private beach, a bridge token...), sent by :mod:`.association` when the active
  session becomes ready or is promoted and when any of it changes; the harness's renewal
  requests come back on the same topic.

Frames go out as client-layout Extension frames (``0x44``) on the host's ``beach`` channel,
never to local subscribers.  Whether a host is ready is the session stream's answer
(:class:`~beachmanager.transport.events.SessionEvents`, the active session only; a standby
never delivers).  Publishing to a host whose transport is not ready returns False
(counted as dropped ``not_connected``); the controller keeps the action and retries when
the transport is back.  Nothing is sent while this instance's ownership lease may have
expired (:meth:`ManagerPublisher.deliver_only_while`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol import harness
from ..protocol.extensions import NAMESPACE, TOPIC_ACTION, TOPIC_ASSOCIATION
from .bus import HostBus

if TYPE_CHECKING:
    from ..transport.events import SessionEvents

#: namespace -> topic -> logical lane
PUBLISHES = {NAMESPACE: {TOPIC_ACTION: "control_ordered", TOPIC_ASSOCIATION: "control_ordered"}}


class ManagerPublisher:
    """Publishes to one host's bus by host session id."""

    def __init__(self, bus_for: Callable[[str], HostBus | None], events: SessionEvents):
        self._bus_for = bus_for
        self._events = events
        #: host -> called once, after the next action delivered to it (failover timing)
        self._next_delivery: dict[str, Callable[[], None]] = {}
        self._may_deliver: Callable[[], bool] = lambda: True
        self.held_back = 0

    def deliver_only_while(self, condition: Callable[[], bool]) -> None:
        """Refuse every action send while *condition* is false (the owner's lease: a manager
        that may have lost its hosts delivers nothing; the controller retries later)."""
        self._may_deliver = condition

    def on_next_delivery(self, host_session_id: str, fn: Callable[[], None]) -> None:
        self._next_delivery[host_session_id] = fn

    def forget(self, host_session_id: str) -> None:
        self._next_delivery.pop(host_session_id, None)

    def is_ready(self, host_session_id: str) -> bool:
        return self._events.is_ready(host_session_id)

    def publish_action(self, host_session_id: str, payload: bytes) -> bool:
        """Send an already encoded action envelope; False when it cannot go now."""
        bus = self._bus_for(host_session_id)
        if bus is None:
            return False
        if not self._may_deliver():
            self.held_back += 1
            return False
        sent = bus.publish(NAMESPACE, TOPIC_ACTION, payload)
        if sent and self._next_delivery:
            fn = self._next_delivery.pop(host_session_id, None)
            if fn is not None:
                fn()
        return sent

    def publish_command(self, host_session_id: str, command: harness.ActionCommand) -> bool:
        return self.publish_action(host_session_id,
                                   harness.to_json(harness.Envelope.wrap(command)))
