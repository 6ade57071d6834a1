"""A minimal Road WebSocket peer for tests: connect, send messages, await the next one."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor

from beachmanager.protocol import signaling as sig


class _Proto(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.peer._opened(self)

    def onMessage(self, payload, isBinary):
        self.factory.peer._received(payload.decode("utf-8"))

    def onClose(self, wasClean, code, reason):
        self.factory.peer._closed()


class WsPeer:
    """``peer = await WsPeer.connect(url)``; ``await peer.next()`` gives decoded server messages."""

    def __init__(self, url: str):
        self.url = url
        self.proto: _Proto | None = None
        self.inbox: deque[str] = deque()
        self._waiters: deque[defer.Deferred] = deque()
        self._open = defer.Deferred()
        self.closed = defer.Deferred()

    @classmethod
    async def connect(cls, url: str, timeout: float = 5.0) -> WsPeer:
        peer = cls(url)
        factory = WebSocketClientFactory(url)
        factory.protocol = _Proto
        factory.peer = peer
        connectWS(factory)
        peer._open.addTimeout(timeout, reactor)
        await peer._open
        return peer

    def _opened(self, proto):
        self.proto = proto
        self._open.callback(self)

    def _received(self, text: str):
        if self._waiters:
            self._waiters.popleft().callback(text)
        else:
            self.inbox.append(text)

    def _closed(self):
        if not self._open.called:
            self._open.errback(ConnectionError(f"cannot connect to {self.url}"))
        waiters, self._waiters = list(self._waiters), deque()
        for d in waiters:
            d.errback(ConnectionError("websocket closed"))
        if not self.closed.called:
            self.closed.callback(None)

    def send_raw(self, text: str | bytes, binary: bool = False) -> None:
        self.proto.sendMessage(text.encode() if isinstance(text, str) else text, isBinary=binary)

    def send(self, msg: sig.ClientMessage) -> None:
        self.send_raw(sig.encode_client(msg))

    def send_json(self, obj: Any) -> None:
        self.send_raw(json.dumps(obj))

    async def next_text(self, timeout: float = 5.0) -> str:
        if self.inbox:
            return self.inbox.popleft()
        d = defer.Deferred()
        self._waiters.append(d)
        d.addTimeout(timeout, reactor)
        try:
            return await d
        except defer.TimeoutError:
            if d in self._waiters:
                self._waiters.remove(d)
            raise

    async def next(self, timeout: float = 5.0) -> sig.ServerMessage:
        return sig.decode_server(await self.next_text(timeout))

    async def next_of(self, kind: type, timeout: float = 5.0) -> Any:
        """Skip messages until one of *kind* arrives."""
        while True:
            msg = await self.next(timeout)
            if isinstance(msg, kind):
                return msg

    async def expect_silence(self, seconds: float = 0.3) -> None:
        try:
            text = await self.next_text(seconds)
        except defer.TimeoutError:
            return
        raise AssertionError(f"unexpected message: {text}")

    async def join(self, passphrase: str | None, label: str | None = None, **kw: Any) -> sig.ServerMessage:
        self.send(sig.Join(peer_id="ignored", passphrase=passphrase, label=label, **kw))
        return await self.next()

    async def close(self) -> None:
        if self.proto is not None and not self.closed.called:
            self.proto.sendClose()
            self.closed.addTimeout(5, reactor)
            try:
                await self.closed
            except defer.TimeoutError:
                self.proto.dropConnection(abort=True)
