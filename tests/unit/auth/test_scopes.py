"""Scope grants and wildcards, including the legacy prefix bug (pb:control.* vs pb:controlX)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.auth.scopes import MAX_SCOPES, covers, granted_scopes, has_scope


@pytest.mark.parametrize("granted, required, expected", [
    ("*", "pb:control.write", True),
    ("pb:control.write", "pb:control.write", True),
    ("pb:control.*", "pb:control.write", True),
    ("pb:control.*", "pb:control.read.extra", True),
    ("pb:control.*", "pb:controlX", False),          # the upstream prefix bug
    ("pb:control.*", "pb:control", False),           # the wildcard needs something after the dot
    ("pb:control.*", "pb:control.", False),
    ("pb:control*", "pb:controlX", False),           # '*' not after a separator is literal
    ("pb:control*", "pb:control*", True),
    ("pb:*", "pb:sessions.read", True),
    ("pb:*", "pbx:sessions.read", False),
    ("pb:*.*", "pb:sessions.read", False),           # only one trailing wildcard
    ("pb:sessions.read", "pb:sessions.write", False),
    ("pb:sessions.rea", "pb:sessions.read", False),
    ("", "pb:sessions.read", False),
    (".*", "x", False),
])
def test_covers(granted, required, expected):
    assert covers(granted, required) is expected


def test_scope_and_scp_are_united_and_junk_is_ignored():
    claims = {"scope": "pb:a.read  pb:b.write", "scp": ["pb:c.read", 7, None, "pb:d.read pb:e.read"]}
    assert granted_scopes(claims) == {"pb:a.read", "pb:b.write", "pb:c.read", "pb:d.read", "pb:e.read"}
    assert granted_scopes({"scope": 5, "scp": {"x": 1}}) == frozenset()
    assert granted_scopes({"scp": "pb:x.read pb:y.read"}) == {"pb:x.read", "pb:y.read"}


def test_hostile_grants_are_bounded():
    claims = {"scope": " ".join(f"s{i}" for i in range(10_000)) + " " + "x" * 10_000}
    granted = granted_scopes(claims)
    assert len(granted) == MAX_SCOPES
    assert "x" * 10_000 not in granted


scope_chars = st.text(alphabet="abc.:*X", min_size=0, max_size=12)


@given(granted=scope_chars, required=scope_chars)
def test_wildcard_never_grants_a_scope_outside_its_prefix(granted, required):
    if covers(granted, required) and granted not in ("*", required):
        prefix = granted[:-1]
        assert granted.endswith("*") and prefix[-1] in ".:"
        assert required.startswith(prefix) and len(required) > len(prefix)


@given(required=scope_chars.filter(bool))
def test_star_covers_everything_and_exact_covers_itself(required):
    assert has_scope({"*"}, required)
    assert has_scope({required}, required)
    assert not has_scope(set(), required)
