"""JSON schemas of the controller action routes (used to validate and to describe them)."""

from __future__ import annotations

from typing import Any

from ..controller.commands import ACTION_ID_PATTERN

MAX_ACTIONS = 500

_SECS = {"type": "integer", "minimum": 0, "maximum": 2**62}
_NANOS = {"type": "integer", "minimum": 0, "maximum": 999_999_999}
SYSTEM_TIME = {"type": ["object", "array", "null"],
               "description": "serde SystemTime {secs_since_epoch, nanos_since_epoch}, [secs, nanos] or null",
               "anyOf": [{"type": "object", "required": ["secs_since_epoch", "nanos_since_epoch"],
                          "additionalProperties": False,
                          "properties": {"secs_since_epoch": _SECS, "nanos_since_epoch": _NANOS}},
                         {"type": "array", "minItems": 2, "maxItems": 2,
                          "prefixItems": [_SECS, _NANOS], "items": False},
                         {"type": "null"}]}

ACTION_COMMAND: dict[str, Any] = {
    "type": "object",
    "required": ["id", "action_type"],
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": ACTION_ID_PATTERN,
               "description": "Unique per host; resubmitting an id is idempotent"},
        "action_type": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "e.g. terminal_write"},
        "payload": {"description": "Action payload, e.g. {\"bytes\": \"echo hi\\r\"}"},
        "expires_at": SYSTEM_TIME,
    },
}

ACTIONS_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["controller_token", "actions"],
    "properties": {
        "controller_token": {"type": "string", "minLength": 1, "maxLength": 128,
                             "description": "Token of an active controller lease on this session"},
        "actions": {"type": "array", "minItems": 1, "maxItems": MAX_ACTIONS, "items": ACTION_COMMAND,
                    "description": "At least one (an empty list is 400 empty_actions)"},
    },
}

ACTIONS_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "accepted": {"type": "boolean"},
        "action_ids": {"type": "array", "items": {"type": "string"},
                       "description": "Every id of the request, in order, now queued or done"},
        "enqueued": {"type": "array", "items": {"type": "string"}},
        "duplicates": {"type": "array", "items": {"type": "string"},
                       "description": "Ids already known (queued or finished): not added again"},
        "queue_depth": {"type": "integer"},
    },
}

ACTION_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action_id": {"type": "string"},
        "host_session_id": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "delivered", "acked"]},
        "ack_status": {"type": "string", "enum": ["ok", "rejected", "expired", "preempted"]},
        "attempts": {"type": "integer"},
        "latency_ms": {"type": "number", "description": "accepted to final ack received"},
        "stored_latency_ms": {"type": "number", "description": "accepted to final ack stored"},
        "enqueued_at_ms": {"type": "integer"},
        "delivered_at_ms": {"type": "integer"},
        "acked_at_ms": {"type": "integer"},
        "error_code": {"type": "string"},
        "error_message": {"type": "string"},
    },
}

STATE_RESPONSE: dict[str, Any] = {"type": ["object", "null"],
                                  "description": "The latest StateDiff {sequence, emitted_at, payload}, or null"}
HEALTH_RESPONSE: dict[str, Any] = {"type": ["object", "null"],
                                   "description": "The latest HealthHeartbeat (+ received_at_ms), or null"}

#: What the route validates before ``parse_command`` checks each action (once, not twice).
ACTIONS_REQUEST_SHALLOW: dict[str, Any] = {
    **ACTIONS_REQUEST,
    "properties": {**ACTIONS_REQUEST["properties"],
                   "actions": {"type": "array", "maxItems": MAX_ACTIONS}},
}
