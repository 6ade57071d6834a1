"""A host session's failure handling on a fake clock: phase timeouts, permanent
rejection, capped backoff, the attach gate, stopping; every state change on the stream."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.task import Clock

from beachmanager.bus.bus import HostBus, TopicTable
from beachmanager.telemetry.metrics import Metrics
from beachmanager.transport.errors import AttachError
from beachmanager.transport.events import SessionEvents, SessionState
from beachmanager.transport.session import AttachSettings, HostSession


class FakeRoad:
    """Road's HTTP side: ``attach`` hangs, or fails as told."""

    def __init__(self, fail: AttachError | None = None):
        self.fail = fail
        self.calls: list[float] = []
        self.pending: list[Deferred] = []

    def __init_clock__(self, clock):
        self.clock = clock

    async def attach(self, host_session_id, join_code, peer_id):
        self.calls.append(self.clock.seconds())
        if self.fail is not None:
            raise self.fail
        d: Deferred = Deferred()
        self.pending.append(d)
        return await d


class FakeKeys:
    def get(self, join_code, host_session_id):
        return succeed(b"k" * 32)


def machine(road, clock, metrics=None, **settings):
    road.__init_clock__(clock)
    s = AttachSettings(road_url="http://road.invalid", backoff_initial=0.5, backoff_max=4.0,
                       **settings)
    metrics = metrics or Metrics(CollectorRegistry())
    events = SessionEvents(clock.seconds)
    return HostSession("host-1", "ABC123", s, reactor=clock, clock=clock, road=road,
                       keys=FakeKeys(), metrics=metrics, bus=HostBus("host-1", TopicTable({})),
                       events=events, jitter=lambda: 0.0)


def states(m):
    """The session's changes on the stream, in order."""
    return [c.new.value for c in m.events.recent()]


def sample(m, name, **labels):
    return m.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_phase_timeout_names_the_phase_counts_it_and_retries_after_backoff():
    clock, road = Clock(), FakeRoad()
    m = machine(road, clock, phase_timeout=10.0)
    m.start()
    assert m.state is SessionState.ATTACHING and len(road.calls) == 1
    clock.advance(10.0)
    assert m.last_error["phase"] == "attach" and m.last_error["code"] == "timeout"
    assert "timed out after 10.0s" in m.last_error["reason"]
    assert sample(m, "attach_failure_total", phase="attach") == 1
    assert m.state is SessionState.BACKOFF
    clock.advance(0.5)  # first backoff step (no jitter)
    assert len(road.calls) == 2 and m.attempts == 2
    assert sample(m, "transport_reconnect_total") == 1
    assert states(m) == ["idle", "attaching", "backoff", "attaching"]
    assert m.events.recent()[-2].reason.startswith("timed out after 10.0s")  # the backoff's why
    statuses = [(e["phase"], e["status"]) for e in m.timeline]
    assert statuses[:3] == [("attach", "pending"), ("attach", "failed"), ("reconnect", "pending")]


def test_backoff_doubles_and_is_capped_so_a_dead_host_cannot_cause_a_storm():
    clock, road = Clock(), FakeRoad(fail=AttachError("attach", "Road answered 500", code="road_error"))
    m = machine(road, clock)
    m.start()
    for _ in range(200):
        clock.advance(0.25)
    gaps = [b - a for a, b in zip(road.calls, road.calls[1:], strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(gaps) == 4.0  # capped
    assert len(road.calls) <= 16  # 50 s of a dead Road: a dozen attempts, not hundreds


def test_a_rejected_join_code_stops_the_machine_and_fails_waiters():
    clock = Clock()
    road = FakeRoad(fail=AttachError("attach", "Road rejected the join code (401)", permanent=True,
                                     code="bad_join_code"))
    m = machine(road, clock)
    waiter = m.when_ready()
    m.start()
    failures = []
    waiter.addErrback(failures.append)
    assert failures and failures[0].value.code == "bad_join_code"
    assert m.state is SessionState.REJECTED
    assert states(m) == ["idle", "attaching", "rejected"]
    clock.advance(100)
    assert len(road.calls) == 1
    late = []
    m.when_ready().addErrback(late.append)
    assert late[0].value.permanent


def test_stop_cancels_the_attempt_and_ends_the_loop():
    clock, road = Clock(), FakeRoad()
    m = machine(road, clock)
    m.start()
    stopped = []
    m.stop().addCallback(stopped.append)
    assert stopped == [None] and m.state is SessionState.STOPPED
    last = m.events.recent()[-1]
    assert (last.new, last.removed) == (SessionState.STOPPED, True)
    assert not m.events.managed("host-1")  # the stream forgets a detached host
    clock.advance(100)
    assert len(road.calls) == 1
    assert sample(m, "attach_failure_total", phase="attach") == 0  # a stop is not a failure


def test_the_gate_lets_only_so_many_attempts_negotiate_at_once():
    clock, gate = Clock(), DeferredSemaphore(1)
    roads = [FakeRoad(), FakeRoad()]
    machines = [machine(r, clock, gate=gate, phase_timeout=10.0) for r in roads]
    for m in machines:
        m.start()
    assert [len(r.calls) for r in roads] == [1, 0]  # the second host queues
    clock.advance(10.0)  # the first attempt times out and frees the slot
    assert [len(r.calls) for r in roads] == [1, 1]
    for m in machines:
        m.stop()


def test_every_attempt_command_has_an_executor():
    import typing

    from beachmanager.protocol import attach as am
    from beachmanager.transport.session import EXECUTORS

    assert set(EXECUTORS) == set(typing.get_args(am.Command))
