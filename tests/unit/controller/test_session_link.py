"""The session link: lanes follow the session stream (nothing polls); host values reach ingestion."""

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from beachmanager.controller.delivery import DeliveryEngine
from beachmanager.controller.ingest import Ingest
from beachmanager.controller.queue import NewAction, QueuedAction
from beachmanager.controller.queue_memory import MemoryActionQueue
from beachmanager.controller.runtime import MemoryRuntimeCache
from beachmanager.controller.session_link import SessionLink
from beachmanager.protocol import harness as hj
from beachmanager.transport.events import Role, SessionEvents, SessionState


class Bus:
    """The bus ends as the link sees them; readiness is the stream's, sends need a sender."""

    def __init__(self, events: SessionEvents):
        self.events = events
        self.attached: set[str] = set()
        self.sent: list[tuple[str, bytes]] = []
        self.listeners = {"ack": [], "state": [], "health": []}

    def is_ready(self, host):
        return self.events.is_ready(host)

    def publish_action(self, host, payload):
        if host not in self.attached:
            return False  # no sender yet: refused (counted as not_connected by the real bus)
        self.sent.append((host, payload))
        return True

    def on(self, kind, fn):
        self.listeners[kind].append(fn)
        return lambda: self.listeners[kind].remove(fn)


def rig():
    clock = Clock()
    clock.advance(100)
    events = SessionEvents(clock.seconds)
    bus = Bus(events)
    queue = MemoryActionQueue(clock)
    engine = DeliveryEngine(queue, bus, clock, consumer="m1")
    ingest = Ingest(engine, MemoryRuntimeCache(clock), clock)
    link = SessionLink(engine, ingest, bus, events)
    return clock, events, bus, queue, engine, ingest, link


def test_lanes_follow_the_stream_and_host_values_reach_ingestion():
    clock, events, bus, _, engine, ingest, link = rig()
    link.start()
    assert link.transport_state("h1") == "not_attached"
    events.publish("h1", SessionState.ATTACHING)
    assert "h1" in engine.lanes and not engine.lanes["h1"].ready
    assert link.transport_state("h1") == "offline"
    bus.attached.add("h1")
    events.publish("h1", SessionState.READY)
    assert engine.lanes["h1"].ready and link.transport_state("h1") == "ready"

    diff = hj.StateDiff(3, hj.Timestamp(5, 0), {"type": "terminal_full", "lines": ["x"]})
    for fn in bus.listeners["state"]:
        fn("h1", diff)
    assert ingest.last_state_seq == {"h1": 3}

    # a host no longer managed here loses its lane and its per-host state
    events.publish("h1", SessionState.STOPPED, removed=True)
    assert "h1" not in engine.lanes and ingest.last_state_seq == {}
    assert link.transport_state("h1") == "not_attached"
    link.stop()
    assert bus.listeners["state"] == [] and events._subscribers == []


def test_a_backlog_goes_out_when_ready_is_announced_nothing_refused():
    """The session attaches its bus sender before it announces ready: a lane that pumps its
    backlog from the READY callback is not refused (the ordering bug of the issue)."""
    clock, events, bus, queue, engine, _, link = rig()
    engine.start()
    link.start()
    events.publish("h1", SessionState.ATTACHING)
    d = ensureDeferred(queue.enqueue("h1", [NewAction(f"a{i}", {"id": f"a{i}", "action_type": "x"},
                                                      None, clock.seconds(), None)
                                            for i in range(3)], consumer="m1"))
    result = []
    d.addCallback(result.append)
    assert result and result[0].accepted == ["a0", "a1", "a2"]
    lane = engine.lanes["h1"]
    engine.adopt("h1", [QueuedAction("h1", result[0].entries[i], i, {"id": i, "action_type": "x"},
                                     None, clock.seconds(), None) for i in result[0].accepted])
    assert len(lane.waiting) == 3 and not bus.sent
    bus.attached.add("h1")  # the session's order: sender first ...
    events.publish("h1", SessionState.READY)  # ... then the announcement
    assert [h for h, _ in bus.sent] == ["h1"] * 3
    assert engine.counters["backpressure"] == 0 and lane.ready
    engine.stop()


def test_standby_changes_do_not_open_lanes():
    _, events, _, _, engine, _, link = rig()
    link.start()
    events.publish("h2", SessionState.READY, role=Role.STANDBY)
    assert "h2" not in engine.lanes


def test_a_promoted_standby_opens_its_lane_at_once_and_a_demoted_one_closes_it():
    _, events, bus, _, engine, _, link = rig()
    link.start()
    bus.attached.add("h3")
    events.publish("h3", SessionState.READY, role=Role.STANDBY)
    assert "h3" not in engine.lanes
    # a standby is not an attachment: its actions go to the owner through the shared stream
    assert link.transport_state("h3") == "not_attached" and not link.delivers("h3")
    events.publish("h3", SessionState.READY, role=Role.ACTIVE)  # promoted: same transport
    assert engine.lanes["h3"].ready and link.transport_state("h3") == "ready"
    assert link.delivers("h3")
    events.publish("h3", SessionState.READY, role=Role.STANDBY)  # stepped down
    assert not engine.lanes["h3"].ready
    assert link.transport_state("h3") == "not_attached" and not link.delivers("h3")
