"""docker/observability/: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``), the Prometheus config and every dashboard query are valid PromQL for
promtool, and every metric they name is exported by a real manager's ``/metrics``."""

import json
import pathlib
import re
import subprocess

import pytest
import pytest_twisted
import yaml

from beachmanager.telemetry.metrics import RTC_READY_BUCKETS
from tests.support.api_client import start_manager

ROOT = pathlib.Path(__file__).resolve().parents[3]
OBS = ROOT / "docker" / "observability"
#: Series Prometheus makes itself for each scrape target (not exported by the manager).
SCRAPE_SERIES = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
#: What the issue asks each to cover (alert names; metrics on the dashboard).
ALERTS = {"BeachManagerRtcReadySloBreach", "BeachManagerReconnectStorm", "BeachManagerFailover",
          "BeachManagerActionQueueNearBound", "BeachManagerInstanceMissing"}
DASHBOARD_METRICS = {"transport_rtc_ready_seconds_bucket", "transport_reconnect_total",
                     "attach_failure_total", "actions_enqueued_total", "actions_acked_total",
                     "action_latency_seconds_bucket", "action_queue_depth_max", "actions_inflight",
                     "failover_total", "auth_failure_total", "reactor_lag_seconds_bucket"}


def promtool(*args: str, cwd: pathlib.Path = OBS) -> str:
    check = subprocess.run([str(ROOT / "scripts" / "check-system"), "promtool"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(check.stderr.strip(), pytrace=False)
    run = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"promtool {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout + run.stderr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def rules() -> list[dict]:
    doc = yaml.safe_load((OBS / "alerts.yml").read_text())
    return [r for group in doc["groups"] for r in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads((OBS / "dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def variable_exprs() -> list[str]:
    """The selectors of the dashboard's query variables (``label_values(<selector>, label)``)."""
    doc = json.loads((OBS / "dashboard.json").read_text())
    out = []
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*\w+\)", var["query"]["query"])
            assert m, var["query"]
            out.append(m.group(1))
    return out


def test_the_name_extractor_finds_metrics_and_nothing_else():
    assert metric_names('histogram_quantile(0.95, sum by (instance, le) (rate(a_bucket{job="x",'
                        'le=~"1.0|by(z)"}[5m]))) > 5 and on (instance) b_total offset 5m') == \
        {"a_bucket", "b_total"}
    assert metric_names("absent(up{job=\"beach-manager\"} == 1)") == {"up"}


def test_promtool_checks_the_rules_and_the_config_and_runs_the_rule_tests():
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")
    assert ALERTS <= {r["alert"] for r in rules()}
    tests = yaml.safe_load((OBS / "alerts_test.yml").read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]}
    silent = {case["alertname"] for t in tests for case in t["alert_rule_test"] if not case["exp_alerts"]}
    assert len(firing & ALERTS) >= 3 and firing <= silent, (firing, silent)  # fires and stays quiet


def test_every_dashboard_query_is_valid_promql(tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 12
    concrete = [e.replace("$__rate_interval", "5m").replace("$instance", ".*") for e in exprs]
    assert not any("$" in e for e in concrete)
    recording = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(concrete)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(recording))
    assert f"SUCCESS: {len(concrete)} rules found" in promtool("check", "rules", str(path))
    used = set().union(*(metric_names(e) for e in exprs))
    assert DASHBOARD_METRICS <= used, DASHBOARD_METRICS - used
    doc = json.loads((OBS / "dashboard.json").read_text())
    slo = next(p for p in doc["panels"] if "SLO" in p["title"])
    steps = slo["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 5] and 5.0 in RTC_READY_BUCKETS
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])


@pytest_twisted.ensureDeferred
async def test_every_metric_the_dashboard_and_rules_use_is_exported_by_the_manager():
    mgr = await start_manager()
    try:
        r = await mgr.call("GET", "/metrics")
        assert r.status == 200
    finally:
        await mgr.stop()
    exported = {line.split("{")[0].split(" ")[0] for line in r.body.decode().splitlines()
                if line and not line.startswith("#")}
    used = set().union(*(metric_names(e) for e in dashboard_exprs() + variable_exprs()),
                       *(metric_names(r["expr"]) for r in rules()))
    assert used - exported - SCRAPE_SERIES == set(), "used but not exported"
    assert "beach_manager_info" in used  # the dashboard's instance list
