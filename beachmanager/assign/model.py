"""Values and errors of the assignment service, shared by both stores and the API.

Vocabulary: an *instance* is one manager process (``manager_instance_id``); a *member*
is an instance as the shared store sees it; a host session is *owned* by exactly one
instance at a time; a *move* changes a host's owner and is always recorded with the
old and new owner and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .rendezvous import DRAINING, SERVING, STATES

__all__ = ["DRAINING", "SERVING", "STATES"]

#: Why a host got its owner.  ``attach``: first placement; ``failover``: the owner stopped
#: heartbeating; ``drain``: the owner is shutting down; ``rebalance``: a better-ranked instance
#: (one that joined) has room; ``restore``: the shared store lost its records and the owner
#: re-claimed what it holds; ``release``: the host was let go.
REASONS = ("attach", "failover", "drain", "rebalance", "restore", "release")


class AssignmentError(Exception):
    """Base of the assignment service's errors."""


class CapacityExhausted(AssignmentError):
    """Every live serving instance is at capacity: the host is refused, never queued (HTTP 503)."""

    def __init__(self, host_session_id: str, members: int, serving: int):
        self.host_session_id = host_session_id
        self.members = members
        self.serving = serving
        super().__init__(f"no manager instance can take host {host_session_id}: "
                         f"{serving} serving instance(s) of {members} live, all at capacity")


class AssignmentUnavailable(AssignmentError):
    """The shared store (Redis) did not answer; the request may be retried (HTTP 503)."""


@dataclass(frozen=True)
class InstanceInfo:
    """What an instance publishes about itself on every heartbeat."""

    id: str
    endpoint: str
    capacity: int
    state: str = SERVING


@dataclass(frozen=True)
class Member:
    """An instance as read back from the shared store."""

    id: str
    endpoint: str
    capacity: int
    load: int
    state: str
    heartbeat_at_ms: int
    live: bool
    age_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint": self.endpoint, "capacity": self.capacity,
                "load": self.load, "state": self.state, "heartbeat_at_ms": self.heartbeat_at_ms,
                "heartbeat_age_ms": self.age_ms, "live": self.live}


@dataclass(frozen=True)
class Move:
    """One change of owner (``to`` is None when the host was released)."""

    host_session_id: str
    to: str | None
    from_: str | None
    reason: str
    at_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"host_session_id": self.host_session_id, "manager_instance_id": self.to,
                "reassigned_from": self.from_, "reason": self.reason, "at_ms": self.at_ms}


@dataclass(frozen=True)
class Decision:
    """The answer to "who owns this host?" when asked to place it.

    ``status`` is ``kept`` (already owned by a live instance: placement is sticky) or
    ``assigned`` (it just got ``owner``; ``move`` says from whom and why).
    """

    host_session_id: str
    status: str
    owner: str
    move: Move | None = None


@dataclass(frozen=True)
class Ownership:
    host_session_id: str
    owner: str
    assigned_at_ms: int
    reason: str
    reassigned_from: str | None
    ready: bool = False
    epoch: int = 0  # +1 on every change of owner; the owner's actions carry it (fencing)

    def as_json(self) -> dict[str, Any]:
        return {"host_session_id": self.host_session_id, "manager_instance_id": self.owner,
                "assigned_at_ms": self.assigned_at_ms, "reason": self.reason,
                "reassigned_from": self.reassigned_from, "ready": self.ready,
                "epoch": self.epoch}


@dataclass(frozen=True)
class Takeover:
    """The store's answer to a take-over on the host's word (``status``: ``taken``; or why
    not: ``moved`` (another owner now), ``stale`` (another epoch), ``recent`` (the owner took
    it less than the min interval ago), ``full`` (no room here))."""

    status: str
    owner: str | None
    epoch: int
    now_ms: int

    @property
    def taken(self) -> bool:
        return self.status == "taken"


@dataclass(frozen=True)
class Heartbeat:
    """The store's answer to a heartbeat: its clock, our load, and whether our record existed."""

    now_ms: int
    load: int
    existed: bool
    previous_incarnation: str | None = None


@dataclass
class SweepResult:
    """Hosts moved away from dead (or draining) owners, and hosts nobody had room for."""

    moves: list[Move] = field(default_factory=list)
    stranded: list[tuple[str, str]] = field(default_factory=list)  # (host, current owner)

    def by_old_owner(self) -> dict[str, list[Move]]:
        out: dict[str, list[Move]] = {}
        for m in self.moves:
            out.setdefault(m.from_ or "", []).append(m)
        return out
