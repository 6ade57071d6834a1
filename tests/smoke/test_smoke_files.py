"""The smoke's Docker topology matches what the smoke script checks (static checks only)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.smoke import run_smoke

HERE = Path(__file__).resolve().parent


def _default(value: str) -> str:
    """``${NAME:-default}`` -> default (compose interpolation)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_topology_uses_the_alternate_ports_and_one_host_identity():
    services = yaml.safe_load((HERE / "docker-compose.smoke.yml").read_text())["services"]
    assert services["road"]["ports"] == ["14132:14132"]
    assert services["manager"]["ports"] == ["18081:18081"]
    host_cmd = [_default(x) for x in services["host"]["command"]]
    session_id = host_cmd[host_cmd.index("--session-id") + 1]
    join_code = host_cmd[host_cmd.index("--join-code") + 1]
    env = services["manager"]["environment"]
    assert _default(env["BEACH_MANAGER_HOSTS"]) == f"{session_id}:{join_code}"
    assert env["BEACH_ROAD_URL"] == "http://road:14132"
    assert re.fullmatch(r"[A-Z0-9]{6}", join_code)


def test_the_host_shell_prints_markers_the_checker_recognises():
    services = yaml.safe_load((HERE / "docker-compose.smoke.yml").read_text())["services"]
    compose_cmd = services["host"]["command"][-1].replace("$$", "$")
    assert compose_cmd == run_smoke.HOST_SHELL
    # Run the shell's loop body once, for real.
    body = "n=1; echo \"SMOKE-$n-$(date +%s%3N)\""
    out = subprocess.run(["sh", "-c", body], capture_output=True, text=True, check=True).stdout
    assert run_smoke.MARKER.fullmatch(out.strip())
