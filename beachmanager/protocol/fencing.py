"""Ownership epochs on the bus: the harness's fencing rule.

Every change of a host's owner bumps its epoch in the assignment store.  The active manager
tells the host's harness its epoch in the signed association message (topic
``beach.manager.association``, :mod:`.association`) and stamps every action envelope with it
(``"epoch"``, an envelope field that consumers which do not know it ignore).  :class:`Fence` is the
harness's side: it keeps the newest epoch it has seen and refuses an action of an older
one, so a paused or partitioned former owner that wakes up applies nothing.

Sans-I/O: bytes and numbers in, values out.
"""

from __future__ import annotations

#: The ack error code of an action refused for its epoch.
STALE_EPOCH = "stale_epoch"
MAX_EPOCH = 2**63 - 1


def stale_message(refused: int, current: int) -> str:
    """The ack message of a refusal; it names the refused epoch because acks reach every
    peer of the host: only the manager whose epoch was refused is fenced by it."""
    return f"epoch {refused} is older than {current}"


def refused_epoch(message: str | None) -> int | None:
    """The refused epoch named by :func:`stale_message` (None when it names none)."""
    if not message or not message.startswith("epoch "):
        return None
    word = message[6:].split(" ", 1)[0]
    return int(word) if word.isdigit() else None


class Fence:
    """The newest epoch seen, and the peer (transport) of the manager holding it.

    Actions of an older epoch are refused.  Once the active manager's peer is known, actions
    from any other peer are not its to apply (a viewer that knows the join code, or a former
    owner's transport): :meth:`foreign` says so and the harness drops them."""

    def __init__(self) -> None:
        self.epoch = 0
        self.manager: str | None = None
        self.peer: str | None = None
        self.refused = 0
        self.foreign_dropped = 0

    def associate(self, manager_instance_id: str, epoch: int, peer: str | None = None) -> bool:
        """A (verified) association: True when it is news (a newer epoch, or the first); an
        older epoch changes nothing."""
        if epoch < self.epoch:
            return False
        news = epoch > self.epoch or self.manager is None
        self.epoch, self.manager = epoch, manager_instance_id
        if peer is not None:
            self.peer = peer
        return news

    def admits(self, epoch: int | None, peer: str | None = None) -> bool:
        """Whether an action stamped *epoch* may be applied (unstamped ones always may: a
        manager that does not fence).  A newer epoch makes its peer the active one."""
        if epoch is None:
            return True
        if epoch < self.epoch:
            self.refused += 1
            return False
        if epoch > self.epoch and peer is not None:
            self.peer = peer
        self.epoch = epoch
        return True

    def foreign(self, peer: str | None) -> bool:
        """Whether an action from *peer* comes from someone other than the active manager
        (counted; None, a local publish, never is)."""
        if peer is None or self.peer is None or peer == self.peer:
            return False
        self.foreign_dropped += 1
        return True

    def forget_peer(self, peer: str) -> None:
        """The active manager's transport went; the next association names its new one."""
        if self.peer == peer:
            self.peer = None


__all__ = ["STALE_EPOCH", "Fence", "refused_epoch", "stale_message"]
