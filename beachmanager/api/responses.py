"""JSON responses and the legacy error shape ``{error, message, error_code}``."""

from __future__ import annotations

import json
from typing import Any

JSON = b"application/json"


def json_body(request, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON)
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def error_body(request, status: int, error: str, message: str, error_code: str | None = None,
               **extra: Any) -> bytes:
    """An error answer: ``error`` is a short kind, ``message`` a sentence, ``error_code`` stable."""
    body = {"error": error, "message": message, "error_code": error_code or error, **extra}
    return json_body(request, body, status)


def text_body(request, text: str, status: int = 200, content_type: bytes = b"text/plain; charset=utf-8") -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", content_type)
    return text.encode()
