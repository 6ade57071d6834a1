"""The attach attempt machine: a total table, the phase order, and what every timeout,
failure and loss means in each step; pure (no clock, no I/O)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from beachmanager.protocol import attach as A
from beachmanager.protocol.attach import (
    INPUTS,
    PHASES,
    TABLE,
    TERMINAL,
    WAITS,
    Action,
    AttachMachine,
    State,
    Timeouts,
)

SAMPLES: dict[type, A.Input] = {
    A.Start: A.Start(100.0), A.SlotAcquired: A.SlotAcquired(),
    A.AttachAnswered: A.AttachAnswered("ps-1"), A.SignalingOpened: A.SignalingOpened("me"),
    A.HostJoined: A.HostJoined("host"), A.OfferReceived: A.OfferReceived("hid", True),
    A.KeyDerived: A.KeyDerived(), A.KeyFailed: A.KeyFailed("cannot derive the session key: x"),
    A.PeerCreated: A.PeerCreated(), A.AnswerBuilt: A.AnswerBuilt("v=0"),
    A.AnswerPosted: A.AnswerPosted(3), A.IceConnected: A.IceConnected(),
    A.ChannelOpened: A.ChannelOpened(A.BEACH, frozenset({A.BEACH})),
    A.HandshakeDone: A.HandshakeDone(), A.HandshakeFailed: A.HandshakeFailed("bad mac"),
    A.OfferReadyReceived: A.OfferReadyReceived(102.5), A.TimerFired: A.TimerFired("x"),
    A.StepFailed: A.StepFailed("Road answered 500", "road_error"),
    A.PeerLost: A.PeerLost("ICE failed"), A.SignalingLost: A.SignalingLost("signaling: gone"),
    A.LivenessConfirmed: A.LivenessConfirmed(1.0), A.Stop: A.Stop(),
}
#: Inputs that take a fresh machine to each state (secure host, handshake channel after beach).
PATH: list[tuple[State, list[A.Input]]] = [
    (State.IDLE, []),
    (State.QUEUED, [A.Start(100.0)]),
    (State.ATTACHING, [A.SlotAcquired()]),
    (State.JOINING, [A.AttachAnswered("ps-1")]),
    (State.WAITING_HOST, [A.SignalingOpened("me")]),
    (State.POLLING, [A.HostJoined("host")]),
    (State.KEYING, [A.OfferReceived("hid", True)]),
    (State.PEERING, [A.KeyDerived()]),
    (State.ANSWERING, [A.PeerCreated()]),
    (State.POSTING, [A.AnswerBuilt("v=0")]),
    (State.CONNECTING, [A.AnswerPosted(3)]),
    (State.OPENING, [A.IceConnected()]),
    (State.GRACE, [A.ChannelOpened(A.BEACH, frozenset({A.BEACH}))]),
    (State.SECURING, [A.ChannelOpened(A.HANDSHAKE)]),
    (State.ANNOUNCING, [A.HandshakeDone()]),
    (State.UP, [A.OfferReadyReceived(102.5)]),
]


def machine(secure: bool = True, **timeouts: float) -> AttachMachine:
    return AttachMachine(Timeouts(**timeouts), secure_expected=secure, can_handshake=secure)


def at(state: State, secure: bool = True) -> AttachMachine:
    """A fresh machine driven to *state* (terminal states: by a failure, loss or stop)."""
    m = machine(secure)
    if state is State.STOPPED:
        m.handle(A.Stop())
        return m
    if state in (State.FAILED, State.LOST):
        feed(m, *[e for _, events in PATH for e in events])
        if state is State.FAILED:
            m = machine(secure)
            feed(m, A.Start(0.0), A.StepFailed("no"))
        else:
            m.handle(A.PeerLost("gone"))
        assert m.state is state
        return m
    for s, events in PATH:
        feed(m, *events)
        if s is state:
            break
    assert m.state is state, (state, m.state)
    return m


def feed(m: AttachMachine, *events: A.Input) -> list[A.Command]:
    out: list[A.Command] = []
    for e in events:
        out.extend(m.handle(e).commands)
    return out


def kinds(commands: list[A.Command]) -> list[str]:
    return [type(c).__name__ for c in commands]


def test_the_table_names_an_action_for_every_input_in_every_state_and_every_pair_answers():
    assert set(TABLE) == set(State)
    for state in State:
        assert set(TABLE[state]) == set(INPUTS), state
    assert set(SAMPLES) == set(INPUTS)
    for state, kind in itertools.product(State, INPUTS):
        m = at(state)
        event = SAMPLES[kind]
        if kind is A.TimerFired and m.timer is not None:
            event = A.TimerFired(m.timer)
        result = m.handle(event)
        assert isinstance(result, A.Result)
        if TABLE[state][kind] is Action.IGNORE:
            assert result.ignored and not result.commands, (state, kind)
            assert m.state is state
        for c in result.commands:
            assert dataclasses.is_dataclass(c) and type(c).__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_terminal_states_ignore_everything_and_stop_ends_every_live_state():
    for state, kind in itertools.product(State, INPUTS):
        if state in TERMINAL:
            assert TABLE[state][kind] is Action.IGNORE
        elif kind is A.Stop:
            assert TABLE[state][kind] is Action.STOP
    for state in State:
        if state not in TERMINAL:
            m = at(state)
            cmds = m.handle(A.Stop()).commands
            assert m.state is State.STOPPED
            assert cmds == ((A.CancelTimer(state.value),) if state in WAITS else ())


def test_the_happy_path_walks_the_phases_in_order_with_their_details():
    m = machine()
    out = feed(m, *[e for _, events in PATH for e in events])
    started = [c.phase for c in out if isinstance(c, A.PhaseStarted)]
    done = {c.phase: dict(c.detail) for c in out if isinstance(c, A.PhaseDone)}
    assert started == list(PHASES) and list(done) == list(PHASES)
    assert done["attach"] == {"my_peer_id": "me"}
    assert done["offer"] == {"handshake_id": "hid", "sealed": True}
    assert done["answer"] == {"post_tries": 3}
    assert done["dc_open"] == {"channels": (A.BEACH, A.HANDSHAKE)}
    assert done["handshake"] == {"secure": True}
    assert done["ready"] == {"rtc_ready_seconds": 2.5}
    assert A.Succeeded(2.5) in out and A.ReleaseSlot() in out
    assert out[-1] == A.StartTimer("up", 45.0) and m.secure
    assert kinds(out).index("DeriveKey") < kinds(out).index("PostAttach")
    assert A.PostAnswer("v=0") in out and A.WaitChannel(A.HANDSHAKE) in out


def test_every_timer_is_cancelled_when_its_state_is_left():
    m = machine()
    out = feed(m, *[e for _, events in PATH for e in events])
    started = [c.name for c in out if isinstance(c, A.StartTimer)]
    cancelled = [c.name for c in out if isinstance(c, A.CancelTimer)]
    assert started[:-1] == cancelled  # all but the heartbeat, which runs while up


@pytest.mark.parametrize("state", [s for s in WAITS if s not in (State.GRACE, State.ANNOUNCING,
                                                                 State.UP)])
def test_a_timeout_fails_its_phase_with_the_wait_named(state):
    m = at(state)
    seconds = float(getattr(m.timeouts, WAITS[state].timeout))
    cmds = m.handle(A.TimerFired(state.value)).commands
    assert cmds == (A.Failed(state.phase or "", f"timed out after {seconds:.1f}s waiting for "
                             f"{WAITS[state].what}", "timeout"),)
    assert m.state is State.FAILED


def test_timeouts_come_from_the_settings():
    m = machine(phase_timeout=3.0, offer_timeout=7.0)
    out = feed(m, A.Start(0), A.SlotAcquired(), A.AttachAnswered("p"), A.SignalingOpened("me"))
    assert [c for c in out if isinstance(c, A.StartTimer)] == [
        A.StartTimer("attach.road", 3.0), A.StartTimer("attach.signaling", 3.0),
        A.StartTimer("attach.host", 7.0)]
    assert m.handle(A.TimerFired("attach.host")).commands[0].reason == (  # type: ignore[union-attr]
        "timed out after 7.0s waiting for the host to join the room")


def test_a_stale_timer_is_ignored():
    m = at(State.JOINING)
    r = m.handle(A.TimerFired("attach.road"))
    assert r.ignored and "stale" in r.ignored and m.state is State.JOINING


def test_no_handshake_channel_within_the_grace_continues_without_secure_transport():
    m = at(State.GRACE)
    cmds = m.handle(A.TimerFired("dc_open.handshake")).commands
    assert cmds[:2] == (A.CancelWait(A.HANDSHAKE), A.InsecureFallback(A.HANDSHAKE, 2.0))
    assert A.PhaseDone("dc_open", (("channels", (A.BEACH,)),)) in cmds
    assert A.PhaseDone("handshake", (("secure", False),)) in cmds
    assert m.state is State.ANNOUNCING and not m.secure and A.SendReady() in cmds


def test_a_handshake_channel_open_with_beach_needs_no_grace():
    m = at(State.OPENING)
    cmds = m.handle(A.ChannelOpened(A.BEACH, frozenset({A.BEACH, A.HANDSHAKE}))).commands
    assert not any(isinstance(c, A.WaitChannel) for c in cmds)
    assert m.state is State.SECURING and m.secure
    assert m.timer == "handshake"


def test_a_host_that_opens_the_handshake_channel_gets_secure_transport_even_unexpected():
    m = machine(secure=False)
    m.can_handshake = True  # insecure overrides on our side, a join code present
    feed(m, *[e for _, events in PATH[:12] for e in events])
    assert m.state is State.OPENING
    m.handle(A.ChannelOpened(A.BEACH, frozenset({A.BEACH, A.HANDSHAKE})))
    assert m.state is State.SECURING and m.secure


def test_a_plain_session_skips_the_grace_and_the_handshake_without_a_warning():
    m = at(State.OPENING, secure=False)
    cmds = m.handle(A.ChannelOpened(A.BEACH, frozenset({A.BEACH}))).commands
    assert m.state is State.ANNOUNCING and not m.secure
    assert not any(isinstance(c, A.InsecureFallback | A.WaitChannel) for c in cmds)


def test_no_offer_ready_names_the_upstream_single_peer_limit():
    m = at(State.ANNOUNCING)
    (failed,) = m.handle(A.TimerFired("ready")).commands
    assert isinstance(failed, A.Failed) and failed.code == "no_offer_ready"
    assert failed.phase == "ready" and "within 10s" in failed.reason


def test_facts_that_come_early_are_used_on_entry():
    m = at(State.ATTACHING)
    feed(m, A.KeyDerived())
    out = feed(m, A.AttachAnswered("p"), A.SignalingOpened("me"), A.HostJoined("h"),
               A.OfferReceived("hid", False))
    assert m.state is State.PEERING and A.OpenOffer() in out
    m = at(State.OPENING)
    feed(m, A.HandshakeDone(), A.OfferReadyReceived(101.0))
    out = feed(m, A.ChannelOpened(A.BEACH, frozenset({A.BEACH, A.HANDSHAKE})))
    assert m.state is State.UP and A.Succeeded(1.0) in out


def test_a_key_failure_is_permanent_and_fails_the_offer_phase():
    m = at(State.ATTACHING)
    feed(m, A.KeyFailed("cannot derive the session key: weak"))
    out = feed(m, A.AttachAnswered("p"), A.SignalingOpened("me"), A.HostJoined("h"),
               A.OfferReceived("hid", True))
    assert out[-1] == A.Failed("offer", "cannot derive the session key: weak", "session_key",
                               permanent=True)


def test_a_handshake_failure_fails_the_handshake_phase_early_or_late():
    m = at(State.SECURING)
    (cancel, failed) = m.handle(A.HandshakeFailed("bad mac")).commands
    assert cancel == A.CancelTimer("handshake")
    assert failed == A.Failed("handshake", "secure handshake failed: bad mac", "handshake_failed")
    m = at(State.GRACE)
    m.handle(A.HandshakeFailed("bad mac"))
    out = m.handle(A.ChannelOpened(A.HANDSHAKE)).commands
    assert out[-1] == A.Failed("handshake", "secure handshake failed: bad mac", "handshake_failed")


def test_a_refused_join_code_is_permanent():
    m = at(State.ATTACHING)
    out = m.handle(A.StepFailed("Road rejected the join code (401)", "bad_join_code",
                                permanent=True)).commands
    assert out[-1] == A.Failed("attach", "Road rejected the join code (401)", "bad_join_code",
                               permanent=True)


def test_a_loss_while_negotiating_fails_the_phase_and_after_ready_is_a_loss():
    m = at(State.CONNECTING)
    out = m.handle(A.SignalingLost("signaling: WebSocket closed", "ws_closed")).commands
    assert out == (A.CancelTimer("ice"), A.Failed("ice", "signaling: WebSocket closed",
                                                  "ws_closed"))
    m = at(State.UP)
    out = m.handle(A.PeerLost("the host sent Shutdown", "host_shutdown")).commands
    assert out == (A.CancelTimer("up"), A.Lost("the host sent Shutdown", "host_shutdown"))
    assert m.state is State.LOST and m.outcome == out[-1]


def test_the_heartbeat_rearms_for_the_rest_and_loses_a_silent_host():
    m = at(State.UP)
    assert m.handle(A.TimerFired("up", silent=44.8)).commands == (A.StartTimer("up", 0.5),)
    assert m.handle(A.TimerFired("up", silent=30.0)).commands == (A.StartTimer("up", 15.0),)
    (lost,) = m.handle(A.TimerFired("up", silent=46.0)).commands
    assert lost == A.Lost("nothing from the host for 46s (heartbeats stopped)", "heartbeat_timeout")


def test_a_host_that_answers_bus_heartbeats_is_lost_after_the_short_timeout():
    m = at(State.UP)
    assert m.handle(A.LivenessConfirmed(1.0)).commands == (A.CancelTimer("up"),
                                                          A.StartTimer("up", 1.0))
    assert m.handle(A.LivenessConfirmed(2.0)).commands == ()  # never lengthened
    assert m.handle(A.TimerFired("up", silent=0.9)).commands == (A.StartTimer("up", 0.25),)
    (lost,) = m.handle(A.TimerFired("up", silent=1.2)).commands
    assert lost == A.Lost("nothing from the host for 1.2s (it stopped answering bus heartbeats)",
                          "liveness_timeout")
    assert at(State.ANNOUNCING).handle(A.LivenessConfirmed(1.0)).ignored


def test_a_wrong_channel_is_ignored_with_a_reason():
    m = at(State.OPENING)
    r = m.handle(A.ChannelOpened(A.HANDSHAKE))
    assert r.ignored and m.state is State.OPENING
