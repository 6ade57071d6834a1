"""When secure signaling and secure transport apply, and the insecure overrides."""

from __future__ import annotations

import warnings

import pytest

from beachmanager.protocol.crypto import (
    SECURE_PEER_LABELS,
    InsecureOverrides,
    InsecureOverrideWarning,
    secure_transport_active,
    signaling_sealed,
)

OFF = InsecureOverrides()


def test_the_six_labels():
    assert SECURE_PEER_LABELS == {"mgr-actions", "pb-controller", "mgr-acks", "mgr-state",
                                  "private-beach-dashboard", "beach-manager"}


@pytest.mark.parametrize("label", sorted(SECURE_PEER_LABELS))
def test_secure_transport_for_each_secure_label(label):
    assert secure_transport_active("SMOKEP", label, OFF)


@pytest.mark.parametrize("label", [None, "", "beach", "Beach-Manager", "beach-manager ", "viewer"])
def test_no_secure_transport_for_other_labels(label):
    assert not secure_transport_active("SMOKEP", label, OFF)


@pytest.mark.parametrize("code", [None, "", "  ", "\t\n"])
def test_no_secure_transport_or_sealing_without_a_join_code(code):
    assert not secure_transport_active(code, "beach-manager", OFF)
    assert not signaling_sealed(code, OFF)


def test_overrides_switch_each_part_off():
    assert signaling_sealed("SMOKEP", OFF)
    assert not signaling_sealed("SMOKEP", InsecureOverrides(signaling=True))
    assert secure_transport_active("SMOKEP", "beach-manager", InsecureOverrides(signaling=True))
    assert not secure_transport_active("SMOKEP", "beach-manager",
                                       InsecureOverrides(transport=True))
    assert signaling_sealed("SMOKEP", InsecureOverrides(transport=True))


@pytest.mark.parametrize("value,on", [
    ("I_KNOW_THIS_IS_UNSAFE", True),
    ("  I_KNOW_THIS_IS_UNSAFE\n", True),
    ("i_know_this_is_unsafe", False),
    ("1", False),
    ("true", False),
    ("", False),
])
def test_override_needs_the_exact_token(value, on):
    env = {"BEACH_INSECURE_SIGNALING": value, "BEACH_INSECURE_TRANSPORT": value}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ov = InsecureOverrides.from_environ(env)
    assert ov == InsecureOverrides(signaling=on, transport=on)
    loud = [w for w in caught if issubclass(w.category, InsecureOverrideWarning)]
    assert len(loud) == (2 if on else 0)
    assert len(ov.messages()) == (2 if on else 0)
    if on:
        assert all("SECURITY" in str(w.message) for w in loud)


def test_off_unless_given_and_never_read_from_the_process(monkeypatch):
    """protocol/ reads no environment: the caller hands the overrides in."""
    monkeypatch.setenv("BEACH_INSECURE_TRANSPORT", "I_KNOW_THIS_IS_UNSAFE")
    assert secure_transport_active("SMOKEP", "beach-manager")  # the process env is not read
    with pytest.warns(InsecureOverrideWarning, match="NO ENCRYPTION"):
        ov = InsecureOverrides.from_environ({"BEACH_INSECURE_TRANSPORT": "I_KNOW_THIS_IS_UNSAFE"})
    assert not secure_transport_active("SMOKEP", "beach-manager", ov)
