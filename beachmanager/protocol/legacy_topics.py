"""The legacy bus topic names, mapped to today's: one shim, easy to delete.

The plan advertises ``extensions.namespaces=["manager"]`` only and maps legacy labels on the
client side until every host is updated.  These are the older names of the harness topics
in namespace ``manager`` that the reference names (``wire-framing-and-bus.md`` §4.2):

=================== ============================ =====================================
legacy topic         today's topic                who accepts it
=================== ============================ =====================================
``controller/input`` ``beach.manager.action``     the harness (actions in)
``controller/ack``   ``beach.manager.ack``        the manager (acks in)
``state/host``       ``beach.manager.state``      the manager (state in)
``state/health``     ``beach.manager.health``     the manager (health in)
=================== ============================ =====================================

Nothing is ever *sent* under a legacy name.  The pongification ``fastpath`` namespace and the
legacy manager's second peer connection (``mgr-actions``...) are not mapped: no host this
manager joins speaks them.  To delete the shim: remove this module and its two uses
(``bus/subscriber.py``, ``harness/subscriber.py``) and ``protocol.extensions``'s alias.

Sans-I/O: names only.
"""

from __future__ import annotations

from .extensions import TOPIC_ACK, TOPIC_ACTION, TOPIC_HEALTH, TOPIC_STATE

#: legacy topic -> today's, for what the harness consumes
HARNESS_INBOUND = {"controller/input": TOPIC_ACTION}
#: legacy topic -> today's, for what the manager consumes
MANAGER_INBOUND = {"controller/ack": TOPIC_ACK, "state/host": TOPIC_STATE,
                   "state/health": TOPIC_HEALTH}
ALIASES = {**HARNESS_INBOUND, **MANAGER_INBOUND}


def canonical(topic: str) -> str:
    """Today's name of *topic* (itself when it is not a legacy name)."""
    return ALIASES.get(topic, topic)


def aliases_of(topic: str, table: dict[str, str]) -> tuple[str, ...]:
    """The legacy names in *table* that mean *topic*."""
    return tuple(old for old, new in table.items() if new == topic)


__all__ = ["ALIASES", "HARNESS_INBOUND", "MANAGER_INBOUND", "aliases_of", "canonical"]
