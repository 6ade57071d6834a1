"""The host's in-process bus: topics in, topics out, over every ready peer.

* A peer's inbound ``Extension`` frame is delivered to local subscribers of its
  topic (the frame's ``kind``), with the namespace and the peer id recorded.
* :meth:`LocalBus.publish` delivers to local subscribers (as upstream's bus does)
  and sends an ``Extension`` frame in namespace ``manager`` to every attached peer;
  :meth:`LocalBus.send_to` sends to one peer only (a heartbeat answer).
* Handlers get ``(topic, payload, peer_id)``; ``peer_id`` is None for local publishes.
  Listeners of :meth:`LocalBus.on_detach` hear when a peer's transport goes.
* :meth:`LocalBus.restrict_to` is the namespace ACL: published frames reach only the peers
  the harness accepts as its managers.

The host does not interpret topics; the harness subscribes to what it consumes.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from ...protocol.extensions import NAMESPACE
from ...protocol.frames import Extension

Handler = Callable[[str, bytes, str | None], None]


class LocalBus:
    log = Logger()

    def __init__(self, namespace: str = NAMESPACE):
        self.namespace = namespace
        self._handlers: dict[str, list[Handler]] = {}
        self._sinks: dict[str, Callable[[Extension], None]] = {}
        self._detach_listeners: list[Callable[[str], None]] = []
        #: who may receive published frames (None: every peer); see :meth:`restrict_to`
        self._audience: Callable[[], set[str] | None] = lambda: None
        self.withheld = 0
        self.delivered = 0
        self.unrouted = 0
        self.sent = 0

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers.setdefault(topic, []).append(handler)

        def unsubscribe() -> None:
            handlers = self._handlers.get(topic, [])
            if handler in handlers:
                handlers.remove(handler)

        return unsubscribe

    def attach(self, peer_id: str, send: Callable[[Extension], None]) -> None:
        """Send published topics to this peer from now on."""
        self._sinks[peer_id] = send

    def detach(self, peer_id: str) -> None:
        if self._sinks.pop(peer_id, None) is None:
            return
        for listener in list(self._detach_listeners):
            try:
                listener(peer_id)
            except Exception:
                self.log.failure("peer-detach listener failed")

    def on_detach(self, listener: Callable[[str], None]) -> None:
        self._detach_listeners.append(listener)

    def restrict_to(self, audience: Callable[[], set[str] | None]) -> None:
        """Namespace ACL: published frames go only to the peers *audience* names (the harness
        names its managers; viewers never receive ``manager`` frames).  None lets every peer
        have them (no manager has associated yet: hosts stay compatible with managers that
        never do).  Withheld sends are counted."""
        self._audience = audience

    @property
    def peers(self) -> list[str]:
        return list(self._sinks)

    def _local(self, topic: str, payload: bytes, peer_id: str | None = None) -> None:
        handlers = self._handlers.get(topic)
        if not handlers:
            self.unrouted += 1
            return
        for handler in list(handlers):
            self.delivered += 1
            try:
                handler(topic, payload, peer_id)
            except Exception:
                self.log.failure("bus handler for {topic} failed", topic=topic)

    def publish(self, topic: str, payload: bytes) -> None:
        frame = Extension(self.namespace, topic, payload)
        audience = self._audience()
        for peer_id, send in list(self._sinks.items()):
            if audience is not None and peer_id not in audience:
                self.withheld += 1
                continue
            try:
                send(frame)
                self.sent += 1
            except Exception as e:
                self.log.warn("cannot send {topic} to peer {peer}: {error}", topic=topic, peer=peer_id, error=str(e))
        self._local(topic, payload)

    def send_to(self, peer_id: str, topic: str, payload: bytes) -> bool:
        """Send one frame to one peer (not to local subscribers); False if it is not here."""
        send = self._sinks.get(peer_id)
        if send is None:
            return False
        try:
            send(Extension(self.namespace, topic, payload))
        except Exception as e:
            self.log.warn("cannot send {topic} to peer {peer}: {error}", topic=topic, peer=peer_id,
                          error=str(e))
            return False
        self.sent += 1
        return True

    def from_peer(self, peer_id: str, frame: Extension) -> None:
        """An Extension frame a peer sent."""
        self.log.debug("extension {namespace}/{topic} ({size} bytes) from {peer}", namespace=frame.namespace,
                       topic=frame.kind, size=len(frame.payload), peer=peer_id)
        self._local(frame.kind, frame.payload, peer_id)
