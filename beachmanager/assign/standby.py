"""Which hosts this instance keeps a warm standby session to (hot failover, first part).

For every host, the standby is the first instance in the host's rendezvous ranking, after
its owner, that is live, serving and has room: the instance that the sweep would pick as
the next owner if the owner died.  Holding a standby session there means that taking the
host over is a promotion of a transport already up (no Argon2id, no Noise, no ICE), not an
attach from scratch.  A host whose owner is the only live instance has no standby.

:func:`plan` is pure: members and owners in, the standby sessions to start and stop out,
at most *budget* of each per call, so that standbys follow membership changes a few at a
time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import Member
from .rendezvous import SERVING, rank


@dataclass(frozen=True)
class StandbyPlan:
    start: tuple[str, ...]  # hosts to open a standby session to
    stop: tuple[str, ...]  # standby sessions to close (no longer second in rank)
    wanted: frozenset[str]  # every host this instance should stand by for


def standby_of(host: str, owner: str, members: Mapping[str, Member]) -> str | None:
    """The instance that should keep the standby session to *host* (None: nobody can)."""
    for instance_id in rank(host, members):
        m = members[instance_id]
        if instance_id == owner or not m.live or m.state != SERVING:
            continue
        if m.load >= m.capacity:
            continue  # full: skipped, as the sweep would skip it
        return instance_id
    return None


def plan(me: str, members: Iterable[Member], owners: Mapping[str, str],
         held: Iterable[str], budget: int) -> StandbyPlan:
    """*owners*: host -> owning instance; *held*: hosts this instance stands by for now."""
    by_id = {m.id: m for m in members}
    wanted = frozenset(h for h, owner in owners.items()
                       if owner != me and standby_of(h, owner, by_id) == me)
    held_set = set(held)
    start = tuple(sorted(wanted - held_set)[:max(0, budget)])
    stop = tuple(sorted(held_set - wanted)[:max(0, budget)])
    return StandbyPlan(start, stop, wanted)


__all__ = ["StandbyPlan", "plan", "standby_of"]
