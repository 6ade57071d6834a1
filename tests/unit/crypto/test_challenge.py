"""Challenge frames: exact layout, and each check rejecting with its own reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import crypto
from beachmanager.protocol.crypto import CryptoError, Role
from tests.unit.crypto.support import HANDSHAKE_ID, HOST_PEER, MANAGER_PEER

PSK = hashlib.sha256(b"psk").digest()
HASH = hashlib.sha256(b"noise h").digest()
HOST = crypto.derive_transport_keys(PSK, HASH, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
MGR = crypto.derive_transport_keys(PSK, HASH, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
NONCE = bytes(range(16))


def test_frame_layout_is_exact():
    frame = crypto.build_challenge(MGR, "responder", nonce=NONCE)
    code = MGR.verification_code.encode()
    mac = hmac.new(MGR.challenge_key, MGR.challenge_context + b"\x01" + code + NONCE,
                   hashlib.sha256).digest()
    assert frame == b"\x01\x01" + code + NONCE + mac
    assert len(frame) == crypto.CHALLENGE_FRAME_LEN == 56
    assert crypto.build_challenge(HOST, Role.INITIATOR, nonce=NONCE)[:2] == b"\x01\x00"


def test_both_directions_verify_and_nonces_are_random():
    a = crypto.build_challenge(HOST, "initiator")
    b = crypto.build_challenge(HOST, "initiator")
    assert a[8:24] != b[8:24]
    crypto.verify_challenge(MGR, "responder", a)
    crypto.verify_challenge(HOST, "initiator", crypto.build_challenge(MGR, "responder"))


def rejected(frame: bytes, reason: str, keys=MGR, role="responder") -> CryptoError:
    with pytest.raises(CryptoError) as err:
        crypto.verify_challenge(keys, role, frame)
    assert err.value.reason == reason, err.value
    return err.value


GOOD = crypto.build_challenge(HOST, "initiator", nonce=NONCE)


@pytest.mark.parametrize("size", [0, 8, 55, 57, 112])
def test_wrong_length(size):
    frame = (GOOD * 3)[:size]
    err = rejected(frame, "bad-length")
    assert f"{size} bytes" in str(err)


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_wrong_version(version):
    rejected(bytes([version]) + GOOD[1:], "bad-version")


def test_wrong_role():
    # A correctly MACed frame, but from our own role (a reflection of our frame).
    own = crypto.build_challenge(MGR, "responder")
    rejected(own, "bad-role")
    rejected(GOOD[:1] + b"\x02" + GOOD[2:], "bad-role")


def test_wrong_code_with_a_valid_mac():
    other = "000000" if MGR.verification_code != "000000" else "111111"
    mac = crypto.challenge_mac(HOST.challenge_key, HOST.challenge_context, 0, other.encode(), NONCE)
    frame = b"\x01\x00" + other.encode() + NONCE + mac
    err = rejected(frame, "bad-code")
    assert "verification code" in str(err)


@pytest.mark.parametrize("index", [2, 7, 8, 23, 24, 55])
def test_any_changed_byte_after_the_role_fails_the_mac(index):
    frame = bytearray(GOOD)
    frame[index] ^= 0x01
    rejected(bytes(frame), "bad-mac")


def test_other_challenge_material_fails_the_mac():
    # Same code, different handshake id: the peer did not hold the same key or ids.
    other = crypto.derive_transport_keys(PSK, HASH, HANDSHAKE_ID + "x", HOST_PEER, MANAGER_PEER)
    assert other.verification_code == HOST.verification_code  # code does not cover the hid
    rejected(crypto.build_challenge(other, "initiator"), "bad-mac")
    wrong_psk = crypto.derive_transport_keys(bytes(32), HASH, HANDSHAKE_ID, HOST_PEER,
                                             MANAGER_PEER)
    rejected(crypto.build_challenge(wrong_psk, "initiator"), "bad-mac", role=Role.RESPONDER)


def test_bad_nonce_argument():
    with pytest.raises(CryptoError, match="16 bytes"):
        crypto.build_challenge(MGR, "responder", nonce=b"short")


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(max_size=80))
def test_fuzzed_frames_raise_only_crypto_error(frame):
    with pytest.raises(CryptoError):
        crypto.verify_challenge(MGR, "responder", frame)
