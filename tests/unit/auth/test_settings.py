"""The auth and persistence settings: parsing, one-line reasons, secrets never shown."""

import base64
import os

import pytest

from beachmanager import config
from beachmanager.registry.join_codes import (
    JoinCodeCipher,
    JoinCodeError,
    JoinCodeKeys,
    key_id,
    parse_keys,
)


def k() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_defaults_and_environment():
    cfg = config.load({}, {})
    assert (cfg.auth_bypass, cfg.beach_env, cfg.join_code_key, cfg.beach_gate_jwks_url) == (
        False, "development", None, None)
    key = k()
    cfg = config.load({}, {"BEACH_GATE_JWKS_URL": "https://gate.example/.well-known/jwks.json",
                           "BEACH_GATE_ISSUER": "beach-gate", "CLERK_AUDIENCE": "aud-1", "AUTH_BYPASS": "yes",
                           "BEACH_MANAGER_JOIN_CODE_KEY": key, "DATABASE_MIGRATE_URL": "postgresql://o:pw@db/x"})
    assert cfg.auth_bypass is True and cfg.beach_gate_issuer == "beach-gate" and cfg.clerk_audience == "aud-1"
    assert cfg.join_code_key.keys == (base64.b64decode(key),)
    described = str(cfg.describe())
    assert key not in described and "pw" not in described


@pytest.mark.parametrize("env, words", [
    ({"AUTH_BYPASS": "maybe"}, "--auth-bypass / AUTH_BYPASS must be 1/true/yes/on"),
    ({"BEACH_ENV": "prod"}, "--beach-env / BEACH_ENV must be one of"),
    ({"BEACH_GATE_JWKS_URL": "ftp://x"}, "--beach-gate-jwks-url / BEACH_GATE_JWKS_URL must be a http/https URL"),
    ({"BEACH_GATE_ISSUER": "a b"}, "--beach-gate-issuer / BEACH_GATE_ISSUER must be 1-512 printable"),
    ({"BEACH_MANAGER_JOIN_CODE_KEY": "c2hvcnQ="}, "key 1 must decode to 32 bytes, got 5"),
    ({"BEACH_MANAGER_JOIN_CODE_KEY": "!!!"}, "key 1 is not base64"),
    ({"AUTH_BYPASS": "1", "BEACH_ENV": "production"}, "refused when BEACH_ENV=production"),
])
def test_bad_values_are_one_line(env, words):
    with pytest.raises(config.ConfigError) as info:
        config.load({}, env)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_join_code_keys_rotate_and_bind_to_their_row():
    old, new = k(), k()
    before = JoinCodeCipher(parse_keys(old))
    kid, blob = before.encrypt("JOIN-1", "pb", "host")
    after = JoinCodeCipher(parse_keys(f"{new}, {old.replace('+', '-').replace('/', '_').rstrip('=')}"))
    assert after.current_id == key_id(base64.b64decode(new)) != kid
    assert after.decrypt(kid, blob, "pb", "host") == "JOIN-1"  # old codes still readable
    assert after.encrypt("JOIN-1", "pb", "host")[0] == after.current_id
    with pytest.raises(JoinCodeError, match="authenticate"):
        after.decrypt(kid, blob, "pb", "other-host")
    with pytest.raises(JoinCodeError, match="authenticate"):
        after.decrypt(kid, blob[:-1] + bytes([blob[-1] ^ 1]), "pb", "host")
    with pytest.raises(JoinCodeError, match="not configured"):
        JoinCodeCipher(parse_keys(new)).decrypt(kid, blob, "pb", "host")
    with pytest.raises(JoinCodeError, match="truncated"):
        after.decrypt(kid, blob[:10], "pb", "host")
    assert "JOIN" not in repr(parse_keys(old)) and old not in repr(parse_keys(old))
    assert len(JoinCodeKeys.generate().keys[0]) == 32
