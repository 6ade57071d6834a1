"""The console's live feed on a hand-moved clock: coalescing, repeats skipped, a slow reader
bounded (newest frame only while paused, disconnected after the stall limit), the stream cap,
``once``, the last-ack map, and stopping."""

import json

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from beachmanager import config
from beachmanager.api.ui import hub as hub_mod
from beachmanager.api.ui.hub import ConsoleBusy, ConsoleHub
from beachmanager.api.ui.routes import stream_args
from beachmanager.api.ui.view import ConsoleSource
from beachmanager.context import ManagerContext
from beachmanager.protocol.session import SessionState
from beachmanager.telemetry.crash import CrashReporter
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.events import SessionEvents


class Transport:
    aborted = False

    def abortConnection(self):
        self.aborted = True


class Channel:
    def __init__(self):
        self.transport = Transport()


class FakeRequest:
    """What an SSE stream uses of a twisted.web request."""

    def __init__(self, args=None):
        self.args = args or {}
        self.headers = {}
        self.written = []
        self.producer = None
        self.channel = Channel()
        self.finished = Deferred()

    def setHeader(self, name, value):
        self.headers[name] = value

    def write(self, data):
        self.written.append(data)

    def registerProducer(self, producer, streaming):
        assert streaming and self.producer is None
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def notifyFinish(self):
        return self.finished

    def frames(self, kind="view"):
        out = []
        for chunk in self.written:
            if chunk.startswith(b"event: " + kind.encode() + b"\n"):
                out.append(json.loads(chunk.split(b"\ndata: ", 1)[1]))
        return out


def make_hub(**kw):
    clock = Clock()
    clock.advance(1_000_000)
    ctx = ManagerContext(config=config.defaults(), reactor=clock, clock=clock,
                         metrics=Metrics(CollectorRegistry()), crash=CrashReporter())
    events = SessionEvents(clock.seconds)
    hub = ConsoleHub(ConsoleSource(ctx, events), clock, **kw)
    hub.startService()
    assert hub.ready
    return hub, events, clock


def test_changes_are_coalesced_and_a_repeat_is_not_sent():
    hub, events, clock = make_hub()
    req = FakeRequest()
    hub.open(req)
    assert req.written[0].startswith(b"retry: ")
    clock.advance(0)
    assert len(req.frames()) == 1 and hub.builds == 1
    first = req.frames()[0]["data"]
    assert first["hosts"] == [] and first["cluster_error"] and first["this_instance"] == hub.source.ctx.config.instance_id
    for i in range(100):  # a burst of changes: one build per coalescing window, not 100
        events.publish(f"h-{i}", SessionState.ATTACHING)
    clock.advance(0.05)
    assert hub.builds == 1
    clock.advance(hub_mod.COALESCE)
    assert hub.builds == 2 and len(req.frames()) == 2
    assert req.frames()[-1]["data"]["counts"] == {"attaching": 100}
    clock.advance(hub_mod.REFRESH)  # the refresh rebuilds; nothing changed: nothing sent
    assert hub.builds == 3 and len(req.frames()) == 2


def test_a_paused_reader_gets_only_the_newest_frame_and_is_dropped_when_stalled():
    hub, events, clock = make_hub()
    req = FakeRequest()
    stream = hub.open(req)
    clock.advance(0)
    req.producer.pauseProducing()  # the connection's buffer is full
    sent = len(req.written)
    for i in range(10):
        events.publish("h-1", SessionState.ATTACHING if i % 2 else SessionState.READY)
        clock.advance(hub_mod.COALESCE)
    assert len(req.written) == sent  # nothing written while paused
    assert list(stream.pending) == ["view"] and stream.coalesced >= 8  # one frame kept, newest
    req.producer.resumeProducing()
    assert len(req.written) == sent + 1
    assert req.frames()[-1]["data"]["changes"][0]["seq"] == 10  # the newest view
    req.producer.pauseProducing()
    clock.advance(hub_mod.STALL_LIMIT + 2 * hub_mod.REFRESH)
    assert req.channel.transport.aborted and stream.closed and hub.streams == []
    assert stream.done.called


def test_at_most_max_streams_and_each_is_bounded_by_the_cap():
    hub, events, clock = make_hub(max_streams=3)
    for _ in range(3):
        hub.open(FakeRequest())
    with pytest.raises(ConsoleBusy, match="3 console streams are open"):
        hub.open(FakeRequest())
    assert hub.refused == 1 and hub.status()["streams"] == 3
    hub.streams[0].close()
    hub.open(FakeRequest())  # room again


def test_once_ends_after_the_first_view_and_detail():
    hub, events, clock = make_hub()
    req = FakeRequest()
    stream = hub.open(req, host="h-x", once=True)
    clock.advance(0)
    assert stream.closed and stream.done.called and hub.streams == []
    detail = req.frames("host")[0]["data"]
    assert detail == {"host_session_id": "h-x", "here": False, "owner": None,
                      "message": "host h-x has no session on this instance"}


def test_a_client_that_goes_away_is_forgotten_and_stop_closes_the_rest():
    hub, events, clock = make_hub()
    gone, staying = FakeRequest(), FakeRequest()
    hub.open(gone)
    s2 = hub.open(staying)
    gone.finished.errback(Exception("connection lost"))
    assert hub.streams == [s2]
    hub.stopService()
    assert s2.closed and hub.streams == [] and not hub._tick.running
    with pytest.raises(ConsoleBusy):
        hub.open(FakeRequest())


def test_keepalive_comment_on_an_idle_stream():
    hub, events, clock = make_hub()
    req = FakeRequest()
    hub.open(req)
    clock.advance(0)
    for _ in range(int(hub_mod.KEEPALIVE / hub_mod.REFRESH) + 1):
        clock.advance(hub_mod.REFRESH)
    assert b": keepalive\n\n" in req.written


def test_last_acks_are_bounded_and_forgotten_with_the_host(monkeypatch):
    from beachmanager.controller.delivery import FinalAck
    from beachmanager.controller.queue import QueuedAction

    hub, events, clock = make_hub()
    monkeypatch.setattr(hub_mod, "LAST_ACKS", 3)

    def final(host, action_id):
        action = QueuedAction(host, "1-0", action_id, {}, None, clock.seconds() - 0.002, None)
        return FinalAck(host, action, "ok", clock.seconds(), 1, clock.seconds() - 0.001)

    for i in range(5):
        hub._final(final(f"h-{i}", f"a-{i}"))
    assert list(hub.last_acks) == ["h-2", "h-3", "h-4"]
    assert hub.last_acks["h-4"]["action_id"] == "a-4" and hub.last_acks["h-4"]["latency_ms"] == 2.0
    events.publish("h-3", SessionState.READY)
    events.publish("h-3", SessionState.STOPPED, removed=True)
    assert "h-3" not in hub.last_acks


@pytest.mark.parametrize(("query", "message"), [
    ({b"once": [b"2"]}, "once must be 0 or 1"),
    ({b"host": [b""]}, "host must be"),
    ({b"host": [b"a\x01b"]}, "host must be"),
    ({b"host": [b"x" * 257]}, "host must be"),
    ({b"host": [b"a", b"b"]}, "host is given more than once"),
    ({b"host": [b"\xff"]}, "not UTF-8"),
])
def test_bad_stream_queries_are_refused_with_a_sentence(query, message):
    with pytest.raises(ValueError, match=message):
        stream_args(FakeRequest(query))


def test_good_stream_queries():
    assert stream_args(FakeRequest({})) == (None, False)
    assert stream_args(FakeRequest({b"host": [b"h-1"], b"once": [b"1"]})) == ("h-1", True)
