"""Rendezvous (highest-random-weight) hashing of host sessions over manager instances.

The hash, exactly (it must agree with the Redis script in :mod:`.scripts`, so it is one
Redis Lua can compute: ``redis.sha1hex``):

    score(instance_id, host_session_id) =
        SHA-1( UTF-8(instance_id) || 0x00 || UTF-8(host_session_id) )
        read as an unsigned 160-bit big-endian integer

Instances are ranked by score, highest first; two equal scores (a SHA-1 collision) fall
back to the instance id, ascending by its UTF-8 bytes.  Neither id may contain NUL, so the
input is unambiguous.  SHA-1 is used for spread, not secrecy; nothing here is a security
boundary.

Every instance has the same weight: capacity is a hard cap, not a weight, so a host's
first choice never changes with load (the upstream weighted scores made placement drift).
:func:`choose` walks the ranking and takes the first instance that is serving and below
its capacity.  Removing one of *n* instances moves only the hosts it owned; adding one
takes about 1/(n+1) of the hosts' first choices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SERVING = "SERVING"
DRAINING = "DRAINING"
STATES = (SERVING, DRAINING)


class BadIdentifier(ValueError):
    """An instance or host id that cannot be hashed unambiguously (empty, NUL, not text)."""


def check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 256:
        raise BadIdentifier(f"{kind} must be 1-256 characters without NUL, got {value!r}")
    return value


def score(instance_id: str, host_session_id: str) -> int:
    """The rendezvous score of *host_session_id* on *instance_id* (see the module docstring)."""
    check_id("instance id", instance_id)
    check_id("host session id", host_session_id)
    digest = hashlib.sha1(instance_id.encode() + b"\x00" + host_session_id.encode()).digest()
    return int.from_bytes(digest, "big")


def rank(host_session_id: str, instance_ids: Iterable[str]) -> list[str]:
    """*instance_ids* ordered by preference for *host_session_id*, best first."""
    ids = set(instance_ids)
    return sorted(ids, key=lambda i: (-score(i, host_session_id), i.encode()))


@dataclass(frozen=True)
class Candidate:
    """What :func:`choose` needs to know about one instance."""

    id: str
    capacity: int
    load: int
    state: str = SERVING

    @property
    def has_room(self) -> bool:
        return self.state == SERVING and self.load < self.capacity


def choose(host_session_id: str, candidates: Iterable[Candidate],
           exclude: Iterable[str] = ()) -> Candidate | None:
    """The first instance in *host_session_id*'s ranking that is serving and has room.

    ``None`` when every candidate is full or draining (the caller refuses with 503).
    """
    by_id: Mapping[str, Candidate] = {c.id: c for c in candidates}
    skip = set(exclude)
    for instance_id in rank(host_session_id, by_id):
        c = by_id[instance_id]
        if instance_id not in skip and c.has_room:
            return c
    return None


def place(hosts: Iterable[str], candidates: Iterable[Candidate]) -> dict[str, str | None]:
    """Assign *hosts* one by one (in the given order), each taking a slot: host -> instance id.

    A model of what the atomic claims do when hosts arrive in this order; used by tests and
    the benchmark.  A host that finds every instance full maps to ``None``.
    """
    loads = {c.id: c for c in candidates}
    out: dict[str, str | None] = {}
    for host in hosts:
        chosen = choose(host, loads.values())
        out[host] = chosen.id if chosen else None
        if chosen is not None:
            loads[chosen.id] = Candidate(chosen.id, chosen.capacity, chosen.load + 1, chosen.state)
    return out
