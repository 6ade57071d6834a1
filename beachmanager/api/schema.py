"""Request bodies and parameters: bounded reading, strict JSON, and a small JSON-Schema subset.

The same schema dicts validate requests and describe them in ``/openapi.json``, so the
document cannot drift from what the server accepts.  Supported keywords: ``type`` (one
or a list), ``properties``, ``required``, ``items``, ``maxItems``, ``minLength``,
``maxLength``, ``pattern`` (anchored with ``^...$``: JSON Schema searches), ``enum``, ``minimum``, ``maximum``, ``format: uuid``;
``description``, ``anyOf`` and ``additionalProperties`` are documentation only (a parser
behind the route enforces them).  Unknown properties are accepted and ignored
(legacy clients send extra fields).  Every problem raises :class:`ApiError` 4xx.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

from .errors import ApiError

MAX_BODY_BYTES = 64 * 1024
#: Identifiers in paths and bodies (session ids, private beach ids): no slashes, no "..".
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # anchored: JSON Schema patterns search
_ID_RE = re.compile(ID_PATTERN)
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def id_schema(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": ID_PATTERN, "description": description}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _describe(kinds: list[str]) -> str:
    words = {"object": "an object", "array": "an array", "string": "a string", "boolean": "true or false",
             "null": "null", "integer": "a whole number", "number": "a number"}
    return " or ".join(words[k] for k in kinds)


def validate(schema: dict[str, Any], value: Any, where: str = "body") -> Any:
    """Check *value* against *schema*; returns it with whole floats (``5.0``) made ints where
    the schema wants an integer (JSON Schema counts them as integers).  Raises 400."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if ("integer" in kinds and "number" not in kinds and isinstance(value, float)
                and math.isfinite(value) and value.is_integer()):
            value = int(value)
        if not any(_type_ok(value, k) for k in kinds):
            raise ApiError(400, f"{where} must be {_describe(kinds)}", "invalid_body")
    if "enum" in schema and value not in schema["enum"]:
        raise ApiError(400, f"{where} must be one of {', '.join(map(str, schema['enum']))}", "invalid_body")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ApiError(400, f"{where} must have at least {schema['minLength']} characters", "invalid_body")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ApiError(400, f"{where} must have at most {schema['maxLength']} characters", "invalid_body")
        if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
            raise ApiError(400, f"{where} has characters or a shape that is not allowed", "invalid_body")
        if schema.get("format") == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                raise ApiError(400, f"{where} must be a UUID", "invalid_body") from None
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(400, f"{where} must be at least {schema['minimum']}", "invalid_body")
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(400, f"{where} must be at most {schema['maximum']}", "invalid_body")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ApiError(400, f"{where} must have at most {schema['maxItems']} items", "invalid_body")
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise ApiError(400, f"{where} must have at least {schema['minItems']} items", "invalid_body")
        if "items" in schema:
            value = [validate(schema["items"], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value or value[name] is None:
                raise ApiError(400, f"{where} needs field '{name}'", "invalid_body")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                value[name] = validate(sub, value[name],
                                       f"'{name}'" if where == "body" else f"{where}.{name}")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity, bounded nesting); raises :class:`ApiError` 400."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON", "malformed_json") from None
    if not _storable(value):
        raise ApiError(400, "the body holds a NUL character or an unpaired surrogate (\\u0000, "
                       "\\ud800...), which no text field can store", "malformed_json")
    return value


def _storable(value: Any) -> bool:
    """No string (key or value) holds NUL or an unpaired surrogate: PostgreSQL text and UTF-8
    cannot carry them (iterative: nesting depth is json's own bound)."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            if "\x00" in v or not _utf8(v):
                return False
        elif isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return True


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_json(request, schema: dict[str, Any], max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request's JSON body, validated against *schema* (an object schema)."""
    ctype = request.getHeader(b"content-type")
    if ctype is not None:
        if isinstance(ctype, bytes):
            ctype = ctype.decode("latin-1")
        media = ctype.split(";")[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            raise ApiError(415, "the body must be application/json", "unsupported_media_type")
    content = request.content
    content.seek(0, 2)
    size = content.tell()
    if size > max_bytes:
        raise ApiError(413, f"the body is larger than {max_bytes} bytes", "payload_too_large")
    content.seek(0)
    raw = content.read(max_bytes + 1)
    if not raw.strip():
        if schema.get("required"):
            raise ApiError(400, "a JSON body is required", "invalid_body")
        return {}
    return validate(schema, parse_json(raw))


def path_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ApiError(400, f"{what} must be 1-128 letters, digits, '.', '_', ':' or '-'", "invalid_id")
    return value


def query_arg(request, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    try:
        return values[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"query parameter {name} is not UTF-8", "invalid_query") from None


def query_int(request, name: str, default: int | None, minimum: int, maximum: int) -> int | None:
    raw = query_arg(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ApiError(400, f"query parameter {name} must be a whole number", "invalid_query") from None
    if not minimum <= value <= maximum:
        raise ApiError(400, f"query parameter {name} must be between {minimum} and {maximum}",
                       "invalid_query")
    return value
