"""The ``/ws/{id}`` WebSocket endpoint: an autobahn protocol feeding :class:`Rooms`."""

from __future__ import annotations

from urllib.parse import unquote

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from .rooms import Connection, Rooms


def _addr(peer) -> str:
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)


@implementer(IPushProducer)
class _Flow:
    """Tracks whether the socket's send buffer is over Twisted's limit (the peer reads slowly)."""

    paused = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.paused = True


class RoadWebSocket(WebSocketServerProtocol):
    """One signaling socket.  Sends are bounded: once the transport's buffer is full, at most
    ``factory.max_backlog`` more bytes are queued before the socket is dropped."""

    log = Logger()
    factory: RoadWebSocketFactory
    conn: Connection | None = None
    remote_addr = ""
    _flow: _Flow | None = None
    _backlog = 0

    def onConnect(self, request):
        path = request.path.rstrip("/")
        path_id = unquote(path.rsplit("/", 1)[-1]) if path.startswith("/ws/") else ""
        self.remote_addr = _addr(self.transport.getPeer())
        self.conn = self.factory.rooms.connect(self, path_id)
        self.factory.open.add(self)
        return None

    def onOpen(self):
        self._flow = _Flow()
        if getattr(self.transport, "producer", None) is not None:
            self.transport.unregisterProducer()  # the HTTP channel's, left from the upgrade
        self.transport.registerProducer(self._flow, True)

    def onMessage(self, payload: bytes, isBinary: bool):
        if self.conn is None:
            return
        try:
            self.factory.rooms.receive(self.conn, payload if isBinary else payload.decode("utf-8"),
                                       binary=isBinary)
        except Exception:  # a bug must not kill the socket; log it and carry on
            self.log.failure("failed to handle a signaling message")

    def onClose(self, wasClean, code, reason):
        self.factory.open.discard(self)
        if self.conn is not None:
            self.factory.rooms.disconnect(self.conn)

    # Link
    def send(self, text: str) -> None:
        if self.state != self.STATE_OPEN:
            return
        data = text.encode("utf-8")
        if self._flow is not None and self._flow.paused:
            self._backlog += len(data)
            if self._backlog > self.factory.max_backlog:
                self.log.warn("dropping signaling peer {addr}: {n} bytes unread", addr=self.remote_addr,
                              n=self._backlog)
                self.dropConnection(abort=True)
                return
        else:
            self._backlog = 0
        self.sendMessage(data, isBinary=False)


class RoadWebSocketFactory(WebSocketServerFactory):
    # autobahn's factory is Twisted's Factory[P] at its default P, so a protocol whose
    # ``factory`` is this subclass cannot be named without an ignore (autobahn typing gap)
    protocol = RoadWebSocket  # type: ignore[assignment]

    def __init__(self, rooms: Rooms, max_message_bytes: int, reactor=None, max_backlog: int = 4 * 1024 * 1024):
        super().__init__(reactor=reactor)
        self.rooms = rooms
        self.max_backlog = max_backlog
        self.open: set[RoadWebSocket] = set()
        self.setProtocolOptions(maxMessagePayloadSize=max_message_bytes, maxFramePayloadSize=max_message_bytes)

    def close_all(self) -> None:
        for proto in list(self.open):
            proto.dropConnection(abort=True)
