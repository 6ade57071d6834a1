"""The lifecycle of one host session, as data: events in, the next state out.

A host session (``transport.session.HostSession``) joins one host as a Beach client and
keeps the transport up.  Its coarse state is what the rest of the manager sees (the
session stream publishes every change); the phases of one attempt (attach, offer,
answer, ice, dc_open, handshake, ready) are detail inside ``ATTACHING``.

::

    IDLE --attempt--> ATTACHING --ready--> READY
    ATTACHING/READY --lost|failed--> BACKOFF --attempt--> ATTACHING
    ATTACHING --refused--> REJECTED            (a refused join code is permanent)
    any live state --stop--> STOPPED           (detached; final)

Nothing here does I/O or reads a clock: :func:`next_state` answers, or raises
:class:`InvalidTransition` for an event the state does not accept (a bug in the driver,
never a peer's doing: peers only cause ``lost`` and ``failed``).
"""

from __future__ import annotations

import enum


class SessionState(enum.Enum):
    """Where one host session is.  ``READY``: the bus sender is attached and may publish."""

    IDLE = "idle"
    ATTACHING = "attaching"
    READY = "ready"
    BACKOFF = "backoff"
    REJECTED = "rejected"  # permanent: the join code was refused
    STOPPED = "stopped"


class SessionEvent(enum.Enum):
    ATTEMPT = "attempt"  # an attempt starts (first, or after a backoff)
    READY = "ready"  # __offer_ready__ arrived and the bus sender is attached
    LOST = "lost"  # a ready transport went away
    FAILED = "failed"  # an attempt failed (retryable)
    REFUSED = "refused"  # an attempt failed for good (join code refused, no session key)
    STOP = "stop"  # the session is detached


class InvalidTransition(RuntimeError):
    def __init__(self, state: SessionState, event: SessionEvent):
        super().__init__(f"a session in {state.value} does not accept {event.value}")
        self.state, self.event = state, event


S, E = SessionState, SessionEvent

#: state -> event -> next state.  Absent pairs are invalid.
TRANSITIONS: dict[SessionState, dict[SessionEvent, SessionState]] = {
    S.IDLE: {E.ATTEMPT: S.ATTACHING, E.STOP: S.STOPPED},
    S.ATTACHING: {E.READY: S.READY, E.FAILED: S.BACKOFF, E.LOST: S.BACKOFF,
                  E.REFUSED: S.REJECTED, E.STOP: S.STOPPED},
    S.READY: {E.LOST: S.BACKOFF, E.FAILED: S.BACKOFF, E.STOP: S.STOPPED},
    S.BACKOFF: {E.ATTEMPT: S.ATTACHING, E.STOP: S.STOPPED},
    S.REJECTED: {E.STOP: S.STOPPED},
    S.STOPPED: {E.STOP: S.STOPPED},
}

#: States from which the session no longer works towards a transport.
FINAL = frozenset({S.REJECTED, S.STOPPED})
#: States in which the session holds, or works towards, a transport.
LIVE = frozenset({S.IDLE, S.ATTACHING, S.READY, S.BACKOFF})


def next_state(state: SessionState, event: SessionEvent) -> SessionState:
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise InvalidTransition(state, event) from None


__all__ = ["FINAL", "LIVE", "TRANSITIONS", "InvalidTransition", "SessionEvent", "SessionState",
           "next_state"]
