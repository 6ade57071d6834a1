"""The host-session lifecycle table: total, and the properties the rest of the manager relies on."""

import itertools

from beachmanager.protocol.session import (
    FINAL,
    LIVE,
    STAY,
    TRANSITIONS,
    SessionEvent,
    SessionState,
    next_state,
)

PAIRS = list(itertools.product(SessionState, SessionEvent))


def test_every_event_has_a_defined_result_in_every_state():
    assert set(TRANSITIONS) == set(SessionState)
    for state in SessionState:
        assert set(TRANSITIONS[state]) == set(SessionEvent), state
    for state, event in PAIRS:
        assert isinstance(next_state(state, event), SessionState)


def test_stop_always_ends_in_stopped_and_nothing_leaves_a_final_state_but_removal():
    for state in SessionState:
        assert next_state(state, SessionEvent.STOP) is SessionState.STOPPED
    for state, event in PAIRS:
        if state in FINAL and event is not SessionEvent.STOP:
            assert next_state(state, event) is state  # ignored


def test_ready_is_reached_only_from_an_attempt_and_left_only_by_loss_failure_or_stop():
    for state, event in PAIRS:
        new = next_state(state, event)
        if new is SessionState.READY and state is not SessionState.READY:
            assert (state, event) == (SessionState.ATTACHING, SessionEvent.READY)
        if state is SessionState.READY and new is not SessionState.READY:
            assert event in (SessionEvent.LOST, SessionEvent.FAILED, SessionEvent.REFUSED,
                             SessionEvent.STOP)


def test_a_retry_goes_through_backoff_and_an_attempt():
    s = SessionState.IDLE
    trail = [s]
    for event in (SessionEvent.ATTEMPT, SessionEvent.READY, SessionEvent.LOST,
                  SessionEvent.ATTEMPT, SessionEvent.FAILED, SessionEvent.ATTEMPT,
                  SessionEvent.REFUSED, SessionEvent.ATTEMPT):
        s = next_state(s, event)
        trail.append(s)
    assert [x.value for x in trail] == ["idle", "attaching", "ready", "backoff", "attaching",
                                        "backoff", "attaching", "rejected", "rejected"]
    assert STAY is None and LIVE.isdisjoint(FINAL) and LIVE | FINAL == set(SessionState)
