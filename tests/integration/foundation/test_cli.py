"""The command line as a user meets it: twistd/twist, the drop-in, the reactor plugin, bad values."""

import os
import pathlib
import subprocess
import sys
import urllib.error
import urllib.request

from beachmanager import config
from tests.support.eventually import eventually_sync
from tests.support.servers import free_port, wait_for_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def run(args, env=None, timeout=60, **kw):
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for var in [s.env for s in config.SETTINGS]:
        if env is None or var not in env:
            e.pop(var, None)
    return subprocess.run(args, env=e, capture_output=True, text=True, timeout=timeout, cwd="/tmp", **kw)


def test_importing_the_drop_in_installs_no_reactor():
    code = ("import sys, twisted.plugins.beach_manager_plugin as p;"
            "assert 'twisted.internet.reactor' not in sys.modules, 'reactor installed';"
            "assert 'beachmanager.tap' not in sys.modules and 'klein' not in sys.modules;"
            "print(p.beachManager.tapname, p.beachAsyncio.shortName)")
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["beach-manager", "beach-asyncio"]


def test_reactor_plugin_installs_asyncio_reactor_on_the_current_loop():
    code = ("from twisted.application.reactors import installReactor;"
            "r = installReactor('beach-asyncio');"
            "import asyncio; from twisted.internet.asyncioreactor import AsyncioSelectorReactor;"
            "assert isinstance(r, AsyncioSelectorReactor);"
            "assert asyncio.get_event_loop_policy().get_event_loop() is r._asyncioEventloop;"
            "print('ok')")
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_twistd_help_lists_the_plugin():
    r = run([str(BIN / "twistd"), "--help"])
    assert r.returncode == 0 and "beach-manager" in r.stdout


def test_twist_help_documents_every_option():
    r = run([str(BIN / "twist"), "--reactor=beach-asyncio", "beach-manager", "--help"])
    assert r.returncode == 0, r.stderr
    for s in config.SETTINGS:
        assert f"--{s.option}" in r.stdout and s.env in r.stdout


def test_bad_capacity_exits_non_zero_with_one_clear_line():
    r = run([str(BIN / "twist"), "--reactor=beach-asyncio", "beach-manager"],
            env={"BEACH_MANAGER_CAPACITY": "many"})
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "BEACH_MANAGER_CAPACITY" in lines[0] and "whole number" in lines[0]


def test_other_reactor_is_refused_naming_the_right_one():
    r = run([str(BIN / "twist"), "beach-manager"])
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--reactor=beach-asyncio" in lines[0], r.stderr


def test_twist_serves_and_stops_cleanly_and_port_conflict_exits_non_zero():
    port = free_port()
    env = {"BEACH_MANAGER_HTTP_ENDPOINT": f"tcp:{port}:interface=127.0.0.1"}
    e = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    args = [str(BIN / "twist"), "--log-format=text", "--reactor=beach-asyncio", "beach-manager"]
    proc = subprocess.Popen(args, env=e, cwd="/tmp", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_port(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.read() == b"OK"

        def ready() -> bool:  # another process: only its HTTP answer can be read
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                return resp.status == 200

        eventually_sync(ready, timeout=10, what="/readyz to answer 200",
                        errors=(urllib.error.HTTPError,))
        # A second instance on the same port: fatal start-up error, non-zero exit.
        second = run(args, env=env, timeout=60)
        assert second.returncode != 0
        assert "fatal start-up error in http" in second.stdout + second.stderr
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    # twist re-raises SIGTERM after a clean shutdown, so the status is "killed by SIGTERM".
    assert proc.returncode in (0, -15), err
    assert "in-memory" in out
    assert out.index('stopping http') < out.index('stopping loop-lag')
