"""What the manager publishes on the bus (namespace ``manager``).

Topics published:

* ``beach.manager.action`` -- action envelopes ``{"type": "action", "payload": ActionCommand}``
  for the host's harness (lane ``control_ordered``), stamped with the host's ownership epoch;
* ``beach.manager.association`` -- the active manager and its epoch (fencing), sent when the
  active session becomes ready or a standby is promoted.

Frames go out as client-layout Extension frames (``0x44``) on the host's ``beach`` channel,
never to local subscribers.  Whether a host is ready is the session stream's answer
(:class:`~beachmanager.transport.events.SessionEvents`, the active session only; a standby
never delivers).  Publishing to a host whose transport is not ready returns False
(counted as dropped ``not_connected``); the controller keeps the action and retries when
the transport is back.
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

    def is_ready(self, host_session_id: str) -> bool:
        return self._events.is_ready(host_session_id)

    def publish_action(self, host_session_id: str, payload: bytes) -> bool:
        """Send an already encoded action envelope; False when it cannot go now."""
        bus = self._bus_for(host_session_id)
        if bus is None:
            return False
        return bus.publish(NAMESPACE, TOPIC_ACTION, payload)

    def publish_command(self, host_session_id: str, command: harness.ActionCommand) -> bool:
        return self.publish_action(host_session_id,
                                   harness.to_json(harness.Envelope.wrap(command)))
