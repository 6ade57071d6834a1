"""The per-host action queue: its interface, values and errors.

One queue per host holds the actions a controller submitted and that have not been
finally acked.  Two implementations share these semantics (and one contract test
suite): :mod:`.queue_redis` (Redis Streams, one stream per host, a consumer group
shared by the managers, one consumer per manager instance) and :mod:`.queue_memory`
(the embedded default).

Semantics:

* ``enqueue`` is all-or-nothing against the bound: when ``depth + new > bound`` it
  raises :class:`QueueFull` (with a retry-after hint) and adds nothing.  Action ids
  are unique per host: an id that is queued, or was finished recently, is reported
  as a duplicate and not added again (resubmitting is idempotent).
* ``enqueue(..., consumer=c)`` also hands the accepted entries to consumer ``c`` at
  once, as ``read_new`` would (the manager that accepted them delivers them itself, so
  its reader need not read them back); entries nobody had read yet that were ahead of
  them are handed over in the same step and returned in ``EnqueueResult.claimed``.
* ``read_new`` hands entries nobody has read to one consumer; they stay *pending*
  for that consumer until ``finish``.  ``read_pending`` re-reads a consumer's own
  pending entries (after a restart under the same instance id); ``claim_stale``
  moves entries pending longer than ``min_idle`` seconds with any consumer to the
  caller (XAUTOCLAIM), so a dead manager's entries are redelivered.
* ``finish`` removes entries for good (XACK and delete) and remembers their ids as
  done with their final status, so a late resubmission stays a duplicate;
  ``lookup`` answers ``"queued"``, ``"done:<status>"`` or ``None`` for an id.
* ``depth`` counts entries not finished (read or not).

All methods are Twisted-side coroutines (they await Deferreds only).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Default bound of a host's queue (the legacy manager's 500).
DEFAULT_BOUND = 500
#: Finished ids remembered per host for idempotency.
DONE_MEMORY = 2048
#: Longest accepted action id, and most actions in one request.
MAX_ACTION_ID_LEN = 128
MAX_BATCH = 500


class QueueError(Exception):
    """The queue cannot serve the request (store unavailable or bad data)."""


class QueueUnavailable(QueueError):
    """The queue's store does not answer; the request may be retried."""


class QueueFull(QueueError):
    """The host's queue is at its bound; nothing was added."""

    def __init__(self, host: str, depth: int, bound: int, adding: int, retry_after: float = 1.0):
        self.host, self.depth, self.bound, self.adding = host, depth, bound, adding
        self.retry_after = retry_after
        super().__init__(f"queue for host {host} holds {depth} of {bound} actions; "
                         f"{adding} more do not fit")

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


@dataclass(frozen=True)
class NewAction:
    """An action to enqueue: the ActionCommand JSON object, who sent it (lease token and its
    private beach), when (epoch seconds)."""

    action_id: str
    command: dict[str, Any]
    controller_token: str | None = None
    enqueued_at: float = 0.0
    beach: str | None = None

    def encode(self) -> dict[str, str]:
        return {"id": self.action_id,
                "cmd": json.dumps(self.command, separators=(",", ":"), sort_keys=True),
                "tok": self.controller_token or "",
                "at": repr(float(self.enqueued_at)),
                "pb": self.beach or ""}


@dataclass(frozen=True)
class QueuedAction:
    """An entry read from a host's queue; ``entry_id`` is its position (stream id)."""

    host: str
    entry_id: str
    action_id: str
    command: dict[str, Any]
    controller_token: str | None
    enqueued_at: float
    beach: str | None = None

    def as_new(self) -> NewAction:
        return NewAction(self.action_id, self.command, self.controller_token, self.enqueued_at,
                         self.beach)

    @classmethod
    def decode(cls, host: str, entry_id: str, fields: dict[str, str]) -> QueuedAction:
        try:
            command = json.loads(fields["cmd"])
            if not isinstance(command, dict):
                raise ValueError("command is not an object")
            return cls(host=host, entry_id=entry_id, action_id=str(fields["id"]), command=command,
                       controller_token=fields.get("tok") or None,
                       enqueued_at=float(fields.get("at") or 0.0), beach=fields.get("pb") or None)
        except (KeyError, ValueError, TypeError) as e:
            raise QueueError(f"undecodable queue entry {entry_id} for host {host}: {e}") from None


@dataclass
class EnqueueResult:
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    depth: int = 0
    #: entry id of each accepted action
    entries: dict[str, str] = field(default_factory=dict)
    #: with ``consumer``: unread entries that were ahead of the new ones, now pending for it
    claimed: list[QueuedAction] = field(default_factory=list)


class ActionQueue(Protocol):
    """What the delivery engine and the REST route use (see the module text)."""

    bound: int
    #: consumer groups found missing and re-created (a sign the store lost its data)
    group_resets: int

    async def enqueue(self, host: str, actions: list[NewAction], *, force: bool = False,
                      consumer: str | None = None) -> EnqueueResult:
        """``force`` skips the bound (re-enqueueing actions already accepted); ``consumer``
        takes the new entries (and unread ones ahead of them) at once."""

    async def read_new(self, host: str, consumer: str, count: int) -> list[QueuedAction]: ...

    async def read_new_many(self, hosts: list[str], consumer: str, count: int,
                            block: float) -> dict[str, list[QueuedAction]]: ...

    async def read_pending(self, host: str, consumer: str, count: int) -> list[QueuedAction]: ...

    async def claim_stale(self, host: str, consumer: str, min_idle: float,
                          count: int) -> list[QueuedAction]: ...

    async def finish(self, host: str, done: list[tuple[str, str, str]]) -> None:
        """``done`` holds ``(action_id, entry_id, final status)``."""

    async def finish_many(self, done_by_host: dict[str, list[tuple[str, str, str]]]) -> None:
        """:meth:`finish` for several hosts at once (one round trip where the store allows)."""

    async def depth(self, host: str) -> int: ...

    async def lookup(self, host: str, action_id: str) -> str | None: ...

    async def server_epoch(self) -> str | None:
        """An id of the store's current run (None when it cannot restart apart from us)."""

    def forget_groups(self) -> None:
        """Re-create consumer groups on next use (after the store restarted)."""

    async def close(self) -> None: ...


def check_batch(actions: list[NewAction]) -> None:
    """Reject a batch with repeated ids (the route checks shapes; this guards the queue)."""
    if len(actions) > MAX_BATCH:
        raise QueueError(f"at most {MAX_BATCH} actions per request, got {len(actions)}")
    ids = [a.action_id for a in actions]
    if len(set(ids)) != len(ids):
        raise QueueError("the batch repeats an action id")
