"""What the harness consumes from the bus, and how each action is answered.

Topics consumed:

* ``beach.manager.action`` -- action envelopes ``{"type": "action", "payload": ActionCommand}``;
* ``controller/input``     -- legacy alias carrying the same envelope
  (:mod:`beachmanager.protocol.legacy_topics`).

The association (who is the active manager, at which epoch) reaches :attr:`fence` through
:mod:`.association`.

Rules: an unparsable envelope is logged and gets no ack (as beach-buggy); an
action id seen before is acked again with its first ack and never applied twice
(the last ``dedup_size`` ids are remembered); ``expires_at`` in the past gives
``expired`` without applying; ``terminal_write`` with a string ``payload.bytes``
is queued for the PTY and acked ``ok`` once written; anything else is
``rejected`` with ``error_code`` ``unsupported_action``.  The action queue is
bounded: a full queue rejects with ``queue_full``.  An action stamped with an epoch older
than the newest seen (from a verified association or a newer action) is refused
``rejected``/``stale_epoch`` and not remembered, so the current owner's delivery of the same
id is applied (fencing: a former owner that wakes up applies nothing).  Once the active
manager's transport is known (the peer its association came over), an action from any other
peer is dropped without an ack and counted (``foreign_dropped``): a viewer that knows the join
code cannot drive the host.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ..protocol import fencing
from ..protocol import harness as hj
from ..protocol.extensions import TOPIC_ACTION
from ..protocol.legacy_topics import HARNESS_INBOUND, aliases_of

TOPICS = (TOPIC_ACTION, *aliases_of(TOPIC_ACTION, HARNESS_INBOUND))

TERMINAL_WRITE = "terminal_write"
ERROR_UNSUPPORTED = "unsupported_action"
ERROR_QUEUE_FULL = "queue_full"
ERROR_WRITE_FAILED = "write_failed"

DEFAULT_DEDUP_SIZE = 4096
DEFAULT_MAX_QUEUE = 256


class ActionSubscriber:
    log = Logger()

    def __init__(self, clock, *, write: Callable[[bytes], None], ack: Callable[[hj.ActionAck], None],
                 dedup_size: int = DEFAULT_DEDUP_SIZE, max_queue: int = DEFAULT_MAX_QUEUE):
        self.clock = clock
        self._write = write
        self._ack = ack
        self.dedup_size = dedup_size
        self.max_queue = max_queue
        self.queue: deque[hj.ActionCommand] = deque()
        #: action id -> its ack, or None while the action waits in the queue.
        self.seen: OrderedDict[str, hj.ActionAck | None] = OrderedDict()
        self._drain_call = None
        self.applied = 0
        self.replays = 0
        self.unparsable = 0
        self.queue_full_rejects = 0
        self.fence = fencing.Fence()

    @property
    def queue_depth(self) -> int:
        return len(self.queue)

    def handle(self, topic: str, payload: bytes, peer: str | None = None) -> None:
        """One bus message on an action topic."""
        try:
            action, epoch = hj.parse_fenced_action(payload)
        except hj.HarnessError as e:
            self.unparsable += 1
            self.log.warn("dropping unparsable action on {topic}: {error}", topic=topic, error=str(e))
            return
        if not self.fence.admits(epoch, peer):
            # not remembered: the current owner's delivery of this id must still apply
            self._ack(hj.ActionAck(id=action.id, status=hj.AckStatus.REJECTED,
                                   applied_at=hj.Timestamp.now(self.clock.seconds),
                                   error_code=fencing.STALE_EPOCH,
                                   error_message=fencing.stale_message(epoch or 0,
                                                                       self.fence.epoch)))
            return
        if self.fence.foreign(peer):
            self.log.debug("dropping action {id} from peer {peer}: not the active manager",
                           id=action.id, peer=peer)
            return
        if action.id in self.seen:
            self.replays += 1
            previous = self.seen[action.id]
            self.seen.move_to_end(action.id)
            if previous is not None:
                self._ack(previous)  # re-ack, never re-apply
            return
        if action.expires_at is not None and action.expires_at.to_seconds() <= self.clock.seconds():
            self._finish(action, hj.AckStatus.EXPIRED, message="the action expired before it was applied")
            return
        if action.action_type != TERMINAL_WRITE:
            self._finish(action, hj.AckStatus.REJECTED, ERROR_UNSUPPORTED,
                         f"unsupported action type {action.action_type!r}")
            return
        data = action.payload.get("bytes") if isinstance(action.payload, dict) else None
        if not isinstance(data, str):
            self._finish(action, hj.AckStatus.REJECTED, ERROR_UNSUPPORTED, "terminal_write needs payload.bytes")
            return
        if len(self.queue) >= self.max_queue:
            self.queue_full_rejects += 1
            self._finish(action, hj.AckStatus.REJECTED, ERROR_QUEUE_FULL,
                         f"action queue is full ({self.max_queue})")
            return
        self._remember(action.id, None)
        self.queue.append(action)
        if self._drain_call is None:
            self._drain_call = self.clock.callLater(0, self._drain)

    def _drain(self) -> None:
        self._drain_call = None
        while self.queue:
            action = self.queue.popleft()
            try:
                self._write(action.payload["bytes"].encode("utf-8"))
            except Exception as e:
                self._finish(action, hj.AckStatus.REJECTED, ERROR_WRITE_FAILED, str(e))
                continue
            self.applied += 1
            self._finish(action, hj.AckStatus.OK)

    def _finish(self, action: hj.ActionCommand, status: hj.AckStatus, code: str | None = None,
                message: str | None = None) -> None:
        ack = hj.ActionAck(id=action.id, status=status, applied_at=hj.Timestamp.now(self.clock.seconds),
                           latency_ms=None, error_code=code, error_message=message)
        self._remember(action.id, ack)
        self._ack(ack)

    def _remember(self, action_id: str, ack: hj.ActionAck | None) -> None:
        self.seen[action_id] = ack
        self.seen.move_to_end(action_id)
        while len(self.seen) > self.dedup_size:
            self.seen.popitem(last=False)

    def stop(self) -> None:
        if self._drain_call is not None and self._drain_call.active():
            self._drain_call.cancel()
        self._drain_call = None

    def status(self) -> dict[str, Any]:
        return {"queue_depth": self.queue_depth, "applied": self.applied, "replays": self.replays,
                "unparsable": self.unparsable, "remembered_ids": len(self.seen),
                "epoch": self.fence.epoch, "fenced": self.fence.refused,
                "foreign_dropped": self.fence.foreign_dropped}
