"""Files a user relies on but never runs here: tap.md, packaging, Docker, the toggle helper, CI."""

import configparser
import os
import pathlib
import re
import subprocess

import yaml

from beachmanager import config

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_tap_md_documents_every_setting_with_its_variable_and_default():
    text = (ROOT / "tap.md").read_text()
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `--([a-z0-9-]+)` \| `?([A-Z0-9_]*)`? \| (.+?) \| (.+) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3).strip("`"))
    for s in config.SETTINGS:
        assert s.option in rows, f"tap.md has no row for --{s.option}"
        env, default = rows[s.option]
        assert env == (s.env or ""), s.option
        assert default == (s.default if s.default is not None else "unset"), s.option
    assert set(rows) == {s.option for s in config.SETTINGS}, "tap.md documents a setting that does not exist"


def test_setup_cfg_lists_every_package_and_the_drop_in_folder():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    found = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".")
             for p in (ROOT / "beachmanager").rglob("__init__.py")}
    assert found <= listed, f"packages missing from setup.cfg: {sorted(found - listed)}"
    assert "twisted.plugins" in listed
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()
    for req in cfg["options"]["install_requires"].split("\n"):
        if req.strip():
            assert "==" in req, f"unpinned dependency: {req}"


def test_dockerfile_is_non_root_warms_plugins_and_starts_twist():
    lines = [ln.strip() for ln in (ROOT / "docker" / "Dockerfile").read_text().splitlines()]
    instructions = [ln.split()[0] for ln in lines if ln and not ln.startswith("#") and ln.split()[0].isupper()]
    assert instructions[0] == "FROM"
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] != "USER root"
    text = "\n".join(lines)
    assert "getPlugins(IPlugin)" in text
    assert '"twist", "--reactor=beach-asyncio"' in text and '"beach-manager"' in text
    for copied in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied


def test_compose_file_has_the_rewrite_service_with_the_plan_environment():
    doc = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    svc = doc["services"]["beach-manager-rewrite"]
    assert "8081:8081" in svc["ports"]
    env = svc["environment"]
    for key in ("BEACH_MANAGER_INSTANCE_ID", "BEACH_MANAGER_IMPL", "BEACH_MANAGER_CAPACITY",
                "PRIVATE_BEACH_MANAGER_URL"):
        assert key in env
    assert env["BEACH_MANAGER_IMPL"] == "rewrite" and str(env["BEACH_MANAGER_CAPACITY"]) == "50"
    assert env["PRIVATE_BEACH_MANAGER_URL"] == "http://beach-manager-rewrite:8081"
    assert {"redis", "postgres"} <= set(doc["services"])
    assert set(svc["depends_on"]) == {"redis", "postgres"}
    assert (ROOT / svc["build"]["dockerfile"]).exists()


def test_env_example_has_the_toggle():
    text = (ROOT / ".env.example").read_text()
    assert re.search(r"^BEACH_MANAGER_IMPL=(legacy|rewrite)$", text, re.M)


def manager_url(env, tmp_path):
    e = {k: v for k, v in os.environ.items() if k != "BEACH_MANAGER_IMPL"}
    e.update(env)
    e.setdefault("ENV_FILE", str(tmp_path / "missing.env"))
    return subprocess.run([str(ROOT / "scripts" / "manager-url")], env=e, capture_output=True, text=True)


def test_manager_url_follows_the_toggle(tmp_path):
    assert manager_url({"BEACH_MANAGER_IMPL": "legacy"}, tmp_path).stdout.strip() == "http://beach-manager:8080"
    assert manager_url({"BEACH_MANAGER_IMPL": "rewrite"}, tmp_path).stdout.strip() == \
        "http://beach-manager-rewrite:8081"
    env_file = tmp_path / ".env"
    env_file.write_text("# toggle\nBEACH_MANAGER_IMPL=rewrite\n")
    assert manager_url({"ENV_FILE": str(env_file)}, tmp_path).stdout.strip() == \
        "http://beach-manager-rewrite:8081"
    bad = manager_url({"BEACH_MANAGER_IMPL": "both"}, tmp_path)
    assert bad.returncode == 2 and "legacy or rewrite" in bad.stderr


def test_manager_url_defaults_to_the_rewrite(tmp_path):
    # No BEACH_MANAGER_IMPL in the environment and no .env: the rewrite.
    none = manager_url({}, tmp_path)
    assert none.returncode == 0 and none.stdout.strip() == "http://beach-manager-rewrite:8081"
    # Set but empty, and a .env without the key: the rewrite too.
    env_file = tmp_path / ".env"
    env_file.write_text("BEACH_ROAD_URL=http://beach-road:4132\n")
    assert manager_url({"BEACH_MANAGER_IMPL": "", "ENV_FILE": str(env_file)},
                       tmp_path).stdout.strip() == "http://beach-manager-rewrite:8081"
    # The environment wins over .env (the roll-back path: BEACH_MANAGER_IMPL=legacy).
    env_file.write_text("BEACH_MANAGER_IMPL=rewrite\n")
    assert manager_url({"BEACH_MANAGER_IMPL": "legacy", "ENV_FILE": str(env_file)},
                       tmp_path).stdout.strip() == "http://beach-manager:8080"


def test_env_example_defaults_to_the_rewrite_and_its_comments_agree():
    text = (ROOT / ".env.example").read_text()
    assert re.findall(r"^BEACH_MANAGER_IMPL=(\w+)$", text, re.M) == ["rewrite"]
    assert "legacy  -> http://beach-manager:8080" in text
    assert "rewrite -> http://beach-manager-rewrite:8081" in text


def test_line_limit_guard_finds_oversized_files(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_lines", ROOT / "scripts" / "check_lines.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "beachmanager").mkdir()
    (tmp_path / "beachmanager" / "big.py").write_text("x = 1\n" * 1801)
    (tmp_path / "beachmanager" / "ok.py").write_text("x = 1\n" * 1800)
    assert mod.oversized(tmp_path) == [("beachmanager/big.py", 1801)]
    assert mod.oversized(ROOT) == []


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("make test") < readme.index("## Configuration")


def test_the_console_assets_are_package_data_and_the_regular_install_ships_them(tmp_path):
    import fnmatch
    import sys

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["beachmanager.api.ui"].split(",")]
    static = ROOT / "beachmanager" / "api" / "ui" / "static"
    files = sorted(p.name for p in static.iterdir())
    assert "index.html" in files and "console.js" in files
    for name in files:
        assert any(fnmatch.fnmatch(f"static/{name}", p) for p in patterns), f"{name} is not package data"
    # the package as `make install` installs it (not this checkout): run from elsewhere
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", "import beachmanager.api.ui as u, pathlib; "
                          "print(pathlib.Path(u.__file__).parent)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    installed = pathlib.Path(run.stdout.strip())
    assert "site-packages" in installed.parts, f"{installed}: not a regular install (make install)"
    missing = [n for n in files if not (installed / "static" / n).is_file()]
    assert missing == [], f"the installed package lacks {missing}: run make install"
