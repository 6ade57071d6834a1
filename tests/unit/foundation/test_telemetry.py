"""Log fields, JSON lines, the stdlib bridge, the crash hook and the metrics registry."""

import io
import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from beachmanager.telemetry import logs
from beachmanager.telemetry.crash import CrashReporter
from beachmanager.telemetry.metrics import PLAN_METRICS, Metrics


def test_fields_drop_none_and_shorten_tokens():
    f = logs.fields(host_session_id="h1", peer_session_id=None, phase="offer",
                    controller_token="tok-0123456789abcdef")
    assert f == {"host_session_id": "h1", "phase": "offer", "controller_token_suffix": "abcdef"}
    with pytest.raises(TypeError):
        logs.fields(join_code="secret")


def test_json_line_has_message_level_and_plan_fields():
    out = io.StringIO()
    observer = logs.json_observer(out)
    log = Logger(namespace="t", observer=observer)
    log.warn("attach {phase} failed", **logs.fields(phase="ice", host_session_id="h", attach_attempt=2),
             payload=b"\x00" * 9)
    line = json.loads(out.getvalue())
    assert line["level"] == "warn" and line["namespace"] == "t"
    assert line["message"] == "attach ice failed"
    assert line["host_session_id"] == "h" and line["attach_attempt"] == 2
    assert line["payload"] == "<9 bytes>"
    assert not any(k.startswith("log_") for k in line)


def test_json_line_carries_failure():
    out = io.StringIO()
    log = Logger(namespace="t", observer=logs.json_observer(out))
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        log.failure("boom")
    line = json.loads(out.getvalue())
    assert line["level"] == "critical" and "ZeroDivisionError" in line["traceback"]


def test_stdlib_loggers_reach_twisted_logger():
    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        logs.bridge_stdlib_logging(logging.INFO)
        logs.bridge_stdlib_logging(logging.INFO)  # idempotent: one handler
        logging.getLogger("aiortc.rtcpeerconnection").warning("ice %s", "failed")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    bridged = [e for e in seen if e.get("stdlib_logger") == "aiortc.rtcpeerconnection"]
    assert len(bridged) == 1
    assert bridged[0]["stdlib_message"] == "ice failed" and bridged[0]["log_level"] is LogLevel.warn
    ours = [h for h in logging.getLogger("aiortc").handlers if isinstance(h, logs.TwistedLoggerHandler)]
    assert len(ours) == 1


def test_crash_report_has_state_and_recent_errors():
    reporter = CrashReporter(recent=3)
    reporter.add_state_provider("transports", lambda: {"h1": {"phase": "ice"}})
    reporter.add_state_provider("broken", lambda: 1 / 0)
    reports = []
    globalLogPublisher.addObserver(reports.append)
    try:
        # A handled failure logged at critical level (log.failure) is not a crash.
        reporter({"log_level": LogLevel.critical, "log_namespace": "x", "log_format": "start failed"})
        for i in range(5):
            reporter({"log_level": LogLevel.error, "log_namespace": "x", "log_format": "e{i}", "i": i})
        reporter({"log_level": LogLevel.critical, "log_namespace": "twisted",
                  "log_format": "Unhandled error in Deferred:", "log_failure": Failure(ValueError("v"))})
    finally:
        globalLogPublisher.removeObserver(reports.append)
    crash = [e for e in reports if "crash_report" in e]
    assert len(crash) == 1
    snap = crash[0]["crash_report"]
    assert snap["state"]["transports"] == {"h1": {"phase": "ice"}}
    assert "provider_error" in snap["state"]["broken"]
    assert [e["message"] for e in snap["recent_errors"]][:2] == ["e3", "e4"]
    assert crash[0]["reason"].startswith("unhandled error: Unhandled error in Deferred")
    assert snap["recent_errors"][-1]["error"] == "v"
    assert reporter.reports == 1


def test_every_plan_metric_is_exposed_from_the_first_scrape():
    m = Metrics(CollectorRegistry())
    text = generate_latest(m.registry).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}
    for name in PLAN_METRICS:
        assert any(n == name or n.startswith(name + "_") for n in names), name
    assert "_created" not in text


def test_there_is_no_http_fallback_metric():
    # The bus has no HTTP fallback, so the plan's http_fallback_total could never move.
    m = Metrics(CollectorRegistry())
    assert "http_fallback" not in generate_latest(m.registry).decode()
    assert not hasattr(m, "http_fallback_total") and "http_fallback_total" not in PLAN_METRICS


def test_metrics_are_per_registry():
    a, b = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    a.transport_reconnect_total.inc()
    assert b.registry.get_sample_value("transport_reconnect_total") == 0
    assert a.registry.get_sample_value("transport_reconnect_total") == 1
