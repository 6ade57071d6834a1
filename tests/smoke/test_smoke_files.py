"""The compose files are the render of the one topology description, and the smoke's host
shell is the one the checker recognises (static checks; the running stack is compared with the
compose file in tests/e2e/stack)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from beachmanager.devstack.stack import compose
from beachmanager.devstack.stack import topology as topo
from tests.smoke import run_smoke

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_the_committed_compose_files_are_the_render_of_the_topology():
    stale = compose.write(check=True)
    assert not stale, (f"{[str(p) for p in stale]} differ from beachmanager/devstack/stack/"
                       f"topology.py: run python -m beachmanager.devstack.stack compose --write")


def test_the_stack_cli_checks_the_compose_files_too():
    done = subprocess.run([sys.executable, "-m", "beachmanager.devstack.stack", "compose",
                           "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_smoke_topology_publishes_the_alternate_ports_and_fixed_host_identities():
    services = yaml.safe_load((HERE / "docker-compose.smoke.yml").read_text())["services"]
    assert services["road"]["ports"] == ["14132:4132"]
    assert services["manager-1"]["ports"] == ["18081:8081"]
    assert services["manager-2"]["ports"] == ["18082:8081"]
    for host in topo.HOSTS:
        cmd = services[host.name]["command"]
        assert cmd[cmd.index("--session-id") + 1] == host.session_id
        assert cmd[cmd.index("--join-code") + 1] == host.join_code
        attach = services["attach"]["command"]
        assert f"{host.session_id}:{host.join_code}" in attach
    for name in ("manager-1", "manager-2"):
        env = services[name]["environment"]
        assert env["BEACH_ROAD_URL"] == "http://road:4132"
        assert env["PRIVATE_BEACH_MANAGER_URL"] == f"http://{name}:8081"
        assert env["REDIS_URL"].startswith("redis://redis:")
    assert services["pong"]["profiles"] == ["pong"] == services["agent"]["profiles"]


def test_a_changed_description_is_caught(tmp_path):
    target = compose.targets()[1]
    text = compose.render(target)
    assert "18081:8081" in text
    moved = compose.Target(topo.Topology("smoke", tuple(
        s if s.name != "road" else topo.Service("road", s.octet, s.command, ports=(4133,))
        for s in target.topology.services)), target.path, target.project, target.header,
        target.context, target.image)
    assert compose.render(moved) != text


def test_the_host_shell_prints_markers_the_checker_recognises():
    services = yaml.safe_load((HERE / "docker-compose.smoke.yml").read_text())["services"]
    cmd = services["host-1"]["command"]
    compose_cmd = cmd[cmd.index("--command") + 1].replace("$$", "$")
    assert compose_cmd == run_smoke.HOST_SHELL == topo.SMOKE_SHELL
    # Run the shell's loop body once, for real.
    body = "n=1; echo \"SMOKE-$n-$(date +%s%3N)\""
    out = subprocess.run(["sh", "-c", body], capture_output=True, text=True, check=True).stdout
    assert run_smoke.MARKER.fullmatch(out.strip())
