"""A server-sent-events reader over a plain TCP connection (HTTP/1.0, so no chunking), for
tests of ``/ui/stream``: ``reader = await SseReader.open(base, path, token)``; ``status``,
``headers``, ``frames`` (``(event, data)``, data parsed as JSON); ``close()``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from tests.support.eventually import eventually


class _Stream(Protocol):
    def __init__(self, request: bytes):
        self.request = request
        self.buffer = b""
        self.raw = b""
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.frames: list[tuple[str, Any]] = []
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    @property
    def body(self) -> bytes:
        """The raw body (when it is no event stream, the error JSON)."""
        return self.raw.split(b"\r\n\r\n", 1)[-1]

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.buffer += data
        if self.status is None:
            if b"\r\n\r\n" not in self.buffer:
                return
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            self.status = int(lines[0].split()[1])
            for line in lines[1:]:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            event, data = None, None
            for line in block.decode("utf-8").split("\n"):
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
            if event is not None:
                self.frames.append((event, data))

    def connectionLost(self, reason=None) -> None:
        if not self.ended.called:
            self.ended.callback(None)


class SseReader:
    def __init__(self, proto: _Stream):
        self.proto = proto

    @classmethod
    async def open(cls, base: str, path: str, token: str | None = None) -> SseReader:
        url = urlsplit(base)
        headers = f"Host: {url.netloc}\r\nAccept: text/event-stream\r\n"
        if token is not None:
            headers += f"Authorization: Bearer {token}\r\n"
        proto = _Stream(f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode())
        endpoint = TCP4ClientEndpoint(reactor, url.hostname, url.port)
        await connectProtocol(endpoint, proto)
        reader = cls(proto)
        await eventually(lambda: proto.status is not None or proto.ended.called, timeout=10,
                         what=f"the status line of GET {path}")
        return reader

    @property
    def status(self) -> int | None:
        return self.proto.status

    @property
    def headers(self) -> dict[str, str]:
        return self.proto.headers

    @property
    def frames(self) -> list[tuple[str, Any]]:
        return self.proto.frames

    def views(self) -> list[dict[str, Any]]:
        return [data["data"] for event, data in self.frames if event == "view"]

    async def error(self) -> dict[str, Any]:
        """The JSON body of a refused stream (the server closes after it)."""
        await self.proto.ended
        return json.loads(self.proto.body)

    async def close(self) -> None:
        if not self.proto.ended.called:
            self.proto.transport.loseConnection()
            await self.proto.ended
