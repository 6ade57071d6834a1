"""Harness JSON shapes (beach-buggy): ActionCommand, ActionAck, StateDiff, HealthHeartbeat.

Every bus payload is an envelope ``{"type": "action"|"ack"|"state"|"health", "payload": T}``.
The Redis queues carry the bare structs.

Rules, as Rust serde applies them:

* Unknown fields are ignored.  Missing ``Option`` fields are ``None``.  Missing required
  fields, wrong JSON types and duplicate known fields are errors.
* Integers are JSON integers in range: ``1.0`` is not a u64 and ``true`` is not a number.
* ``payload`` (any JSON) is required but may be ``null``.
* A struct may also arrive as a JSON array of exactly its fields in order (serde accepts that).
* Timestamps (``SystemTime``) are ``{"secs_since_epoch": u64, "nanos_since_epoch": u32}``.
  Both keys are required and other keys are errors.  ``[secs, nanos]`` is accepted on input;
  ISO strings and plain numbers are not.
* NaN, Infinity, lone surrogates and non-UTF-8 bytes are rejected.
* Output is compact UTF-8 JSON (no spaces, non-ASCII unescaped), fields in declaration order,
  ``None`` as ``null`` — byte-compatible with ``serde_json::to_vec``.

:func:`to_json` / :func:`from_json` are the entry points; every decoding failure raises
:class:`HarnessError`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from beachmanager.protocol.errors import ProtocolError

__all__ = [
    "ACK",
    "ACTION",
    "HEALTH",
    "STATE",
    "ActionAck",
    "ActionCommand",
    "AckStatus",
    "Envelope",
    "HarnessError",
    "HealthHeartbeat",
    "StateDiff",
    "Timestamp",
    "from_json",
    "from_value",
    "parse_action_envelope",
    "to_json",
    "to_value",
]

ACTION, ACK, STATE, HEALTH = "action", "ack", "state", "health"
MAX_U64 = (1 << 64) - 1
MAX_U32 = (1 << 32) - 1
_MAX_SYSTEMTIME_SECS = (1 << 63) - 1  # UNIX_EPOCH + Duration must fit a timespec
_NANOS = 1_000_000_000
MAX_DEPTH = 127  # serde_json (recursion limit 128) rejects the 128th nesting level


class HarnessError(ProtocolError):
    """Harness JSON that does not match the shape the Rust side accepts."""


class AckStatus(enum.StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PREEMPTED = "preempted"


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A serde ``SystemTime``; ``nanos_since_epoch`` is normalised below one second."""

    secs_since_epoch: int
    nanos_since_epoch: int = 0

    def __post_init__(self) -> None:
        secs, nanos = self.secs_since_epoch, self.nanos_since_epoch
        if not (_is_int(secs) and _is_int(nanos) and 0 <= secs <= MAX_U64 and 0 <= nanos):
            raise HarnessError(f"timestamp parts must be unsigned ints: {secs!r}, {nanos!r}")
        if nanos >= _NANOS:
            secs, nanos = secs + nanos // _NANOS, nanos % _NANOS
            object.__setattr__(self, "secs_since_epoch", secs)
            object.__setattr__(self, "nanos_since_epoch", nanos)
        if secs > _MAX_SYSTEMTIME_SECS:
            raise HarnessError("overflow deserializing SystemTime")

    @classmethod
    def from_seconds(cls, seconds: float) -> Timestamp:
        """From Unix seconds (e.g. ``reactor.seconds()``), to the nearest nanosecond."""
        if not seconds >= 0 or not math.isfinite(seconds):
            raise HarnessError(f"not a time since the Unix epoch: {seconds!r}")
        secs = math.floor(seconds)
        return cls(secs, round((seconds - secs) * _NANOS))  # a carry of 1e9 is normalised

    @classmethod
    def now(cls, clock: Callable[[], float]) -> Timestamp:
        return cls.from_seconds(clock())

    def to_seconds(self) -> float:
        return self.secs_since_epoch + self.nanos_since_epoch / _NANOS

    def to_millis(self) -> int:
        return self.secs_since_epoch * 1000 + self.nanos_since_epoch // 1_000_000


