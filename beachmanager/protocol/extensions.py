"""Extension frames as the manager bus uses them: namespace, topics and direction rules.

* Namespace ``"manager"``.  The extension ``kind`` carries the *topic*:
  ``beach.manager.action|ack|state|health``.  The JSON envelope's ``"type"`` field holds
  ``action|ack|state|health`` (see ``harness``).
* **Manager -> host**: a *client* Extension frame (header ``0x44``), in a binary transport
  message on framed ``"sync"``/``"binary"`` (:func:`encode_to_host`).
* **Host -> manager**: HEAD hosts also send ``0x44``; a fixed host may send ``0x4A``.
  ``wire.decode_from_host`` accepts both (rule 4).  :func:`encode_from_host` picks the layout
  for a host implementation.
* ``controller/input`` is a legacy alias for the action topic (:mod:`.legacy_topics`, with the
  other legacy names).  Topics are matched by suffix
  (``.action``, ``.ack``, ``.state``, ``.health``), as the Rust rewrite's ingest does.
"""

from __future__ import annotations

from beachmanager.protocol import wire
from beachmanager.protocol.frames import Extension

__all__ = [
    "ENVELOPE_TYPES",
    "NAMESPACE",
    "TOPIC_ACK",
    "TOPIC_ACTION",
    "TOPIC_ASSOCIATION",
    "TOPIC_HEALTH",
    "TOPIC_HEARTBEAT",
    "TOPIC_STATE",
    "encode_from_host",
    "encode_to_host",
    "envelope_type_for_topic",
    "topic_for",
]

NAMESPACE = "manager"
TOPIC_ACTION = "beach.manager.action"
TOPIC_ACK = "beach.manager.ack"
TOPIC_STATE = "beach.manager.state"
TOPIC_HEALTH = "beach.manager.health"
#: manager <-> harness: the signed beach association (who manages the host, at which ownership
#: epoch, its private beach, a bridge token...) and the harness's renewal requests
#: (:mod:`beachmanager.protocol.association`).  Consumers that do not know it ignore it.
TOPIC_ASSOCIATION = "beach.manager.association"
#: manager <-> harness liveness: a ping from each manager session every interval, answered to
#: that manager only (:mod:`beachmanager.protocol.liveness`).
TOPIC_HEARTBEAT = "beach.manager.heartbeat"
ENVELOPE_TYPES = ("action", "ack", "state", "health")
_TOPICS = {"action": TOPIC_ACTION, "ack": TOPIC_ACK, "state": TOPIC_STATE, "health": TOPIC_HEALTH}


def topic_for(envelope_type: str) -> str:
    """The topic for an envelope type: ``"ack"`` -> ``"beach.manager.ack"``."""
    try:
        return _TOPICS[envelope_type]
    except KeyError:
        raise ValueError(f"unknown envelope type {envelope_type!r}") from None


def envelope_type_for_topic(topic: str) -> str | None:
    """``action|ack|state|health`` for a topic (suffix match, legacy alias), else ``None``."""
    from .legacy_topics import canonical  # the shim imports this module: imported when used

    topic = canonical(topic)
    head, dot, last = topic.rpartition(".")
    if dot and head and last in _TOPICS:
        return last
    return None


def encode_to_host(topic: str, payload: bytes, namespace: str = NAMESPACE) -> bytes:
    """Wire bytes of a manager -> host extension (client layout, header ``0x44``)."""
    return wire.encode_client(Extension(namespace, topic, payload))


def encode_from_host(
    topic: str, payload: bytes, namespace: str = NAMESPACE, *, head_layout: bool = True
) -> bytes:
    """Wire bytes of a host -> manager extension.

    ``head_layout=True`` mimics HEAD hosts (client header ``0x44``); ``False`` uses the host
    header ``0x4A``.  Receivers must accept both.
    """
    frame = Extension(namespace, topic, payload)
    return wire.encode_client(frame) if head_layout else wire.encode_host(frame)
