"""The bus link: typed host values to ingestion, transport transitions and samples to the engine."""

from twisted.internet.task import Clock

from beachmanager.controller.bus_link import BusLink
from beachmanager.controller.delivery import DeliveryEngine
from beachmanager.controller.ingest import Ingest
from beachmanager.controller.queue_memory import MemoryActionQueue
from beachmanager.controller.runtime import MemoryRuntimeCache
from beachmanager.protocol import harness as hj


class Hosts:
    """The hosts service's bus ends as the link sees them."""

    def __init__(self):
        self.ready: dict[str, bool] = {}
        self.listeners = {"ack": [], "state": [], "health": []}
        self.change = []

    def is_ready(self, host):
        return self.ready.get(host, False)

    def publish_action(self, host, payload):
        return self.is_ready(host)

    def on(self, kind, fn):
        self.listeners[kind].append(fn)
        return lambda: self.listeners[kind].remove(fn)

    def on_transport_change(self, fn):
        self.change.append(fn)
        return lambda: self.change.remove(fn)


def test_link_follows_transports_and_routes_host_values():
    clock = Clock()
    clock.advance(100)
    hosts = Hosts()
    engine = DeliveryEngine(MemoryActionQueue(clock), hosts, clock, consumer="m1")
    cache = MemoryRuntimeCache(clock)
    ingest = Ingest(engine, cache, clock)
    link = BusLink(engine, ingest, hosts, hosts, lambda: list(hosts.ready), clock,
                   on_transport_change=hosts.on_transport_change)
    link.start()
    assert link.transport_state("h1") == "not_attached"

    hosts.ready["h1"] = False
    clock.advance(0.25)  # sampled
    assert "h1" in engine.lanes and not engine.lanes["h1"].ready
    assert link.transport_state("h1") == "offline"
    hosts.ready["h1"] = True
    assert len(hosts.change) == 1
    for fn in hosts.change:  # reported at once
        fn("h1", True)
    assert engine.lanes["h1"].ready and link.transport_state("h1") == "ready"

    diff = hj.StateDiff(3, hj.Timestamp(5, 0), {"type": "terminal_full", "lines": ["x"]})
    for fn in hosts.listeners["state"]:
        fn("h1", diff)
    assert cache._get(cache._snap, ("h1", "state"))["sequence"] == 3

    # a host no longer managed, holding nothing, loses its lane
    del hosts.ready["h1"]
    clock.advance(0.25)
    assert "h1" not in engine.lanes
    link.stop()
    assert hosts.change == [] and hosts.listeners["state"] == []
