"""Options and settings: parsing, precedence, one-line reasons for bad values."""

import pytest

from beachmanager import config
from beachmanager.config import ConfigError, redact_url
from beachmanager.tap import Options


def parse(argv=(), env=None):
    opts = Options(environ=env or {}, exit_on_error=False)
    opts.parseOptions(list(argv))
    return opts.config


def test_defaults():
    cfg = parse()
    assert cfg.instance_id == "beach-manager-rewrite-1"
    assert cfg.impl == "rewrite"
    assert cfg.capacity == 50
    assert cfg.http_endpoint == "tcp:8081:interface=127.0.0.1"
    assert cfg.redis_url is None and cfg.database_url is None
    assert cfg.stores == {"runtime": "memory", "registry": "memory"}


def test_environment_then_command_line():
    env = {"BEACH_MANAGER_CAPACITY": "7", "BEACH_MANAGER_IMPL": "legacy",
           "BEACH_MANAGER_INSTANCE_ID": "mgr-a", "REDIS_URL": "redis://127.0.0.1:6379/2",
           "DATABASE_URL": "postgresql://u:secret@db/x", "BEACH_ROAD_URL": "https://road.example/",
           "BEACH_MANAGER_HTTP_ENDPOINT": "tcp:0"}
    cfg = parse(env=env)
    assert (cfg.capacity, cfg.impl, cfg.instance_id) == (7, "legacy", "mgr-a")
    assert cfg.road_url == "https://road.example"
    assert cfg.stores == {"runtime": "redis", "registry": "postgres"}
    assert "secret" not in str(cfg.describe())
    cfg = parse(["--capacity", "9", "--impl", "rewrite"], env)
    assert (cfg.capacity, cfg.impl) == (9, "rewrite")


def test_empty_environment_value_means_default():
    assert parse(env={"BEACH_MANAGER_CAPACITY": ""}).capacity == 50


@pytest.mark.parametrize("var,value,reason", [
    ("BEACH_MANAGER_CAPACITY", "abc", "must be a whole number"),
    ("BEACH_MANAGER_CAPACITY", "0", "between 1 and"),
    ("BEACH_MANAGER_CAPACITY", "-5", "between 1 and"),
    ("BEACH_MANAGER_CAPACITY", "1.5", "whole number"),
    ("BEACH_MANAGER_IMPL", "both", "must be one of legacy, rewrite"),
    ("BEACH_MANAGER_INSTANCE_ID", "has space", "letters, digits"),
    ("BEACH_ROAD_URL", "ftp://road", "http/https URL"),
    ("BEACH_ROAD_URL", "http://", "has no host"),
    ("REDIS_URL", "http://redis", "redis/rediss/unix URL"),
    ("DATABASE_URL", "mysql://db/x", "postgres/postgresql URL"),
    ("BEACH_MANAGER_HTTP_ENDPOINT", "nonsense:1", "not a Twisted endpoint"),
    ("BEACH_MANAGER_HTTP_ENDPOINT", "tcp:notaport", "not a Twisted endpoint"),
    ("BEACH_MANAGER_STOP_TIMEOUT", "0", "above 0"),
])
def test_bad_values_are_rejected_with_their_reason(var, value, reason):
    with pytest.raises(ConfigError) as e:
        parse(env={var: value})
    message = str(e.value)
    assert var in message and reason in message
    assert "\n" not in message


def test_bad_value_exits_with_one_line():
    opts = Options(environ={"BEACH_MANAGER_CAPACITY": "lots"})
    with pytest.raises(SystemExit) as e:
        opts.parseOptions([])
    assert str(e.value).startswith("beach-manager: error: --capacity / BEACH_MANAGER_CAPACITY")
    assert "\n" not in str(e.value)


def test_password_is_redacted_in_errors_and_descriptions():
    with pytest.raises(ConfigError) as e:
        parse(env={"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(e.value)
    assert redact_url("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_help_documents_every_option_with_its_variable_and_default():
    text = str(Options(environ={}))
    for s in config.SETTINGS:
        assert f"--{s.option}" in text
        assert s.env in text
    assert "[default: 50]" in text


def test_defaults_helper_and_replace():
    cfg = config.defaults(capacity=3)
    assert cfg.capacity == 3
    with pytest.raises(KeyError):
        cfg.replace(nope=1)
