"""The console's live feed: one view built for every open stream, pushed when things change.

:class:`ConsoleHub` subscribes to the session stream (every state change of every host) and
to the controller's final acks; each marks the view dirty.  A dirty view is rebuilt at most
once per :data:`COALESCE` seconds, whatever the rate of changes, and only one build runs at
a time.  While a stream is open the view is also rebuilt every :data:`REFRESH` seconds, for
what has no event here: the shared store's members, owners and moves (read at most once per
refresh, or sooner for a host new here), queue depths, and the terminal mirrors that
streams follow.  A stream is sent a frame only when its content changed.

Bounds: at most :data:`MAX_STREAMS` open streams (one more is answered 503); per stream at
most the connection's write buffer plus one pending frame per kind (:mod:`.sse`); a stream
that has not drained for :data:`STALL_LIMIT` seconds is disconnected; the last-ack map
holds at most :data:`LAST_ACKS` hosts (and forgets a host when it stops being managed).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ...controller.delivery import FinalAck
from ...service import ReadyService
from ...transport.events import SessionChange
from .sse import SseStream, encode, frame
from .view import ConsoleSource, ack_view, cluster_part, host_detail, local_part, merge

MAX_STREAMS = 16
COALESCE = 0.2
REFRESH = 1.0
STALL_LIMIT = 30.0
KEEPALIVE = 15.0
LAST_ACKS = 10_000


class ConsoleBusy(Exception):
    """No stream can be opened now (too many open, or the console is stopping)."""


class ConsoleHub(ReadyService):
    log = Logger()
    critical = False  # the manager runs without its console

    def __init__(self, source: ConsoleSource, clock: IReactorTime, *,
                 max_streams: int = MAX_STREAMS, coalesce: float = COALESCE,
                 refresh: float = REFRESH, stall_limit: float = STALL_LIMIT):
        super().__init__("console", clock)
        self.source = source
        self.max_streams = max_streams
        self.coalesce, self.refresh, self.stall_limit = coalesce, refresh, stall_limit
        self.streams: list[SseStream] = []
        self.last_acks: dict[str, dict[str, Any]] = {}
        self.builds = 0
        self.refused = 0
        self._unsubscribe: Any = None
        self._flush_call: IDelayedCall | None = None
        self._building = False
        self._dirty = False
        self._last_build = float("-inf")
        self._cluster: dict[str, Any] | None = None
        self._cluster_at = float("-inf")
        self._tick = LoopingCall(self._on_tick)
        self._tick.clock = clock
        if source.controller is not None:
            source.controller.watch_finals(self._final)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._unsubscribe = self.source.events.subscribe(self._changed)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for stream in list(self.streams):
            stream.close()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None

    def status(self) -> dict[str, Any]:
        out = super().status()
        out.update(streams=len(self.streams), max_streams=self.max_streams, builds=self.builds,
                   refused=self.refused)
        return out

    # -- streams ---------------------------------------------------------------------------------
    def open(self, request, host: str | None = None, once: bool = False) -> SseStream:
        """A new stream on *request* (raises :class:`ConsoleBusy`); its first frames follow
        within :data:`COALESCE` seconds."""
        if not self.ready:
            raise ConsoleBusy("the console is not running")
        if len(self.streams) >= self.max_streams:
            self.refused += 1
            raise ConsoleBusy(f"{len(self.streams)} console streams are open (at most "
                              f"{self.max_streams}); close one or retry later")
        stream = SseStream(request, self.clock, host=host, once=once, on_close=self._closed)
        self.streams.append(stream)
        if not self._tick.running:
            self._tick.start(self.refresh, now=False)
        self.poke()
        return stream

    def _closed(self, stream: SseStream) -> None:
        if stream in self.streams:
            self.streams.remove(stream)
        if not self.streams and self._tick.running:
            self._tick.stop()

    def _on_tick(self) -> None:
        for stream in list(self.streams):
            if stream.stalled(self.stall_limit):
                self.log.warn("console: a stream has not drained for {limit}s ({coalesced} "
                              "frames coalesced); disconnecting it", limit=self.stall_limit,
                              coalesced=stream.coalesced)
                stream.abort()
            else:
                stream.keepalive(KEEPALIVE)
        self.poke()

    # -- what marks the view dirty ------------------------------------------------------------
    def _changed(self, change: SessionChange) -> None:
        if change.removed:
            self.last_acks.pop(change.host_session_id, None)
        self.poke()

    def _final(self, final: FinalAck) -> None:
        if final.repeat:
            return
        host = final.host
        if host not in self.last_acks and len(self.last_acks) >= LAST_ACKS:
            self.last_acks.pop(next(iter(self.last_acks)))
        self.last_acks[host] = ack_view(final)
        self.poke()

    def poke(self) -> None:
        """The view may have changed: rebuild it soon (coalesced), if anyone watches."""
        if not self.streams:
            return
        self._dirty = True
        if self._building or self._flush_call is not None:
            return
        delay = max(0.0, self._last_build + self.coalesce - self.clock.seconds())
        self._flush_call = self.clock.callLater(delay, self._flush)

    # -- building and sending ------------------------------------------------------------------
    def _flush(self) -> None:
        self._flush_call = None
        self._dirty = False
        if not self.streams:
            return
        self._building = True
        self._last_build = self.clock.seconds()
        d = ensureDeferred(self._build_and_send())
        d.addErrback(lambda f: self.log.failure("console: building the view failed", failure=f))
        d.addBoth(self._built)

    def _built(self, _: object) -> None:
        self._building = False
        if self._dirty:
            self._dirty = False
            self.poke()

    def _cluster_stale(self, local: dict[str, Any]) -> bool:
        """Read the store again once per refresh, or sooner (at most once per coalescing
        window) when this instance holds a host the last read did not list (a new attach)."""
        age = self.clock.seconds() - self._cluster_at
        if self._cluster is None or age >= self.refresh * 0.9:
            return True
        listed = {h["host_session_id"] for h in self._cluster.get("hosts", [])}
        return (age >= self.coalesce and not self._cluster.get("truncated")
                and not listed.issuperset(local["hosts"]))

    async def _build_and_send(self) -> None:
        src = self.source
        local = local_part(src, self.last_acks)
        if self._cluster_stale(local):
            self._cluster = await cluster_part(src)
            self._cluster_at = self.clock.seconds()
            local = local_part(src, self.last_acks)
        view = merge(src, self._cluster or {}, local)
        self.builds += 1
        at_ms = round(self.clock.seconds() * 1000)
        body = encode(view)
        view_frame = frame("view", at_ms, body)
        owners = {row["host_session_id"]: row["owner"] for row in view["hosts"]}
        details: dict[str, tuple[bytes, bytes]] = {}
        for host in {s.host for s in self.streams if s.host is not None}:
            detail = encode(host_detail(src, host, owners.get(host)))
            details[host] = (detail, frame("host", at_ms, detail))
        for stream in list(self.streams):
            stream.offer("view", view_frame, body)
            if stream.host is not None:
                key, data = details[stream.host]
                stream.offer("host", data, key)
            if stream.once and stream.has("view") and (stream.host is None or stream.has("host")):
                stream.close()
