"""Which hosts to manage: SESSION_ID:JOIN_CODE from options, the environment and a file."""

from __future__ import annotations

import pytest

from beachmanager import config
from beachmanager.tap import Options
from beachmanager.transport import targets
from beachmanager.transport.targets import HostTarget


def test_parse_target_and_its_repr_hides_the_code():
    t = targets.parse_target(" 3f2a-b:ABC123 ")
    assert t == HostTarget("3f2a-b", "ABC123")
    assert "ABC123" not in repr(t) and "***" in repr(t)


@pytest.mark.parametrize("raw, reason", [
    ("no-colon", "no ':'"),
    (":ABC123", "bad session id"),
    ("bad id:ABC123", "bad session id"),
    ("host-1:", "bad join code"),
    ("host-1:AB C", "bad join code"),
])
def test_bad_targets_are_refused_without_echoing_the_code(raw, reason):
    with pytest.raises(ValueError, match=reason) as err:
        targets.parse_target(raw)
    assert "AB C" not in str(err.value) and "ABC123" not in str(err.value)


def test_hosts_file_with_comments_and_a_bad_line_named(tmp_path):
    good = tmp_path / "hosts"
    good.write_text("# managed hosts\nh1:AAA111\n\n  h2:BBB222  # second\n")
    hf = targets.parse_hosts_file(str(good))
    assert hf.targets == (HostTarget("h1", "AAA111"), HostTarget("h2", "BBB222"))
    assert "AAA111" not in repr(hf) and "2 hosts" in repr(hf)
    bad = tmp_path / "bad"
    bad.write_text("h1:AAA111\nnonsense\n")
    with pytest.raises(ValueError, match="line 2"):
        targets.parse_hosts_file(str(bad))
    with pytest.raises(ValueError, match="cannot read"):
        targets.parse_hosts_file(str(tmp_path / "missing"))


def test_merge_keeps_the_first_target_per_host():
    a = (HostTarget("h1", "AAA111"),)
    b = (HostTarget("h1", "ZZZ999"), HostTarget("h2", "BBB222"))
    assert targets.merge_targets(a, b) == (HostTarget("h1", "AAA111"), HostTarget("h2", "BBB222"))


def test_host_option_is_repeatable_and_the_variable_takes_a_list(tmp_path):
    opts = Options(environ={"BEACH_MANAGER_HOSTS": "h9:ZZZ999"})
    opts.parseOptions(["--host", "h1:AAA111", "--host", "h2:BBB222"])
    assert opts.config.host == (HostTarget("h1", "AAA111"), HostTarget("h2", "BBB222"))
    env_only = config.load({}, {"BEACH_MANAGER_HOSTS": "h1:AAA111, h2:BBB222 h3:CCC333"})
    assert [t.host_session_id for t in env_only.host] == ["h1", "h2", "h3"]
    assert config.load({}, {}).host == ()
    with pytest.raises(config.ConfigError, match="--host / BEACH_MANAGER_HOSTS"):
        config.load({"host": ["oops"]}, {})
    described = repr(config.load({}, {"BEACH_MANAGER_HOSTS": "h1:SECRET"}).describe())
    assert "SECRET" not in described


def test_ice_settings_from_the_environment():
    cfg = config.load({}, {"BEACH_ICE_SERVERS": '[{"urls":"turn:t.example","username":"u",'
                                                 '"credential":"pw"}]',
                           "BEACH_WEBRTC_DISABLE_STUN": "1",
                           "BEACH_ICE_HOST_ADDRESSES": "127.0.0.1"})
    assert cfg.webrtc_disable_stun and cfg.ice_host_addresses == ("127.0.0.1",)
    assert cfg.ice_servers[0].is_turn
    assert "pw" not in repr(cfg.describe())
    with pytest.raises(config.ConfigError, match="BEACH_ICE_SERVERS is not valid JSON"):
        config.load({}, {"BEACH_ICE_SERVERS": "[{"})
