"""``beach-host-dev`` options: required Road URL, environment fallbacks, clear errors; the
service it builds (nothing starts until the reactor runs it)."""

import json

import pytest
from twisted.python import usage

from beachmanager.devstack.host import tap
from beachmanager.devstack.host.link import EXT_HEADER_CLIENT, EXT_HEADER_HOST


def parse(args, environ=None):
    opts = tap.Options(environ=environ or {})
    opts.parseOptions(args)
    return opts


def test_defaults():
    s = parse(["--road", "http://127.0.0.1:4132/"]).settings
    assert s.road_url == "http://127.0.0.1:4132" and s.command is None and (s.cols, s.rows) == (80, 24)
    assert s.heartbeat_interval == 15 and s.extension_header == EXT_HEADER_CLIENT and not s.honour_resize
    assert s.join_code is None and s.harness and s.exit_with_command and s.ice_servers == ()
    assert not s.overrides.signaling and not s.overrides.transport


def test_options_and_environment():
    env = {"BEACH_ROAD_URL": "https://road.example", "BEACH_SMOKE_PASSPHRASE": "SMOKEP",
           "BEACH_ICE_SERVERS": '[{"urls": "stun:stun.example:3478"}]',
           "BEACH_INSECURE_TRANSPORT": "I_KNOW_THIS_IS_UNSAFE"}
    with pytest.warns(UserWarning):
        s = parse(["--command", "sh -c 'echo hi'", "--extension-header", "0x4A", "--honour-resize",
                   "--heartbeat-interval", "2.5", "--keep-running", "--no-harness", "--cols", "100"], env).settings
    assert s.road_url == "https://road.example" and s.join_code == "SMOKEP"
    assert s.command == ("sh", "-c", "echo hi") and s.extension_header == EXT_HEADER_HOST
    assert s.honour_resize and s.heartbeat_interval == 2.5 and not s.exit_with_command and not s.harness
    assert s.cols == 100 and s.overrides.transport and len(s.ice_servers) == 1
    assert parse(["--road", "http://r", "--join-code", "ABC123"],
                 {"BEACH_HOST_PASSPHRASE": "X"}).settings.join_code == "ABC123"


@pytest.mark.parametrize("args", [[], ["--road", "ftp://x"], ["--road", "http://x", "--extension-header", "0x45"],
                                  ["--road", "http://x", "--cols", "0"], ["--road", "http://x", "--command", ""],
                                  ["--road", "http://x", "--heartbeat-interval", "soon"]])
def test_bad_options(args):
    with pytest.raises(usage.UsageError):
        parse(args)


def test_make_service_builds_the_host_without_io(tmp_path):
    from twisted.internet import reactor

    opts = parse(["--road", "http://127.0.0.1:1", "--info-file", str(tmp_path / "info.json")])
    host = tap.makeService(opts, reactor)
    assert host.name == "beach-host-dev" and host.pty is None and not host.running
    tap.print_info({"session_id": "s", "join_code": "J"}, str(tmp_path / "info.json"))
    assert json.loads((tmp_path / "info.json").read_text()) == {"session_id": "s", "join_code": "J"}
