"""Controller agents on the bus: the messages between an agent host and the manager.

An agent is a Beach host whose harness drives another host (the *target*) through the
manager, over its own transport, with no REST call.  Topics (namespace ``manager``; the full
design, with who publishes and who subscribes, is ``docs/bus-controllers.md``):

=========================== ============ ===================================================
topic                       direction    envelope ``type`` and payload
=========================== ============ ===================================================
``beach.manager.agent.lease``   agent->mgr   ``lease_request`` {request_id, target_session_id,
                                             token, bridge_token, private_beach_id?, ttl_ms?}
``beach.manager.agent.lease``   mgr->agent   ``lease`` {request_id, target_session_id,
                                             controller_token, expires_at_ms}
``beach.manager.agent.actions`` agent->mgr   ``actions`` {request_id, target_session_id, token,
                                             bridge_token, controller_token, private_beach_id?,
                                             actions[]}
``beach.manager.agent.acks``    mgr->agent   ``ack`` {target_session_id, ack (ActionAck)}
``beach.manager.agent.states``  mgr->agent   ``state`` {target_session_id, state (StateDiff)}
``beach.manager.agent.error``   mgr->agent   ``error`` {request_id?, target_session_id?, code,
                                             message}
=========================== ============ ===================================================

``token`` is a Beach Gate / Clerk JWT, verified like a REST call's bearer token (scope
``pb:control.write``, the target's private beach); ``bridge_token`` is the one the agent host's
own association gave it (it names the agent host and its private beach);
``controller_token`` is the lease's.  The
topic names do not end in ``.action|.ack|.state|.health``, so nothing that matches harness
topics by suffix mistakes them for harness traffic.

Sans-I/O: bytes in, values out; every field checked, every size bounded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TOPIC_LEASE = "beach.manager.agent.lease"
TOPIC_ACTIONS = "beach.manager.agent.actions"
TOPIC_ACKS = "beach.manager.agent.acks"
TOPIC_STATES = "beach.manager.agent.states"
TOPIC_ERROR = "beach.manager.agent.error"
#: What the manager consumes from agents, and what it sends them.
FROM_AGENT = (TOPIC_LEASE, TOPIC_ACTIONS)
TO_AGENT = (TOPIC_LEASE, TOPIC_ACKS, TOPIC_STATES, TOPIC_ERROR)

#: namespace -> topic -> logical lane (the bus tables of both ends)
AGENT_TOPICS = {"manager": {TOPIC_LEASE: "control_ordered", TOPIC_ACTIONS: "control_ordered",
                            TOPIC_ACKS: "control_ordered", TOPIC_STATES: "state_unordered",
                            TOPIC_ERROR: "control_ordered"}}

MAX_BYTES = 64 * 1024
MAX_ACTIONS = 64
MAX_ID = 128
MAX_TOKEN = 8192


class AgentError(ValueError):
    """An agent message that does not have the documented shape (``code`` names why)."""

    def __init__(self, message: str, code: str = "bad_message", request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class LeaseRequest:
    request_id: str
    target_session_id: str
    token: str
    private_beach_id: str | None = None
    ttl_ms: int | None = None
    bridge_token: str | None = None


@dataclass(frozen=True)
class ActionsRequest:
    request_id: str
    target_session_id: str
    token: str
    controller_token: str
    actions: tuple[Any, ...]  # raw action objects: validated by the controller's parser
    private_beach_id: str | None = None
    bridge_token: str | None = None


@dataclass(frozen=True)
class Lease:
    request_id: str
    target_session_id: str
    controller_token: str
    expires_at_ms: int


@dataclass(frozen=True)
class Forwarded:
    """An ack or a state of the target, forwarded to the agent (``kind``: ack|state)."""

    kind: str
    target_session_id: str
    value: Any  # the harness JSON value (ActionAck / StateDiff)


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    request_id: str | None = None
    target_session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _dump(kind: str, payload: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "payload": payload}, separators=(",", ":")).encode()


def _load(data: bytes) -> tuple[str, dict[str, Any]]:
    if len(data) > MAX_BYTES:
        raise AgentError(f"agent message of {len(data)} bytes (at most {MAX_BYTES})",
                         "too_large")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise AgentError(f"not JSON: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise AgentError("an agent message is {\"type\": ..., \"payload\": {...}}")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise AgentError("payload must be an object")
    return body["type"], payload


def _text(p: dict[str, Any], key: str, limit: int = MAX_ID, rid: str | None = None,
          required: bool = True) -> str | None:
    value = p.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise AgentError(f"{key} must be a string of 1 to {limit} characters", request_id=rid)
    return value


def _request_id(p: dict[str, Any]) -> str:
    rid = p.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_ID:
        raise AgentError(f"request_id must be a string of 1 to {MAX_ID} characters")
    return rid


def read_lease_request(data: bytes) -> LeaseRequest:
    kind, p = _load(data)
    if kind != "lease_request":
        raise AgentError(f"{TOPIC_LEASE} from an agent carries lease_request, not {kind!r}")
    rid = _request_id(p)
    ttl = p.get("ttl_ms")
    if ttl is not None and (type(ttl) is not int or not 1 <= ttl <= 86_400_000):
        raise AgentError("ttl_ms must be a whole number of 1 to 86400000", request_id=rid)
    return LeaseRequest(rid, str(_text(p, "target_session_id", rid=rid)),
                        str(_text(p, "token", MAX_TOKEN, rid)),
                        _text(p, "private_beach_id", rid=rid, required=False), ttl,
                        _text(p, "bridge_token", MAX_TOKEN, rid, required=False))


def read_actions(data: bytes) -> ActionsRequest:
    kind, p = _load(data)
    if kind != "actions":
        raise AgentError(f"{TOPIC_ACTIONS} carries actions, not {kind!r}")
    rid = _request_id(p)
    actions = p.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= MAX_ACTIONS:
        raise AgentError(f"actions must be a list of 1 to {MAX_ACTIONS} actions", request_id=rid)
    return ActionsRequest(rid, str(_text(p, "target_session_id", rid=rid)),
                          str(_text(p, "token", MAX_TOKEN, rid)),
                          str(_text(p, "controller_token", MAX_TOKEN, rid)), tuple(actions),
                          _text(p, "private_beach_id", rid=rid, required=False),
                          _text(p, "bridge_token", MAX_TOKEN, rid, required=False))


def lease_request(r: LeaseRequest) -> bytes:
    return _dump("lease_request", {"request_id": r.request_id,
                                   "target_session_id": r.target_session_id, "token": r.token,
                                   "bridge_token": r.bridge_token,
                                   "private_beach_id": r.private_beach_id, "ttl_ms": r.ttl_ms})


def actions_request(r: ActionsRequest) -> bytes:
    return _dump("actions", {"request_id": r.request_id, "target_session_id": r.target_session_id,
                             "token": r.token, "bridge_token": r.bridge_token,
                             "controller_token": r.controller_token,
                             "private_beach_id": r.private_beach_id, "actions": list(r.actions)})


def lease(r: Lease) -> bytes:
    return _dump("lease", {"request_id": r.request_id, "target_session_id": r.target_session_id,
                           "controller_token": r.controller_token,
                           "expires_at_ms": r.expires_at_ms})


def forwarded(f: Forwarded) -> bytes:
    return _dump(f.kind, {"target_session_id": f.target_session_id, f.kind: f.value})


def refusal(r: Refusal) -> bytes:
    return _dump("error", {"request_id": r.request_id, "target_session_id": r.target_session_id,
                           "code": r.code, "message": r.message, **r.extra})


def read_from_manager(data: bytes) -> Lease | Forwarded | Refusal:
    """What an agent receives (on any of :data:`TO_AGENT`)."""
    kind, p = _load(data)
    if kind == "lease":
        expires = p.get("expires_at_ms")
        if type(expires) is not int:
            raise AgentError("expires_at_ms must be a whole number")
        return Lease(_request_id(p), str(_text(p, "target_session_id")),
                     str(_text(p, "controller_token", MAX_TOKEN)), expires)
    if kind in ("ack", "state"):
        if kind not in p:
            raise AgentError(f"a forwarded {kind} needs its {kind!r} value")
        return Forwarded(kind, str(_text(p, "target_session_id")), p[kind])
    if kind == "error":
        code, message = p.get("code"), p.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            raise AgentError("an error needs a code and a message")
        rid, target = p.get("request_id"), p.get("target_session_id")
        return Refusal(code, message, rid if isinstance(rid, str) else None,
                       target if isinstance(target, str) else None)
    raise AgentError(f"unknown message type {kind!r}")


__all__ = ["AGENT_TOPICS", "FROM_AGENT", "TOPIC_ACKS", "TOPIC_ACTIONS", "TOPIC_ERROR", "TOPIC_LEASE",
           "TOPIC_STATES", "TO_AGENT", "ActionsRequest", "AgentError", "Forwarded", "Lease",
           "LeaseRequest", "Refusal", "actions_request", "forwarded", "lease", "lease_request",
           "read_actions", "read_from_manager", "read_lease_request", "refusal"]
