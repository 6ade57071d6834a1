"""The assignment service on a Clock: several instances share the in-memory store.

The transport is a recording double (the end-to-end tests use the real one); everything
else — membership, sweeps, reconcile, drain, refusal — is the production code.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from beachmanager.assign.audit import MemoryAudit
from beachmanager.assign.membership import timings
from beachmanager.assign.model import DRAINING, CapacityExhausted
from beachmanager.assign.rendezvous import rank
from beachmanager.assign.service import AssignmentService
from beachmanager.assign.store_memory import MemoryAssignmentStore
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.events import SessionEvents, SessionState

T = timings(5.0, 15.0)


class RecordingAttacher:
    """A transport double: a session starts at once and is ready at once, or when its
    ``gates[host]`` fires while ``hold`` is set; it publishes on the session stream as a
    real host session does."""

    def __init__(self, clock, sessions: SessionEvents):
        self.clock = clock
        self.sessions = sessions
        self.events: list[tuple[float, str, str]] = []
        self.hold = False
        self.fail: set[str] = set()
        self.gates: dict[str, Deferred] = {}

    def attach(self, host, epoch=0):
        self.events.append((self.clock.seconds(), "attach", host))
        if host in self.fail:
            raise RuntimeError("road said no")
        self.sessions.publish(host, SessionState.ATTACHING)
        if self.hold:
            self.gates[host] = Deferred()
            self.gates[host].addCallback(lambda _: self.sessions.publish(host, SessionState.READY))
        else:
            self.sessions.publish(host, SessionState.READY)
        return succeed(None)

    def detach(self, host):
        self.events.append((self.clock.seconds(), "detach", host))
        self.sessions.publish(host, SessionState.STOPPED, removed=True)
        return succeed(None)

    def attached(self):
        return set(self.sessions.hosts())

    def remember(self, host, join_code):
        pass

    def hosts(self, kind):
        return [h for _, k, h in self.events if k == kind]


class Cluster:
    def __init__(self):
        self.clock = Clock()
        self.clock.advance(1_000)
        self.store = MemoryAssignmentStore(self.clock, dead_after_ms=int(T.dead_after * 1000))
        self.audit = MemoryAudit()
        self.nodes: dict[str, AssignmentService] = {}

    def start(self, instance_id, capacity=50, attach=True):
        metrics = Metrics(CollectorRegistry())
        sessions = SessionEvents(self.clock.seconds)
        svc = AssignmentService(
            self.clock, metrics, instance_id=instance_id, capacity=capacity,
            endpoint=lambda: f"http://{instance_id}:8081", timings=T,
            store_factory=lambda: self.store, audit_factory=lambda: self.audit, events=sessions,
            attacher=RecordingAttacher(self.clock, sessions) if attach else None)
        svc.startService()
        assert svc.ready, svc.start_error
        self.nodes[instance_id] = svc
        return svc

    def run(self, seconds):
        step = T.tick / 2
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def crash(self, svc):
        """The process dies: no drain, no goodbye."""
        svc._loop.stop()
        svc.membership.stop_loop()


def _run(coro):
    return ensureDeferred(coro)


def resolved(d):
    out = []
    d.addBoth(out.append)
    assert out, "deferred did not fire"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def rebalanced(svc, reason):
    return svc.metrics.registry.get_sample_value("assignment_rebalance_total", {"reason": reason}) or 0


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_placement_attaches_on_the_owner_and_marks_it_ready():
    c = Cluster()
    a, b = c.start("mgr-a"), c.start("mgr-b")
    hosts = [f"host-{n}" for n in range(20)]
    for h in hosts:
        d = resolved(_run(a.assign(h)))
        assert d.owner == rank(h, ["mgr-a", "mgr-b"])[0]
    c.run(1)
    for svc in (a, b):
        mine = {h for h in hosts if rank(h, ["mgr-a", "mgr-b"])[0] == svc.instance_id}
        assert svc.owned_hosts() == mine
        assert set(svc.attacher.hosts("attach")) == mine
        assert svc.metrics.registry.get_sample_value("assigned_hosts") == len(mine)
    assert all(resolved(_run(a.lookup(h))).ready for h in hosts)
    # The audit mirror has one current row per host, written by its owner.
    assert {h: r.owner for h, r in c.audit.assignments.items()} == {
        h: rank(h, ["mgr-a", "mgr-b"])[0] for h in hosts}
    assert [m.reason for m, _ in c.audit.events] == ["attach"] * 20


def test_capacity_refusal_is_an_error_and_a_metric(logged):
    c = Cluster()
    a = c.start("mgr-a", capacity=2)
    resolved(_run(a.assign("h1")))
    resolved(_run(a.assign("h2")))
    with pytest.raises(CapacityExhausted) as err:
        resolved(_run(a.assign("h3")))
    assert "1 serving instance(s) of 1 live, all at capacity" in str(err.value)
    assert a.metrics.registry.get_sample_value("assignment_refused_total") == 1
    assert any("assignment refused" in e.get("log_format", "") for e in logged)


def test_a_dead_instance_hosts_move_to_survivors_within_dead_after_plus_two_ticks(logged):
    c = Cluster()
    a, b, d = c.start("mgr-a"), c.start("mgr-b"), c.start("mgr-c")
    hosts = [f"host-{n}" for n in range(60)]
    for h in hosts:
        resolved(_run(b.assign(h)))
    c.run(1)
    doomed = set(a.owned_hosts())
    assert doomed
    c.crash(a)
    died_at = c.clock.seconds()
    # Until two heartbeats are missed, nothing moves.
    c.run(T.dead_after - T.interval - 1)
    assert b.owned_hosts() | d.owned_hosts() == set(hosts) - doomed
    c.run(T.interval + 1 + 2 * T.tick)
    assert b.owned_hosts() | d.owned_hosts() == set(hosts)
    assert not b.owned_hosts() & d.owned_hosts()
    taken = [(t, h) for svc in (b, d) for t, k, h in svc.attacher.events if k == "attach" and h in doomed]
    assert {h for _, h in taken} == doomed
    assert max(t for t, _ in taken) - died_at <= T.dead_after + T.interval + 2 * T.tick
    # Each survivor takes the next host in the hash order among the living.
    for h in doomed:
        assert resolved(_run(b.lookup(h))).owner == rank(h, ["mgr-b", "mgr-c"])[0]
        row = c.audit.assignments[h]
        assert (row.reason, row.reassigned_from) == ("failover", "mgr-a")
    assert rebalanced(b, "failover") + rebalanced(d, "failover") == len(doomed)
    failover = [e for e in logged if e.get("log_format", "").startswith("failover:")]
    assert failover and failover[0]["old_manager_instance_id"] == "mgr-a"
    assert sum(e["count"] for e in failover) == len(doomed)
    assert set(failover[0]["new_manager_instance_ids"]) <= {"mgr-b", "mgr-c"}


def test_an_instance_that_stalled_detaches_hosts_taken_from_it():
    c = Cluster()
    a, b = c.start("mgr-a"), c.start("mgr-b")
    for n in range(30):
        resolved(_run(a.assign(f"host-{n}")))
    c.run(1)
    mine = set(a.owned_hosts())
    a.membership.stop_loop()  # heartbeats stop, ticks go on (a partition, a stall)
    c.run(T.dead_after + 1)
    assert a.owned_hosts() == set()
    assert set(a.attacher.hosts("detach")) == mine
    assert b.owned_hosts() == {f"host-{n}" for n in range(30)}


def test_drain_hands_over_make_before_break_and_leaves():
    c = Cluster()
    a, b = c.start("mgr-a"), c.start("mgr-b")
    for n in range(40):
        resolved(_run(a.assign(f"host-{n}")))
    c.run(1)
    mine = set(a.owned_hosts())
    assert mine
    b.attacher.hold = True  # the new owner's transports take a while to be ready
    stopping = a.stopService()
    c.run(T.tick * 3)
    assert resolved(_run(a.members()))[0].state == DRAINING
    assert b.owned_hosts() == {f"host-{n}" for n in range(40)}
    assert a.attacher.hosts("detach") == []  # nothing detached before the new owner is ready
    for host, gate in list(b.attacher.gates.items()):
        if host in mine:
            gate.callback(None)
    c.run(T.tick * 3)
    assert set(a.attacher.hosts("detach")) == mine
    assert stopping.called
    assert [m.id for m in resolved(_run(b.members()))] == ["mgr-b"]
    assert rebalanced(a, "drain") == len(mine)
    assert all(c.audit.assignments[h].owner == "mgr-b" for h in mine)


def test_drain_with_nowhere_to_go_leaves_hosts_orphaned_for_later():
    c = Cluster()
    a = c.start("mgr-a")
    for n in range(5):
        resolved(_run(a.assign(f"h{n}")))
    c.run(1)
    stopping = a.stopService()
    c.run(T.tick * 2)
    assert stopping.called
    assert set(a.attacher.hosts("detach")) == {f"h{n}" for n in range(5)}
    # A newcomer sweeps the orphans at once (their owner left).
    b = c.start("mgr-b")
    c.run(1)
    assert b.owned_hosts() == {f"h{n}" for n in range(5)}


def test_a_session_that_could_not_start_is_started_again_next_tick():
    c = Cluster()
    a = c.start("mgr-a")
    a.attacher.fail.add("flaky")
    resolved(_run(a.assign("flaky")))
    c.run(0.2)
    assert a.slot_view("flaky")["state"] == "retry"
    assert "road said no" in a.slot_view("flaky")["error"]
    failed = a.attacher.hosts("attach").count("flaky")
    a.attacher.fail.clear()
    c.run(T.tick * 2)
    assert a.slot_view("flaky")["state"] == "ready"
    assert a.attacher.hosts("attach").count("flaky") == failed + 1  # started once more, then held


def test_restart_with_the_same_id_clears_the_stale_record_and_keeps_its_hosts():
    c = Cluster()
    a = c.start("mgr-a")
    for n in range(4):
        resolved(_run(a.assign(f"h{n}")))
    c.run(1)
    c.crash(a)
    again = c.start("mgr-a")
    c.run(1)
    assert again.owned_hosts() == {f"h{n}" for n in range(4)}
    assert again.membership.last.existed is True


def test_a_store_that_lost_everything_is_restored_from_what_we_hold():
    c = Cluster()
    a = c.start("mgr-a")
    for n in range(3):
        resolved(_run(a.assign(f"h{n}")))
    c.run(1)
    fresh = MemoryAssignmentStore(c.clock, dead_after_ms=int(T.dead_after * 1000))
    a.store = a.membership.store = fresh  # Redis restarted without persistence
    c.run(T.interval + 1)
    assert resolved(_run(a.store.owned("mgr-a"))) == {"h0", "h1", "h2"}
    assert a.owned_hosts() == {"h0", "h1", "h2"}
    assert a.attacher.hosts("detach") == []
    assert resolved(_run(a.lookup("h0"))).reason == "restore"


def test_a_joining_instance_takes_about_its_share_make_before_break():
    c = Cluster()
    a = c.start("mgr-a", capacity=100)
    hosts = [f"host-{n}" for n in range(60)]
    for h in hosts:
        resolved(_run(a.assign(h)))
    c.run(1)
    b = c.start("mgr-b", capacity=100)
    b.attacher.hold = True
    c.run(2)
    # At most rebalance_batch hosts are in flight, and none is detached before b is ready.
    assert 0 < len(b.owned_hosts()) <= a.rebalance_batch
    assert a.attacher.hosts("detach") == []
    assert all(a.slots[h].state == "handing" for h in b.owned_hosts())
    b.attacher.hold = False
    for _ in range(60):
        for gate in list(b.attacher.gates.values()):
            if not gate.called:
                gate.callback(None)
        c.run(0.5)
    expected = {h for h in hosts if rank(h, ["mgr-a", "mgr-b"])[0] == "mgr-b"}
    assert b.owned_hosts() == expected
    assert a.owned_hosts() == set(hosts) - expected
    assert set(a.attacher.hosts("detach")) == expected and not a.slots.keys() & expected
    assert rebalanced(a, "rebalance") == len(expected)


def test_configured_hosts_refused_at_start_are_placed_once_room_appears(logged):
    c = Cluster()
    a = c.start("mgr-a", capacity=2)
    sessions = SessionEvents(c.clock.seconds)
    svc = AssignmentService(
        c.clock, Metrics(CollectorRegistry()), instance_id="mgr-b", capacity=1,
        endpoint=lambda: "http://b", timings=T, store_factory=lambda: c.store,
        audit_factory=lambda: c.audit, events=sessions,
        attacher=RecordingAttacher(c.clock, sessions), initial_hosts=["c1", "c2", "c3", "c4"])
    svc.startService()
    c.run(1)
    assert len(a.owned_hosts()) + len(svc.owned_hosts()) == 3
    assert any("configured host(s) refused" in e.get("log_format", "") for e in logged)
    c.start("mgr-c", capacity=5)
    c.run(T.interval + 1)
    owners = {h: resolved(_run(a.lookup(h))).owner for h in ["c1", "c2", "c3", "c4"]}
    assert set(owners) == {"c1", "c2", "c3", "c4"} and "mgr-c" in owners.values()


def test_a_hand_over_gives_way_when_new_hosts_would_exceed_capacity():
    c = Cluster()
    names = [f"h{n}" for n in range(200)]
    to_b = [h for h in names if rank(h, ["mgr-a", "mgr-b"])[0] == "mgr-b"]
    to_a = [h for h in names if rank(h, ["mgr-a", "mgr-b"])[0] == "mgr-a"]
    a = c.start("mgr-a", capacity=2)
    resolved(_run(a.assign(to_b[0])))
    resolved(_run(a.assign(to_a[0])))
    c.run(1)
    b = c.start("mgr-b", capacity=5)
    b.attacher.hold = True  # b never gets ready: a keeps its transport to to_b[0] ...
    c.run(1)
    assert a.slots[to_b[0]].state == "handing" and a.attacher.hosts("detach") == []
    resolved(_run(b.assign(to_a[1])))  # ... until a host placed on a needs the room
    c.run(1)
    assert a.attacher.hosts("detach") == [to_b[0]]
    assert len(a.slots) == 2 and a.owned_hosts() == {to_a[0], to_a[1]}


def test_a_host_no_instance_can_attach_is_released(logged):
    from beachmanager.assign.attacher import NoJoinCode

    c = Cluster()
    a = c.start("mgr-a")

    def no_code(host, epoch=0):
        raise NoJoinCode(f"no join code is known for host {host}")

    a.attacher.attach = no_code
    resolved(_run(a.assign("ghost")))
    c.run(1)
    assert resolved(_run(a.lookup("ghost"))) is None and "ghost" not in a.slots
    assert any("releasing" in e.get("log_format", "") for e in logged)


def test_readiness_comes_from_the_session_stream_and_reaches_the_shared_store():
    c = Cluster()
    a = c.start("mgr-a")
    a.attacher.hold = True
    resolved(_run(a.assign("h1")))
    c.run(1)
    assert a.slot_view("h1")["state"] == "attaching"
    assert resolved(_run(a.lookup("h1"))).ready is False
    a.attacher.gates["h1"].callback(None)  # the session publishes READY
    c.run(1)
    assert a.slot_view("h1") == {**a.slot_view("h1"), "state": "ready", "session": "ready"}
    assert resolved(_run(a.lookup("h1"))).ready is True
    a.attacher.sessions.publish("h1", SessionState.BACKOFF)  # the transport dropped
    c.run(1)
    assert resolved(_run(a.lookup("h1"))).ready is False
    assert a.attacher.hosts("attach") == ["h1"]  # the session retries itself: no second attach


def test_a_host_whose_join_code_is_refused_is_released(logged):
    c = Cluster()
    a = c.start("mgr-a")
    a.attacher.hold = True
    resolved(_run(a.assign("refused")))
    c.run(1)
    a.attacher.sessions.publish("refused", SessionState.REJECTED, reason="join code refused")
    c.run(1)
    assert resolved(_run(a.lookup("refused"))) is None and "refused" not in a.slots
    assert a.attacher.hosts("attach") == ["refused"]  # not attached again and again
    assert any("releasing" in e.get("log_format", "") for e in logged)


def test_the_redis_prefix_separates_clusters_by_database():
    from beachmanager import config
    from beachmanager.assign.build import redis_prefix

    one = redis_prefix(config.defaults(database_url="postgresql://u@db:5432/one"))
    same = redis_prefix(config.defaults(database_url="postgresql://other:secret@db/one"))
    two = redis_prefix(config.defaults(database_url="postgresql://u@db:5432/two"))
    assert one == same != two and one.startswith("beach:{assign:") and one.endswith("}:")
    assert redis_prefix(config.defaults()) == "beach:{assign}:"
