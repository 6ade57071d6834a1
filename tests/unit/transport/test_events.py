"""The session stream: one ordered stream of changes, the latest state per host, no copies."""

import pytest

from beachmanager.transport.events import (
    HISTORY,
    Role,
    SessionEvents,
    SessionState,
    ready_of,
)

A, R, B, S = SessionState.ATTACHING, SessionState.READY, SessionState.BACKOFF, SessionState.STOPPED


def stream():
    now = [100.0]
    return SessionEvents(lambda: now[0]), now


def test_changes_carry_old_and_new_state_in_one_order():
    ev, now = stream()
    seen = []
    ev.subscribe(seen.append)
    ev.publish("h1", A)
    now[0] = 101.0
    ev.publish("h1", R, transport_id="t1")
    ev.publish("h2", A)
    assert [(c.host_session_id, c.old, c.new, c.seq) for c in seen] == [
        ("h1", None, A, 1), ("h1", A, R, 2), ("h2", None, A, 3)]
    assert seen[1].ready and seen[1].readiness_changed and seen[1].at == 101.0
    assert seen[1].transport_id == "t1" and seen[1].role is Role.ACTIVE
    assert ev.state("h1") is R and ev.is_ready("h1") and not ev.is_ready("h2")
    assert not ev.is_ready("h1", Role.STANDBY)


def test_repeats_are_not_published_and_a_role_change_is():
    ev, _ = stream()
    seen = []
    ev.subscribe(seen.append)
    ev.publish("h", R)
    assert ev.publish("h", R) is None
    ev.publish("h", R, role=Role.STANDBY)
    assert [(c.new, c.role) for c in seen] == [(R, Role.ACTIVE), (R, Role.STANDBY)]
    assert not seen[1].readiness_changed


def test_removal_is_a_final_change_and_forgets_the_host():
    ev, _ = stream()
    seen = []
    ev.publish("h", R)
    ev.subscribe(seen.append)
    ev.publish("h", S, removed=True)
    assert seen[-1].removed and seen[-1].was_ready and not seen[-1].ready
    assert not ev.managed("h") and ev.state("h") is None and len(ev) == 0
    assert ev.publish("h", S, removed=True) is None  # nothing to remove twice


def test_a_change_made_by_a_subscriber_reaches_everyone_after_the_current_one():
    ev, _ = stream()
    first, second = [], []

    def reacting(change):
        first.append((change.host_session_id, change.new))
        if change.host_session_id == "h1" and change.ready:
            ev.publish("h2", A)  # e.g. a standby moving when a primary is up

    ev.subscribe(reacting)
    ev.subscribe(lambda c: second.append((c.host_session_id, c.new)))
    ev.publish("h1", R)
    assert first == second == [("h1", R), ("h2", A)]


def test_a_failing_subscriber_does_not_stop_the_others():
    ev, _ = stream()
    seen = []

    def broken(change):
        raise RuntimeError("bug")

    ev.subscribe(broken)
    ev.subscribe(seen.append)
    ev.publish("h", A)
    assert len(seen) == 1


def test_unsubscribe_and_replay():
    ev, _ = stream()
    ev.publish("h1", R)
    ev.publish("h2", B)
    seen = []
    undo = ev.subscribe(seen.append, replay=True)
    assert {(c.host_session_id, c.new) for c in seen} == {("h1", R), ("h2", B)}
    undo()
    ev.publish("h3", A)
    assert len(seen) == 2


def test_wait_for_fires_on_the_current_state_or_the_next_match_and_can_be_cancelled():
    ev, _ = stream()
    ev.publish("up", R)
    got = []
    ev.wait_for(ready_of("up")).addCallback(got.append)
    assert got and got[0].host_session_id == "up"
    later = ev.wait_for(ready_of("h"))
    ev.publish("h", A)
    assert not later.called
    ev.publish("h", R)
    assert later.called and later.result.new is R
    cancelled = ev.wait_for(ready_of("never"))
    cancelled.cancel()
    cancelled.addErrback(lambda f: None)
    assert ev._waiters == []  # a cancelled wait is forgotten


def test_counts_hosts_and_a_bounded_history():
    ev, _ = stream()
    for n in range(HISTORY + 10):
        ev.publish(f"h{n}", A)
    ev.publish("h0", R)
    assert ev.counts() == {"attaching": HISTORY + 9, "ready": 1}
    assert len(list(ev.hosts())) == HISTORY + 10
    recent = ev.recent()
    assert len(recent) == HISTORY and recent[-1].host_session_id == "h0"
    assert [c.host_session_id for c in ev.recent(2)] == [f"h{HISTORY + 9}", "h0"]
    assert ev.recent(0) == []


@pytest.mark.parametrize("state", list(SessionState))
def test_every_state_is_readiness_only_when_ready(state):
    ev, _ = stream()
    change = ev.publish("h", state)
    assert change.ready is (state is SessionState.READY)
