"""API errors and the one place that turns exceptions into ``{error, message, error_code}`` answers.

Handlers raise :class:`ApiError` (or let a registry/auth error through) and are wrapped
by :func:`json_handler`, so bad input always gets its 4xx and an unexpected exception
gets a logged 500 that says nothing about internals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.logger import Logger

from ..auth.principal import AuthFailure
from ..registry.store import SessionNotFound, StoreUnavailable
from .responses import error_body, json_body

log = Logger(namespace="beachmanager.api")

#: The legacy ``error`` word for each status.
ERROR_WORDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "too_many_requests", 500: "internal_error",
               502: "upstream_error", 503: "service_unavailable", 504: "upstream_timeout"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_code: str | None = None, *,
                 headers: dict[bytes, bytes] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        self.extra = extra


def error_response(request, e: Exception) -> bytes:
    """The answer for *e* (any exception), in the legacy error shape."""
    if isinstance(e, ApiError):
        for name, value in e.headers.items():
            request.setHeader(name, value)
        return error_body(request, e.status, ERROR_WORDS.get(e.status, "error"), e.message,
                          e.error_code, **e.extra)
    if isinstance(e, AuthFailure):
        if e.status == 401:
            request.setHeader(b"www-authenticate", b'Bearer realm="beach-manager", error="invalid_token"')
        if e.status == 503:
            request.setHeader(b"retry-after", b"5")
        extra = {"scope": e.scope} if e.scope else {}
        return error_body(request, e.status, ERROR_WORDS[e.status], e.detail, e.reason, **extra)
    if isinstance(e, SessionNotFound):
        return error_body(request, 404, "not_found", "no such session in this private beach",
                          "session_not_found")
    if isinstance(e, StoreUnavailable):
        log.warn("answering 503: {error}", error=str(e))
        request.setHeader(b"retry-after", b"1")
        return error_body(request, 503, "service_unavailable", "the registry database is unavailable; "
                          "retry the request", "store_unavailable")
    log.failure("unexpected error answering {method} {path}", method=request.method, path=request.path,
                failure=None)
    return error_body(request, 500, "internal_error", "internal error", "internal_error")


def json_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an ``async def handler(request, **kw) -> (status, body)`` into a Klein handler."""

    @functools.wraps(fn)
    def handler(request, *args: Any, **kwargs: Any):
        async def run() -> bytes:
            try:
                status, body = await fn(request, *args, **kwargs)
            except CancelledError:
                raise
            except Exception as e:
                return error_response(request, e)
            return json_body(request, body, status)

        return ensureDeferred(run())

    return handler
