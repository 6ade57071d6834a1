"""JSON shapes of the REST API (legacy names), as schemas used to validate and to document."""

from __future__ import annotations

from typing import Any

from ..registry.members import ROLES, STATUSES
from ..registry.store import EVENT_TYPES, HARNESS_TYPES, TRANSPORT_MODES
from .schema import id_schema

SESSION_ID = id_schema("Host session id (Beach Road session id)")
PRIVATE_BEACH_ID = id_schema("Private beach id")
ACCOUNT_ID = {"type": "string", "minLength": 1, "maxLength": 128, "description": "Account id"}
#: An account id in a path: no '/' and no control characters.
ACCOUNT_PATH = {**ACCOUNT_ID, "pattern": "^[^/\u0000-\u001f\u007f-\u009f]{1,128}$"}
SHORT_TEXT = {"type": "string", "maxLength": 256}
MAX_TTL_MS = 86_400_000
#: The last millisecond of year 9999 (a timestamp PostgreSQL and Python both hold).
MAX_TIME_MS = 253_402_300_799_999

REGISTER_REQUEST = {
    "type": "object",
    "required": ["session_id", "private_beach_id"],
    "properties": {
        "session_id": SESSION_ID,
        "private_beach_id": PRIVATE_BEACH_ID,
        "harness_type": {"type": ["string", "null"], "enum": [*HARNESS_TYPES, None]},
        "capabilities": {"type": ["array", "null"], "maxItems": 64,
                         "items": {"type": "string", "minLength": 1, "maxLength": 64}},
        "location_hint": {"type": ["string", "null"], "maxLength": 256},
        "metadata": {"type": ["object", "null"], "description": "Free-form JSON object (bounded by the body size)"},
        "version": {"type": ["string", "null"], "maxLength": 64},
        "viewer_passcode": {"type": ["string", "null"], "minLength": 1, "maxLength": 256,
                            "description": "Stored encrypted, never returned"},
        "transport_mode": {"type": ["string", "null"], "enum": [*TRANSPORT_MODES, None],
                           "description": "Recorded for compatibility, never acted on: hosts are "
                                          "reached over WebRTC only (no HTTP fallback)"},
    },
}
REGISTER_RESPONSE = {
    "type": "object",
    "properties": {
        "harness_id": {"type": "string", "format": "uuid"},
        "controller_token": {"type": "string", "format": "uuid"},
        "lease_ttl_ms": {"type": "integer"},
        "state_cache_url": {"type": "null"},
        "transport_hints": {"type": "object",
                            "description": "{\"extensions\": {\"namespaces\": [\"manager\"], "
                                           "\"preferred\": true}}: the unified bus, namespace "
                                           "manager (no legacy fast path)"},
    },
}

SESSION_SUMMARY = {
    "type": "object",
    "properties": {
        "session_id": SESSION_ID, "private_beach_id": PRIVATE_BEACH_ID,
        "harness_type": {"type": ["string", "null"]},
        "capabilities": {"type": "array", "items": {"type": "string"}},
        "location_hint": {"type": ["string", "null"]}, "metadata": {"type": ["object", "null"]},
        "version": {"type": ["string", "null"]}, "harness_id": {"type": "string", "format": "uuid"},
        "controller_token": {"type": ["string", "null"],
                             "description": "Only shown to callers holding pb:control.write"},
        "controller_expires_at_ms": {"type": ["integer", "null"]},
        "pending_actions": {"type": "integer"}, "pending_unacked": {"type": "integer"},
        "last_health": {"type": ["object", "null"]},
        "attach_method": {"type": "string", "enum": ["register", "code"]},
        "attach_state": {"type": "string"},
    },
}
SESSION_LIST = {"type": "array", "items": SESSION_SUMMARY}

ATTACH_BY_CODE_REQUEST = {
    "type": "object",
    "required": ["session_id", "code"],
    "properties": {"session_id": SESSION_ID,
                   "code": {"type": "string", "minLength": 1, "maxLength": 256,
                            "description": "Join code, verified with Beach Road"}},
}
ATTACH_BY_CODE_RESPONSE = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "attach_method": {"type": "string", "enum": ["code"]},
                   "session": SESSION_SUMMARY},
}

LEASE_REQUEST = {
    "type": "object",
    "properties": {
        "requesting_account_id": {**ACCOUNT_ID, "type": ["string", "null"],
                                  "description": "Controller account (default: the caller's)"},
        "ttl_ms": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**53,
                   "description": f"Default 30000; raised to at least 1000, lowered to at most {MAX_TTL_MS}"},
        "reason": {**SHORT_TEXT, "type": ["string", "null"], "maxLength": 128},
    },
}
LEASE_RESPONSE = {
    "type": "object",
    "properties": {"controller_token": {"type": "string", "format": "uuid"},
                   "expires_at_ms": {"type": "integer"}},
}
RELEASE_REQUEST = {
    "type": "object",
    "required": ["controller_token"],
    "properties": {"controller_token": {"type": "string", "minLength": 1, "maxLength": 128}},
}
RELEASE_RESPONSE = {"type": "object", "properties": {"released": {"type": "boolean"}}}

CONTROLLER_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "controller_token": {"type": "string"}, "timestamp_ms": {"type": "integer"},
        "reason": {"type": "string"}, "controller_account_id": {"type": "string"},
        "issued_by_account_id": {"type": "string"},
    },
}
CONTROLLER_EVENTS = {"type": "array", "items": CONTROLLER_EVENT}
EVENT_QUERY: dict[str, dict[str, Any]] = {
    "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
    "since_ms": {"type": "integer", "minimum": 0, "maximum": MAX_TIME_MS},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Default 200"},
}
TENANT_QUERY: dict[str, dict[str, Any]] = {
    "private_beach_id": {**PRIVATE_BEACH_ID,
                         "description": "Needed only when the session belongs to several private beaches"},
}

BEACH_CREATE_REQUEST = {
    "type": "object",
    "properties": {
        "id": {**PRIVATE_BEACH_ID, "description": "The new beach's id (default: a new UUID; a token "
                                                  "bound to a beach creates that one)"},
        "name": {**SHORT_TEXT, "type": ["string", "null"]},
    },
}
BEACH = {
    "type": "object",
    "properties": {"id": PRIVATE_BEACH_ID, "name": {"type": ["string", "null"]},
                   "owner_account_id": {"type": ["string", "null"]},
                   "created_at_ms": {"type": "integer"}},
}
MEMBER_REQUEST = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": {"type": "string", "enum": list(ROLES)},
                   "status": {"type": "string", "enum": list(STATUSES), "description": "Default active"}},
}
MEMBER = {
    "type": "object",
    "properties": {"private_beach_id": PRIVATE_BEACH_ID, "account_id": ACCOUNT_ID,
                   "role": {"type": "string", "enum": list(ROLES)},
                   "status": {"type": "string", "enum": list(STATUSES)},
                   "invited_by_account_id": {"type": ["string", "null"]},
                   "created_at_ms": {"type": "integer"}, "updated_at_ms": {"type": "integer"}},
}
MEMBER_LIST = {
    "type": "object",
    "properties": {"private_beach_id": PRIVATE_BEACH_ID,
                   "owner_account_id": {"type": ["string", "null"]},
                   "members": {"type": "array", "items": MEMBER}},
}
MEMBER_REMOVED = {"type": "object", "properties": {"removed": {"type": "boolean"}}}

ERROR = {
    "type": "object",
    "required": ["error", "message", "error_code"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                   "error_code": {"type": "string"}},
}
