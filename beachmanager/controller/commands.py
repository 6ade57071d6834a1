"""Controller JSON at the edges: validating submitted ActionCommands and building action
envelopes (reference ``wire-framing-and-bus.md`` §5).  Acks, states and health arrive
typed, decoded once by :mod:`beachmanager.protocol.harness` in the bus subscriber.

* An ActionCommand is ``{id, action_type, payload, expires_at}``; ``expires_at`` is a
  serde SystemTime object ``{"secs_since_epoch", "nanos_since_epoch"}`` (a
  ``[secs, nanos]`` pair is accepted too) or null.  Unknown fields are dropped.
* Every bus payload is the envelope ``{"type": ..., "payload": ...}``.
* Every error is :class:`CommandError` with a message fit for a 400 answer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..protocol import harness
from .queue import MAX_ACTION_ID_LEN

#: Largest action payload accepted (serialized JSON bytes); the bus chunks at 14 KiB.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_TYPE_LEN = 64


class CommandError(ValueError):
    """A submitted action or a received ack that does not have the required shape."""


def system_time(seconds: float) -> dict[str, int]:
    """A serde SystemTime object for Unix *seconds*."""
    return harness.to_value(harness.Timestamp.from_seconds(seconds))


def parse_system_time(value: Any, what: str) -> float | None:
    """Epoch seconds from a SystemTime object or ``[secs, nanos]``; None for null.  The one
    SystemTime reader is the harness codec's."""
    if value is None:
        return None
    try:
        return harness.from_value(value, harness.Timestamp).to_seconds()
    except harness.HarnessError as e:
        raise CommandError(f"{what} must be a SystemTime {{secs_since_epoch, nanos_since_epoch}}, "
                           f"[secs, nanos] or null ({e})") from None


#: C0 and C1 control characters (never in an action id: it reaches logs).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
ACTION_ID_PATTERN = "^[^\u0000-\u001f\u007f-\u009f]{1,128}$"


def whole_times(raw: Any) -> Any:
    """An action with whole-number floats in its ``expires_at`` made ints (``5.0`` is an
    integer to JSON Schema; the harness codec, like serde, takes ints only)."""
    if isinstance(raw, dict):
        t = raw.get("expires_at")
        if isinstance(t, dict):
            raw["expires_at"] = {k: _whole(v) for k, v in t.items()}
        elif isinstance(t, list):
            raw["expires_at"] = [_whole(v) for v in t]
    return raw


def _whole(v: Any) -> Any:
    return int(v) if isinstance(v, float) and math.isfinite(v) and v.is_integer() else v


def parse_command(raw: Any, index: int = 0) -> dict[str, Any]:
    """One submitted ActionCommand, read by the harness codec (the one schema, the host's
    own) within this API's limits; returned in its wire form
    ``{id, action_type, payload, expires_at}`` (what the queue keeps and the host gets)."""
    where = f"actions[{index}]"
    if not isinstance(raw, dict):
        raise CommandError(f"{where} must be an object")
    action_id = raw.get("id")
    if not isinstance(action_id, str) or not action_id or len(action_id) > MAX_ACTION_ID_LEN:
        raise CommandError(f"{where}.id must be a string of 1 to {MAX_ACTION_ID_LEN} characters")
    if _CONTROL.search(action_id):
        raise CommandError(f"{where}.id must hold no control characters")
    action_type = raw.get("action_type")
    if not isinstance(action_type, str) or not action_type or len(action_type) > MAX_TYPE_LEN:
        raise CommandError(f"{where}.action_type must be a string of 1 to {MAX_TYPE_LEN} characters")
    payload = raw.get("payload")
    if len(json.dumps(payload, separators=(",", ":"))) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"{where}.payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    known = {"id": action_id, "action_type": action_type, "payload": payload,
             "expires_at": raw.get("expires_at")}  # unknown fields are dropped
    try:
        command = harness.from_value(known, harness.ActionCommand)
    except harness.HarnessError as e:
        raise CommandError(f"{where}: {e}") from None
    return harness.to_value(command)


def expires_at(command: dict[str, Any]) -> float | None:
    try:
        return parse_system_time(command.get("expires_at"), "expires_at")
    except CommandError:
        return None


def action_envelope(command: dict[str, Any], epoch: int | None = None) -> bytes:
    """The ``beach.manager.action`` payload for one command; *epoch* (the host's ownership
    epoch, for fencing) goes in the envelope, where consumers that do not know it ignore it."""
    body: dict[str, Any] = {"type": "action", "payload": {
        "id": command["id"], "action_type": command["action_type"],
        "payload": command.get("payload"), "expires_at": command.get("expires_at")}}
    if epoch is not None:
        body["epoch"] = epoch
    return json.dumps(body, separators=(",", ":")).encode()
