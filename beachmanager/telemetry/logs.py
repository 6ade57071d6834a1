"""Structured logging: the plan's fields, a JSON line observer, the stdlib bridge.

Every event about a host carries some of :data:`FIELDS`; build them with
:func:`fields` so that absent values are left out and controller tokens are
never logged whole.  ``twistd --logger=beachmanager.telemetry.logs.json_observer``
writes one JSON object per line (``twist --log-format=json`` uses Twisted's own
JSON format instead).  :func:`bridge_stdlib_logging` is the one place where the
stdlib loggers of aiortc, aioice, psycopg and autobahn reach ``twisted.logger``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    Logger,
    LogLevel,
    formatEvent,
)

#: The plan's log fields ("Observability Defaults").
FIELDS = (
    "manager_instance_id",
    "host_session_id",
    "peer_session_id",
    "transport_id",
    "controller_token_suffix",
    "attach_attempt",
    "phase",
    "transport_mode",
)

TOKEN_SUFFIX_LEN = 6


def token_suffix(token: str | None) -> str | None:
    """The last few characters of a controller token: enough to correlate, useless to replay."""
    if not token:
        return None
    return token[-TOKEN_SUFFIX_LEN:]


def fields(*, controller_token: str | None = None, **values: Any) -> dict[str, Any]:
    """Log fields with ``None`` dropped; a controller token becomes its suffix."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"not a plan log field: {sorted(unknown)}")
    out = {k: v for k, v in values.items() if v is not None}
    if controller_token:
        out["controller_token_suffix"] = token_suffix(controller_token)
    return out


# -- JSON lines ----------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return repr(value)


def event_as_json_line(event: dict[str, Any]) -> str:
    """One event as a flat JSON object: time, level, namespace, message, then its fields."""
    level = event.get("log_level")
    out: dict[str, Any] = {
        "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(timespec="milliseconds"),
        "level": level.name if isinstance(level, type(LogLevel.info)) else str(level),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in ("format", "message", "isError", "why", "failure"):
            continue
        out[key] = _jsonable(value)
    failure = event.get("log_failure")
    if failure is not None:
        out["error"] = failure.getErrorMessage()
        out["traceback"] = failure.getTraceback()
    return json.dumps(out, separators=(",", ":")) + "\n"


def json_observer(out: IO[str] | None = None) -> ILogObserver:
    """An observer writing :func:`event_as_json_line` lines (``twistd --logger=...json_observer``)."""
    return FileLogObserver(out or sys.stdout, event_as_json_line)


# -- stdlib bridge ---------------------------------------------------------------

BRIDGED_LOGGERS = ("aiortc", "aioice", "psycopg", "psycopg_pool", "autobahn", "txaio", "yoyo")

_LEVELS = (
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
)


class TwistedLoggerHandler(logging.Handler):
    """A stdlib handler that re-emits records as ``twisted.logger`` events."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((tw for std, tw in _LEVELS if record.levelno >= std), LogLevel.debug)
            log = Logger(namespace=record.name)
            log.emit(level, "{stdlib_message}", stdlib_message=record.getMessage(),
                     stdlib_logger=record.name)
        except Exception:  # a logging failure must never break the caller
            self.handleError(record)


_bridge: TwistedLoggerHandler | None = None


def bridge_stdlib_logging(level: int = logging.WARNING) -> TwistedLoggerHandler:
    """Route the third-party stdlib loggers into ``twisted.logger``, once (idempotent)."""
    global _bridge
    if _bridge is None:
        _bridge = TwistedLoggerHandler()
        for name in BRIDGED_LOGGERS:
            lg = logging.getLogger(name)
            lg.addHandler(_bridge)
            lg.propagate = False
    for name in BRIDGED_LOGGERS:
        logging.getLogger(name).setLevel(level)
    return _bridge
