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

Nothing here does I/O or reads a clock.  The table is total: every event has a defined
result in every state (:data:`STAY` marks an event the state ignores, e.g. a late
``failed`` from an attempt winding down after ``stop``), and :func:`next_state` answers
for every pair.  A test walks all of them.
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


S, E = SessionState, SessionEvent

#: The result of an event a state ignores: the state stays as it is.
STAY = None

#: state -> event -> next state (or STAY), for every state and every event.
TRANSITIONS: dict[SessionState, dict[SessionEvent, SessionState | None]] = {
    S.IDLE: {E.ATTEMPT: S.ATTACHING, E.READY: STAY, E.LOST: STAY, E.FAILED: S.BACKOFF,
             E.REFUSED: S.REJECTED, E.STOP: S.STOPPED},
    S.ATTACHING: {E.ATTEMPT: STAY, E.READY: S.READY, E.LOST: S.BACKOFF, E.FAILED: S.BACKOFF,
                  E.REFUSED: S.REJECTED, E.STOP: S.STOPPED},
    S.READY: {E.ATTEMPT: STAY, E.READY: STAY, E.LOST: S.BACKOFF, E.FAILED: S.BACKOFF,
              E.REFUSED: S.REJECTED, E.STOP: S.STOPPED},
    S.BACKOFF: {E.ATTEMPT: S.ATTACHING, E.READY: STAY, E.LOST: STAY, E.FAILED: STAY,
                E.REFUSED: S.REJECTED, E.STOP: S.STOPPED},
    # final states: only the removal of a rejected session changes anything
    S.REJECTED: {E.ATTEMPT: STAY, E.READY: STAY, E.LOST: STAY, E.FAILED: STAY, E.REFUSED: STAY,
                 E.STOP: S.STOPPED},
    S.STOPPED: {E.ATTEMPT: STAY, E.READY: STAY, E.LOST: STAY, E.FAILED: STAY, E.REFUSED: STAY,
                E.STOP: STAY},
}

#: States from which the session no longer works towards a transport.
FINAL = frozenset({S.REJECTED, S.STOPPED})
#: States in which the session holds, or works towards, a transport.
LIVE = frozenset({S.IDLE, S.ATTACHING, S.READY, S.BACKOFF})


def next_state(state: SessionState, event: SessionEvent) -> SessionState:
    """The state after *event* (the same state when *state* ignores it)."""
    found = TRANSITIONS[state][event]
    return state if found is STAY else found


__all__ = ["FINAL", "LIVE", "STAY", "TRANSITIONS", "SessionEvent", "SessionState", "next_state"]
