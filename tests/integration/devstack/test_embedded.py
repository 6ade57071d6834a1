"""`make run`'s stack in one process: the manager with a dev Road and dev hosts, driven by
scripts/send_action.py over real HTTP, exactly as a newcomer would."""

import pathlib
import subprocess
import sys

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import reactor, threads

from beachmanager import config
from beachmanager.config import ConfigError
from beachmanager.manager import build_manager
from beachmanager.telemetry.metrics import Metrics
from tests.support.servers import free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_dev_stack_is_refused_in_production_and_the_dev_road_replaces_the_road_url():
    env = {"BEACH_ENV": "production", "BEACH_DEV_HOSTS": "2"}
    with pytest.raises(ConfigError, match="refused when BEACH_ENV=production"):
        config.load({}, env)
    cfg = config.load({}, {"BEACH_DEV_ROAD": "4999", "BEACH_ROAD_URL": "http://road.example"})
    root = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()))
    assert root.ctx.config.road_url == "http://127.0.0.1:4999"
    assert root.getServiceNamed("beach-road-dev") is list(root)[0]  # first in, last to stop


@pytest_twisted.ensureDeferred
async def test_manager_with_dev_road_and_hosts_takes_an_action_from_send_action_script():
    port = free_port()
    cfg = config.defaults(http_endpoint=f"tcp:{port}:interface=127.0.0.1", dev_road=free_port(),
                          dev_hosts=2, auth_bypass=True)
    root = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()), on_fatal=list().append)
    root.startService()
    try:
        dev = root.parts.dev_hosts
        await dev.whenReady()
        assert len(dev.attached) == 2
        first = dev.started[0].session_id
        run = await threads.deferToThread(
            subprocess.run, [sys.executable, str(ROOT / "scripts" / "send_action.py"), "--url",
                             f"http://127.0.0.1:{port}", "echo MARK-$((6*7))"],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert f"for host {first}" in run.stdout
        assert '"ack_status": "ok"' in run.stdout
        assert "  | MARK-42" in run.stdout  # the shell ran it; the manager's mirror shows it
        ready, report = root.readiness()
        assert ready, report
    finally:
        await root.stopService()
    assert all(not h.host.running for h in dev.started)
