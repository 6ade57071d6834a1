"""The ``/ws/{id}`` WebSocket endpoint: an autobahn protocol feeding :class:`Rooms`."""

from __future__ import annotations

from urllib.parse import unquote

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.logger import Logger

from .rooms import Connection, Rooms


def _addr(peer) -> str:
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)


class RoadWebSocket(WebSocketServerProtocol):
    log = Logger()
    factory: RoadWebSocketFactory
    conn: Connection | None = None
    remote_addr = ""

    def onConnect(self, request):
        path = request.path.rstrip("/")
        path_id = unquote(path.rsplit("/", 1)[-1]) if path.startswith("/ws/") else ""
        self.remote_addr = _addr(self.transport.getPeer())
        self.conn = self.factory.rooms.connect(self, path_id)
        self.factory.open.add(self)
        return None

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
        if self.state == self.STATE_OPEN:
            self.sendMessage(text.encode("utf-8"), isBinary=False)


class RoadWebSocketFactory(WebSocketServerFactory):
    protocol = RoadWebSocket

    def __init__(self, rooms: Rooms, max_message_bytes: int, reactor=None):
        super().__init__(reactor=reactor)
        self.rooms = rooms
        self.open: set[RoadWebSocket] = set()
        self.setProtocolOptions(maxMessagePayloadSize=max_message_bytes, maxFramePayloadSize=max_message_bytes)

    def close_all(self) -> None:
        for proto in list(self.open):
            proto.dropConnection(abort=True)
