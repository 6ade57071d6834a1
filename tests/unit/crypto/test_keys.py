"""Key schedule: the reference Argon2id vector and each HKDF step against an independent path."""

from __future__ import annotations

import hashlib

import pytest

from beachmanager.protocol import crypto
from beachmanager.protocol.crypto import CryptoError, keys
from tests.unit.crypto.support import (
    HANDSHAKE_ID,
    HOST_PEER,
    HOST_SESSION_ID,
    JOIN_CODE,
    MANAGER_PEER,
    argon2id,
    hkdf,
)

REFERENCE_VECTOR = "c54c5fe10c8d7a3fcb3cf90b64e6243fe543049217171c1cf00c64431ba76d75"


def test_argon2id_reference_vector():
    key = crypto.derive_session_key("correct horse battery staple", "session-id-1234")
    assert key.hex() == REFERENCE_VECTOR


def test_session_key_matches_argon2_cffi_and_uses_the_exact_join_code():
    key = crypto.derive_session_key(JOIN_CODE, HOST_SESSION_ID)
    assert key == argon2id(JOIN_CODE, HOST_SESSION_ID)
    # No trimming or case folding: the host uses the code exactly as it holds it.
    assert crypto.derive_session_key(JOIN_CODE.lower(), HOST_SESSION_ID) != key
    assert crypto.derive_session_key(JOIN_CODE + " ", HOST_SESSION_ID) != key
    assert crypto.derive_session_key(JOIN_CODE, HOST_SESSION_ID.upper()) != key


@pytest.mark.parametrize("code", ["", "   ", "\t"])
def test_blank_join_code_is_refused(code):
    with pytest.raises(CryptoError) as err:
        crypto.derive_session_key(code, HOST_SESSION_ID)
    assert err.value.reason == "bad-input"


def test_short_salt_is_refused_clearly():
    with pytest.raises(CryptoError, match="at least 8 bytes"):
        crypto.derive_session_key(JOIN_CODE, "short")


def test_legacy_key_is_argon2id_over_the_handshake_id():
    assert crypto.derive_legacy_key(JOIN_CODE, HANDSHAKE_ID) == argon2id(JOIN_CODE, HANDSHAKE_ID)


def test_handshake_and_message_keys_follow_the_reference_formulas():
    session = bytes(range(32))
    psk = crypto.derive_handshake_key(session, HANDSHAKE_ID)
    assert psk == hkdf(HANDSHAKE_ID.encode(), session, b"beach:secure-signaling:handshake")
    for label in ("offer", "answer", "ice"):
        mk = crypto.derive_message_key(psk, HANDSHAKE_ID, label)
        info = b"beach:secure-signaling:aead:v1" + label.encode()  # no separator
        assert mk == hkdf(HANDSHAKE_ID.encode(), psk, info)
    assert len({crypto.derive_message_key(psk, HANDSHAKE_ID, lb) for lb in keys.SEAL_LABELS}) == 3


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, None])
def test_keys_must_be_32_bytes(bad):
    with pytest.raises(CryptoError):
        crypto.derive_handshake_key(bad, HANDSHAKE_ID)


def test_unknown_label_is_refused():
    with pytest.raises(CryptoError, match="sealing label"):
        crypto.derive_message_key(bytes(32), HANDSHAKE_ID, "candidate")


def test_transport_keys_follow_the_reference_formulas():
    psk, h = bytes(range(32)), bytes(range(100, 132))
    mine = crypto.derive_transport_keys(psk, h, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    p0, p1 = sorted([MANAGER_PEER, HOST_PEER])

    def exp(info: str, n: int = 32) -> bytes:
        return hkdf(psk, h, info.encode(), n)

    assert mine.send_key == exp(f"beach:secure-transport:direction:{MANAGER_PEER}->{HOST_PEER}")
    assert mine.recv_key == exp(f"beach:secure-transport:direction:{HOST_PEER}->{MANAGER_PEER}")
    verify = int.from_bytes(exp(f"beach:secure-transport:verify:{p0}|{p1}", 4), "little")
    assert mine.verification_code == "%06d" % (verify % 1_000_000)
    assert mine.challenge_key == exp(
        f"beach:secure-transport:challenge-key:{HANDSHAKE_ID}|{p0}|{p1}")
    assert mine.challenge_context == (
        f"beach:secure-transport:challenge-mac:{HANDSHAKE_ID}|{p0}|{p1}".encode())


def test_both_sides_derive_mirrored_keys_and_the_same_code():
    psk, h = hashlib.sha256(b"psk").digest(), hashlib.sha256(b"h").digest()
    host = crypto.derive_transport_keys(psk, h, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    mgr = crypto.derive_transport_keys(psk, h, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    assert host.send_key == mgr.recv_key and host.recv_key == mgr.send_key
    assert host.send_key != host.recv_key
    assert host.verification_code == mgr.verification_code
    assert host.challenge == mgr.challenge
    send, recv, code, challenge = mgr  # unpacks as the four parts the issue names
    assert (send, recv, code, challenge) == (mgr.send_key, mgr.receive_key, mgr.code,
                                             mgr.challenge)


def test_verification_code_reads_the_four_bytes_little_endian():
    # Find an (h) whose 4 verify bytes differ between LE and BE readings, then check LE is used.
    psk = bytes(32)
    p0, p1 = sorted([HOST_PEER, MANAGER_PEER])
    for i in range(50):
        h = hashlib.sha256(bytes([i])).digest()
        raw = hkdf(psk, h, f"beach:secure-transport:verify:{p0}|{p1}".encode(), 4)
        le = "%06d" % (int.from_bytes(raw, "little") % 1_000_000)
        be = "%06d" % (int.from_bytes(raw, "big") % 1_000_000)
        if le != be:
            got = crypto.derive_transport_keys(psk, h, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
            assert got.verification_code == le
            return
    pytest.fail("no distinguishing sample found")


def test_peer_ids_sort_bytewise():
    assert keys.sorted_peers("b", "a") == ("a", "b")
    assert keys.sorted_peers("Z", "a") == ("Z", "a")  # uppercase sorts first, as bytes
    assert keys.sorted_peers("é", "z") == ("z", "é")


def test_keys_are_not_in_the_repr():
    tk = crypto.derive_transport_keys(b"k" * 32, b"h" * 32, HANDSHAKE_ID, "a", "b")
    text = repr(tk)
    assert "kkkk" not in text and tk.send_key.hex() not in text and str(tk.send_key) not in text
