"""One server-sent-events stream (``text/event-stream``), bounded for a slow reader.

The stream is a streaming producer on its HTTP connection: when the connection's write
buffer fills (Twisted pauses the producer), nothing more is written; only the newest frame
of each kind is kept, replacing older ones (coalescing), and written on resume.  So a slow
reader costs at most the connection's buffer plus one frame per kind; one stalled longer
than the hub's limit is disconnected (the browser's EventSource reconnects by itself).

A frame repeating the last one sent of its kind is not sent again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

#: Tells EventSource how long to wait before reconnecting (ms).
RETRY_MS = 2000


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def frame(kind: str, at_ms: int, body: bytes) -> bytes:
    """``event: <kind>`` and ``{"at_ms": ..., "data": <body>}`` on one ``data:`` line (*body*
    is JSON from :func:`encode`, which has no raw newlines)."""
    return b"event: %s\ndata: {\"at_ms\":%d,\"data\":%s}\n\n" % (kind.encode(), at_ms, body)


@implementer(IPushProducer)
class SseStream:
    """Frames to one client.  :attr:`done` fires (with ``b""``) when the stream ends; the
    HTTP handler returns it, so the request finishes then."""

    def __init__(self, request, clock: IReactorTime, *, host: str | None = None,
                 once: bool = False, on_close: Callable[[SseStream], None] = lambda s: None):
        self.request = request
        self.clock = clock
        self.host = host  # the host whose detail this client follows
        self.once = once  # send the current view (and detail), then end
        self.on_close = on_close
        self.paused_since: float | None = None
        self.pending: dict[str, tuple[bytes, bytes]] = {}  # newest unsent (key, frame) per kind
        self.sent: dict[str, bytes] = {}  # key of the last frame written per kind
        self.last_write = clock.seconds()
        self.frames = 0
        self.coalesced = 0  # frames replaced by a newer one while paused
        self.closed = False
        self.done: Deferred[bytes] = Deferred(lambda d: self._ended())
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")  # (tell a proxy not to buffer)
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(lambda _: self._ended())
        self._write(b"retry: %d\n\n" % RETRY_MS)

    # -- sending -----------------------------------------------------------------------------
    def offer(self, kind: str, data: bytes, key: bytes | None = None) -> None:
        """Send *data* (a frame) now, or keep it as the newest of its kind if paused.  *key*
        (default: *data*) identifies its content: a frame with the key last sent is skipped."""
        key = data if key is None else key
        if self.closed or self.sent.get(kind) == key:
            return
        if self.paused_since is not None:
            if kind in self.pending:
                self.coalesced += 1
            self.pending[kind] = (key, data)
            return
        self.sent[kind] = key
        self.frames += 1
        self._write(data)

    def has(self, kind: str) -> bool:
        return kind in self.sent

    def keepalive(self, idle: float) -> None:
        """A comment line when nothing was written for *idle* seconds (keeps proxies open)."""
        if not self.closed and self.paused_since is None and \
                self.clock.seconds() - self.last_write >= idle:
            self._write(b": keepalive\n\n")

    def stalled(self, limit: float) -> bool:
        return self.paused_since is not None and self.clock.seconds() - self.paused_since > limit

    def _write(self, data: bytes) -> None:
        self.last_write = self.clock.seconds()
        self.request.write(data)

    # -- IPushProducer (the connection's flow control) -------------------------------------------
    def pauseProducing(self) -> None:
        if self.paused_since is None:
            self.paused_since = self.clock.seconds()

    def resumeProducing(self) -> None:
        self.paused_since = None
        pending, self.pending = self.pending, {}
        for kind, (key, data) in pending.items():
            self.offer(kind, data, key)

    def stopProducing(self) -> None:
        self._ended()

    # -- ending ------------------------------------------------------------------------------------
    def close(self) -> None:
        """End the stream from this side (the request finishes)."""
        self._ended()

    def abort(self) -> None:
        """Drop a stalled client's connection at once (its buffer is freed)."""
        transport = getattr(self.request, "channel", None)
        transport = getattr(transport, "transport", None)
        self._ended()
        if transport is not None:
            transport.abortConnection()

    def _ended(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.pending.clear()
        try:
            self.request.unregisterProducer()
        except AttributeError:  # the connection is already gone (no channel)
            pass
        self.on_close(self)
        if not self.done.called:  # (also when the client went away: Klein writes nothing then)
            self.done.callback(b"")
