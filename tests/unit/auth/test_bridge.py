"""Bridge tokens: issued to one host by the cluster's key, checked against the host that presents
them and the injected clock."""

from __future__ import annotations

import base64

import pytest

from beachmanager.auth.bridge import AssociationAuthority, BridgeTokenError, parse_key
from beachmanager.config import ConfigError, load


def test_a_token_is_good_for_its_host_on_every_instance_sharing_the_key():
    a, b = AssociationAuthority(b"\x05" * 32), AssociationAuthority(b"\x05" * 32)
    assert a.authority == b.authority and not a.ephemeral
    token, expires_ms = a.issue("host-1", "pb-1", 1000.0, 600.0, "mgr-a")
    claims = b.check(token, "host-1", 1500.0)
    assert (claims.host_session_id, claims.private_beach_id, claims.expires_at_ms,
            claims.issued_by) == ("host-1", "pb-1", 1_600_000, "mgr-a")
    assert expires_ms == 1_600_000


@pytest.mark.parametrize("case,code", [("other_host", "invalid_bridge_token"),
                                       ("other_key", "invalid_bridge_token"),
                                       ("expired", "bridge_token_expired"),
                                       ("garbage", "invalid_bridge_token"),
                                       ("empty", "invalid_bridge_token")])
def test_refusals(case, code):
    a = AssociationAuthority(b"\x05" * 32)
    token, _ = a.issue("host-1", None, 1000.0, 600.0, "mgr-a")
    host, now = "host-1", 1100.0
    if case == "other_host":
        host = "host-2"
    elif case == "other_key":
        token, _ = AssociationAuthority().issue("host-1", None, 1000.0, 600.0, "mgr-x")
    elif case == "expired":
        now = 1700.0
    elif case == "garbage":
        token = "not.a.jwt"
    elif case == "empty":
        token = ""
    with pytest.raises(BridgeTokenError) as e:
        a.check(token, host, now)
    assert e.value.code == code


def test_the_key_setting_is_checked_and_required_with_shared_stores_in_production():
    good = base64.b64encode(b"\x09" * 32).decode()
    assert parse_key(good) == b"\x09" * 32
    with pytest.raises(ConfigError, match="BEACH_MANAGER_ASSOCIATION_KEY must decode to 32"):
        load({}, {"BEACH_MANAGER_ASSOCIATION_KEY": base64.b64encode(b"x").decode()})
    prod = {"BEACH_ENV": "production", "REDIS_URL": "redis://r:6379"}
    with pytest.raises(ConfigError, match="association-key / BEACH_MANAGER_ASSOCIATION_KEY is "
                                          "required in production"):
        load({}, prod)
    assert load({}, {**prod, "BEACH_MANAGER_ASSOCIATION_KEY": good}).association_key == b"\x09" * 32
    assert load({}, {"BEACH_ENV": "production"}).association_key is None  # one instance: fine