class _Json:
    """``obj.to_json()`` and ``Cls.from_json(data)``, shorthands for the module functions."""

    __slots__ = ()

    def to_json(self) -> bytes:
        return to_json(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Any:
        return from_json(data, cls)


@dataclass(frozen=True)
class ActionCommand(_Json):
    id: str
    action_type: str
    payload: Any = None
    expires_at: Timestamp | None = None


@dataclass(frozen=True)
class ActionAck(_Json):
    id: str
    status: AckStatus
    applied_at: Timestamp
    latency_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class StateDiff(_Json):
    sequence: int
    emitted_at: Timestamp
    payload: Any = None


@dataclass(frozen=True)
class HealthHeartbeat(_Json):
    queue_depth: int
    cpu_load: float | None = None
    memory_bytes: int | None = None
    degraded: bool = False
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if type(self.warnings) is not tuple:
            object.__setattr__(self, "warnings", tuple(self.warnings))


@dataclass(frozen=True)
class Envelope(_Json):
    """``{"type", "payload"}``; ``payload`` is a typed struct for the four known types."""

    type: str
    payload: Any = field(default=None)

    @classmethod
    def wrap(cls, value: ActionCommand | ActionAck | StateDiff | HealthHeartbeat) -> Envelope:
        return cls(_TYPE_OF[type(value)], value)


_TYPE_OF: dict[type, str] = {
    ActionCommand: ACTION,
    ActionAck: ACK,
    StateDiff: STATE,
    HealthHeartbeat: HEALTH,
}
_CLASS_OF = {name: cls for cls, name in _TYPE_OF.items()}
# Field order on the wire (serde declaration order), which is also the positional order.
_FIELDS: dict[type, tuple[str, ...]] = {
    ActionCommand: ("id", "action_type", "payload", "expires_at"),
    ActionAck: ("id", "status", "applied_at", "latency_ms", "error_code", "error_message"),
    StateDiff: ("sequence", "emitted_at", "payload"),
    HealthHeartbeat: ("queue_depth", "cpu_load", "memory_bytes", "degraded", "warnings"),
    Envelope: ("type", "payload"),
}


# --- encoding ------------------------------------------------------------------------------


def _is_int(v: object) -> TypeGuard[int]:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


def _out_int(v: object, what: str, limit: int = MAX_U64) -> int:
    if not _is_int(v) or not 0 <= v <= limit:
        raise HarnessError(f"{what} must be an unsigned integer, got {v!r}")
    return int(v)


def _out_str(v: object, what: str) -> str:
    if not isinstance(v, str):
        raise HarnessError(f"{what} must be a string, got {v!r}")
    return str(v)


def _out_opt(v: object, conv: Callable[[Any, str], Any], what: str) -> Any:
    return None if v is None else conv(v, what)


def _out_time(v: object, what: str) -> dict[str, int]:
    if isinstance(v, dict | list):  # the JSON forms are accepted as values too
        v = _in_time(v, what)
    if not isinstance(v, Timestamp):
        raise HarnessError(f"{what} must be a Timestamp, got {v!r}")
    return {"secs_since_epoch": v.secs_since_epoch, "nanos_since_epoch": v.nanos_since_epoch}


def _out_float(v: object, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise HarnessError(f"{what} must be a finite number, got {v!r}")
    return v


def to_value(obj: Any) -> Any:
    """The JSON value (dicts, lists, ...) of a harness struct or envelope."""
    t = type(obj)
    if t is Envelope:
        payload = obj.payload
        expected = _TYPE_OF.get(type(payload))
        if expected is not None and expected != obj.type:
            raise HarnessError(f"envelope type {obj.type!r} carries a {type(payload).__name__}")
        body = to_value(payload) if expected else payload
        return {"type": _out_str(obj.type, "type"), "payload": body}
    if t is ActionCommand:
        return {
            "id": _out_str(obj.id, "id"),
            "action_type": _out_str(obj.action_type, "action_type"),
            "payload": obj.payload,
            "expires_at": _out_opt(obj.expires_at, _out_time, "expires_at"),
        }
    if t is ActionAck:
        try:
            status = AckStatus(obj.status).value
        except ValueError:
            raise HarnessError(f"unknown ack status {obj.status!r}") from None
        return {
            "id": _out_str(obj.id, "id"),
            "status": status,
            "applied_at": _out_time(obj.applied_at, "applied_at"),
            "latency_ms": _out_opt(obj.latency_ms, _out_int, "latency_ms"),
            "error_code": _out_opt(obj.error_code, _out_str, "error_code"),
            "error_message": _out_opt(obj.error_message, _out_str, "error_message"),
        }
    if t is StateDiff:
        return {
            "sequence": _out_int(obj.sequence, "sequence"),
            "emitted_at": _out_time(obj.emitted_at, "emitted_at"),
            "payload": obj.payload,
        }
    if t is HealthHeartbeat:
        if not isinstance(obj.degraded, bool):
            raise HarnessError("degraded must be a bool")
        return {
            "queue_depth": _out_int(obj.queue_depth, "queue_depth"),
            "cpu_load": _out_opt(obj.cpu_load, _out_float, "cpu_load"),
            "memory_bytes": _out_opt(obj.memory_bytes, _out_int, "memory_bytes"),
            "degraded": obj.degraded,
            "warnings": [_out_str(w, "warnings[]") for w in obj.warnings],
        }
    if t is Timestamp:
        return _out_time(obj, "timestamp")
    raise HarnessError(f"not a harness type: {t.__name__}")


def to_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON of a harness struct or :class:`Envelope`, as serde_json writes it."""
    value = to_value(obj)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # unserialisable payload, NaN, lone surrogate
        raise HarnessError(f"cannot serialise {type(obj).__name__}: {exc}") from None


# --- decoding ------------------------------------------------------------------------------


class _Obj(dict):
    """A parsed JSON object that remembers keys it saw more than once."""

    dups: frozenset[str] = frozenset()


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    obj = _Obj(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dups: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                dups.add(k)
            else:
                seen.add(k)
        obj.dups = frozenset(dups)
    return obj


def _bad_constant(name: str) -> None:
    raise HarnessError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise HarnessError(f"number out of range: {text}")
    return value


def _check_depth(value: Any) -> None:
    """Reject nesting deeper than serde_json's recursion limit."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > MAX_DEPTH:
                raise HarnessError(f"JSON nested too deeply (over {MAX_DEPTH} levels)")
            children = v.values() if isinstance(v, dict) else v
            stack.extend((child, depth + 1) for child in children)


def _check_strings(value: Any) -> None:
    """Reject lone surrogates (from ``\\ud800`` escapes), which serde_json refuses."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise HarnessError("lone surrogate in JSON string") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _loads(data: bytes | str) -> Any:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise HarnessError("JSON is not UTF-8") from None
    elif isinstance(data, str):
        text = data
    else:
        raise HarnessError(f"JSON must be bytes or str, got {type(data).__name__}")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_bad_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise HarnessError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise HarnessError("JSON nested too deeply") from None
    if "\\u" in text or "\\U" in text:
        _check_strings(value)
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    return value


def _in_int(v: Any, what: str, limit: int = MAX_U64) -> int:
    if type(v) is not int or not 0 <= v <= limit:
        raise HarnessError(f"{what}: expected an unsigned integer, got {v!r}")
    return v


def _in_str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise HarnessError(f"{what}: expected a string, got {v!r}")
    return v


def _in_bool(v: Any, what: str) -> bool:
    if type(v) is not bool:
        raise HarnessError(f"{what}: expected a bool, got {v!r}")
    return v


def _in_float(v: Any, what: str) -> float:
    if type(v) not in (int, float):
        raise HarnessError(f"{what}: expected a number, got {v!r}")
    return float(v)


def _in_any(v: Any, what: str) -> Any:
    return v


def _in_time(v: Any, what: str) -> Timestamp:
    if type(v) is list:
        if len(v) != 2:
            raise HarnessError(f"{what}: expected [secs, nanos], got {len(v)} elements")
        secs, nanos = v
    elif isinstance(v, dict):
        for key in v:
            if key not in ("secs_since_epoch", "nanos_since_epoch"):
                raise HarnessError(f"{what}: unknown field {key!r}")
        seen_twice = getattr(v, "dups", None)
        if seen_twice:
            raise HarnessError(f"{what}: duplicate field {sorted(seen_twice)[0]!r}")
        if "secs_since_epoch" not in v or "nanos_since_epoch" not in v:
            raise HarnessError(f"{what}: missing secs_since_epoch or nanos_since_epoch")
        secs, nanos = v["secs_since_epoch"], v["nanos_since_epoch"]
    else:
        raise HarnessError(f"{what}: expected a SystemTime object, got {v!r}")
    return Timestamp(
        _in_int(secs, f"{what}.secs_since_epoch"),
        _in_int(nanos, f"{what}.nanos_since_epoch", MAX_U32),
    )


def _opt(conv: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    def read(v: Any, what: str) -> Any:
        return None if v is None else conv(v, what)

    return read


def _in_status(v: Any, what: str) -> AckStatus:
    try:
        return AckStatus(_in_str(v, what))
    except ValueError:
        raise HarnessError(f"{what}: unknown variant {v!r}") from None


def _in_warnings(v: Any, what: str) -> tuple[str, ...]:
    if type(v) is not list:
        raise HarnessError(f"{what}: expected a list of strings")
    return tuple(_in_str(w, f"{what}[]") for w in v)


# field -> (reader, required); Option fields are not required.
_READERS: dict[type, dict[str, tuple[Callable[[Any, str], Any], bool]]] = {
    ActionCommand: {
        "id": (_in_str, True),
        "action_type": (_in_str, True),
        "payload": (_in_any, True),
        "expires_at": (_opt(_in_time), False),
    },
    ActionAck: {
        "id": (_in_str, True),
        "status": (_in_status, True),
        "applied_at": (_in_time, True),
        "latency_ms": (_opt(_in_int), False),
        "error_code": (_opt(_in_str), False),
        "error_message": (_opt(_in_str), False),
    },
    StateDiff: {
        "sequence": (_in_int, True),
        "emitted_at": (_in_time, True),
        "payload": (_in_any, True),
    },
    HealthHeartbeat: {
        "queue_depth": (_in_int, True),
        "cpu_load": (_opt(_in_float), False),
        "memory_bytes": (_opt(_in_int), False),
        "degraded": (_in_bool, True),
        "warnings": (_in_warnings, True),
    },
    Envelope: {"type": (_in_str, True), "payload": (_in_any, True)},
}


def from_value(value: Any, cls: type = Envelope) -> Any:
    """Build ``cls`` from a parsed JSON value; an Envelope's known payloads become typed."""
    readers = _READERS.get(cls)
    if readers is None:
        if cls is Timestamp:
            return _in_time(value, "timestamp")
        raise HarnessError(f"not a harness type: {cls!r}")
    name = cls.__name__
    if type(value) is list:
        if len(value) != len(readers):
            raise HarnessError(f"{name}: expected {len(readers)} elements, got {len(value)}")
        value = dict(zip(_FIELDS[cls], value, strict=True))
    elif not isinstance(value, dict):
        raise HarnessError(f"{name}: expected an object, got {type(value).__name__}")
    dups: frozenset[str] = getattr(value, "dups", frozenset()) & readers.keys()
    if dups:
        raise HarnessError(f"{name}: duplicate field {sorted(dups)[0]!r}")
    kwargs = {}
    for key, (read, required) in readers.items():
        if key in value:
            kwargs[key] = read(value[key], f"{name}.{key}")
        elif required:
            raise HarnessError(f"{name}: missing field {key!r}")
    if cls is Envelope:
        typed = _CLASS_OF.get(kwargs["type"])
        if typed is not None:
            kwargs["payload"] = from_value(kwargs["payload"], typed)
    return cls(**kwargs)


def from_json(data: bytes | str, cls: type = Envelope) -> Any:
    """Parse JSON into ``cls`` (default :class:`Envelope`, with a typed payload if known)."""
    return from_value(_loads(data), cls)


def parse_fenced_action(data: bytes | str) -> tuple[ActionCommand, int | None]:
    """An action envelope's command and its ``epoch`` (an envelope field the manager adds for
    fencing, ignored by consumers that do not know it; None when absent)."""
    value = _loads(data)
    env = from_value(value, Envelope)
    if env.type != ACTION:
        raise HarnessError(f"expected an action envelope, got type {env.type!r}")
    epoch = value.get("epoch") if isinstance(value, dict) else None
    if epoch is not None and not (_is_int(epoch) and 0 <= epoch <= MAX_U64):
        raise HarnessError(f"epoch must be an unsigned integer, got {epoch!r}")
    return env.payload, epoch


def parse_action_envelope(data: bytes | str) -> ActionCommand:
    """An action envelope's command; any ``type`` other than ``"action"`` is rejected."""
    env = from_json(data, Envelope)
    if env.type != ACTION:
        raise HarnessError(f"expected an action envelope, got type {env.type!r}")
    return env.payload
