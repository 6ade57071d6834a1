"""Service discipline: async readiness, ordered stop with timeouts, readiness report."""

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from beachmanager.service import FatalStartupError, OrderedMultiService, ReadyService


class Part(ReadyService):
    def __init__(self, name, clock, events, start_d=None, stop_d=None):
        super().__init__(name, clock)
        self.events = events
        self.start_d = start_d
        self.stop_d = stop_d

    def start(self):
        self.events.append(("start", self.name))
        return self.start_d if self.start_d is not None else succeed(None)

    def stop(self):
        self.events.append(("stop", self.name))
        return self.stop_d


def results(d):
    out = []
    d.addBoth(out.append)
    return out


def test_ready_after_async_start_and_when_ready_fires():
    clock, events = Clock(), []
    gate = Deferred()
    p = Part("a", clock, events, start_d=gate)
    p.startService()
    assert not p.ready
    got = results(p.whenReady())
    assert got == []
    gate.callback(None)
    assert p.ready and got == [p]
    assert results(p.whenReady()) == [p]


def test_start_failure_reaches_waiters_and_status():
    clock, events = Clock(), []
    p = Part("db", clock, events, start_d=fail(FatalStartupError("port taken")))
    waiter = p.whenReady()
    p.startService()
    got = results(waiter)
    assert got[0].check(FatalStartupError)
    assert p.status() == {"ready": False, "error": "port taken"}
    later = results(p.whenReady())
    assert later[0].check(FatalStartupError)


def test_children_stop_one_by_one_in_reverse_order():
    clock, events = Clock(), []
    root = OrderedMultiService("root", clock, stop_timeout=5)
    gates = {n: Deferred() for n in "abc"}
    for n in "abc":
        Part(n, clock, events, stop_d=gates[n]).setServiceParent(root)
    root.startService()
    events.clear()
    done = results(root.stopService())
    assert events == [("stop", "c")]          # b waits until c has stopped
    gates["c"].callback(None)
    assert events == [("stop", "c"), ("stop", "b")]
    gates["b"].callback(None)
    gates["a"].callback(None)
    assert events[-1] == ("stop", "a") and done == [None]


def test_a_child_that_hangs_is_abandoned_after_its_timeout():
    clock, events = Clock(), []
    root = OrderedMultiService("root", clock, stop_timeout=3)
    Part("store", clock, events, stop_d=succeed(None)).setServiceParent(root)
    Part("stuck", clock, events, stop_d=Deferred()).setServiceParent(root)
    root.startService()
    done = results(root.stopService())
    assert ("stop", "store") not in events
    clock.advance(3.1)  # ReadyService's own timeout (10 s) is longer; the parent's 3 s wins
    assert ("stop", "store") in events and done == [None]


def test_readiness_names_the_parts_not_ready():
    clock, events = Clock(), []
    root = OrderedMultiService("root", clock)
    Part("fast", clock, events).setServiceParent(root)
    Part("slow", clock, events, start_d=Deferred()).setServiceParent(root)
    root.startService()
    ready, report = root.readiness()
    assert not ready
    assert report["fast"]["ready"] and not report["slow"]["ready"]
