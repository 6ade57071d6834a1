"""Noise XX: the cacophony vector, both roles against the independent ``noiseprotocol`` library
with the Beach prologue, and every way a handshake can go wrong."""

from __future__ import annotations

import os
import warnings

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from beachmanager.protocol import crypto
from beachmanager.protocol.crypto import CryptoError, NoiseHandshake, Role
from beachmanager.protocol.crypto.noise import NoiseXX
from tests.unit.crypto.support import HANDSHAKE_ID, HOST_PEER, MANAGER_PEER

NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2s"
PSK = bytes(range(32))

# The Noise_XX_25519_ChaChaPoly_BLAKE2s entry of the cacophony test vectors (public Noise
# test data; also checked here against noiseprotocol in test_vector_agrees_with_noiseprotocol).
VEC = {
    "prologue": "4a6f686e2047616c74",
    "init_static": "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
    "init_ephemeral": "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
    "resp_static": "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
    "resp_ephemeral": "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
    "handshake_hash": "6c4c56cf71612f72d05ceb96c0155e6f4ea54a26b504c93de632a2db4a49d200",
    "messages": [
        ("4c756477696720766f6e204d69736573",
         "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e"
         "204d69736573"),
        ("4d757272617920526f746862617264",
         "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088437c365eb362a1c991b055"
         "7fe8a7fb187d99346765d93ec63db6c1b01504ebeec55a2298d2dbff80eff034d20595153f63a196a6ce"
         "ad1e11b2bb13e336fa13616dd3e8b0a070c882ed3f1a78c7c06c93"),
        ("462e20412e20486179656b",
         "46c3307de83b014258717d97781c1f50936d8b7d50c0722a1739654d10392d415b670c114f79b9a4f805"
         "41570f77ce88802efa4220cff733e7b5668ba38059ec904b4b8eef9448085faf51"),
        ("4361726c204d656e676572", "d5e83adfaac5dc324a68f1862df54549e56d209fba707205f328b2"),
        ("4a65616e2d426170746973746520536179",
         "d102c9029b1f55c788f561ba7737afbccef9c9f1bf2f238167fd40ba9c1c134867"),
        ("457567656e2042f6686d20766f6e2042617765726b",
         "cb1ce80960382c6d5d5e740ffb724d1432f0310b200fb6f8424120f506092744baa415e155"),
    ],
}
h = bytes.fromhex


def test_cacophony_vector_both_roles():
    pro = h(VEC["prologue"])
    i = NoiseXX("initiator", pro, static_private_key=h(VEC["init_static"]),
                ephemeral_private_key=h(VEC["init_ephemeral"]))
    r = NoiseXX("responder", pro, static_private_key=h(VEC["resp_static"]),
                ephemeral_private_key=h(VEC["resp_ephemeral"]))
    msgs = [(h(p), h(c)) for p, c in VEC["messages"]]
    for n, (sender, receiver) in enumerate([(i, r), (r, i), (i, r)]):
        payload, expected = msgs[n]
        wire = sender.write_message(payload)
        assert wire == expected, f"handshake message {n + 1}"
        assert receiver.read_message(wire) == payload
    assert i.finished and r.finished
    assert i.handshake_hash == r.handshake_hash == h(VEC["handshake_hash"])
    assert i.remote_static_public == r.local_static_public
    # Transport messages after split: senders keep alternating (responder, initiator, ...).
    i_send, i_recv = i.transport_ciphers()
    r_send, r_recv = r.transport_ciphers()
    for (payload, expected), (enc, dec) in zip(
            msgs[3:], [(r_send, i_recv), (i_send, r_recv), (r_send, i_recv)], strict=True):
        wire = enc.encrypt_with_ad(b"", payload)
        assert wire == expected
        assert dec.decrypt_with_ad(b"", wire) == payload


def test_vector_agrees_with_noiseprotocol():
    """Cross-check the vector data itself against the independent library."""
    conns = []
    for role, s, e in (("initiator", "init_static", "init_ephemeral"),
                       ("responder", "resp_static", "resp_ephemeral")):
        c = NoiseConnection.from_name(NAME)
        c.set_as_initiator() if role == "initiator" else c.set_as_responder()
        c.set_keypair_from_private_bytes(Keypair.STATIC, h(VEC[s]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.set_keypair_from_private_bytes(Keypair.EPHEMERAL, h(VEC[e]))
            c.set_prologue(h(VEC["prologue"]))
            c.start_handshake()
        conns.append(c)
    ni, nr = conns
    for n, (a, b) in enumerate([(ni, nr), (nr, ni), (ni, nr)]):
        wire = a.write_message(h(VEC["messages"][n][0]))
        assert bytes(wire).hex() == VEC["messages"][n][1]
        b.read_message(wire)
    assert ni.get_handshake_hash().hex() == VEC["handshake_hash"]


def test_beach_prologue_bytes():
    expected = (b"beach:secure-handshake:v1\x1f" + HANDSHAKE_ID.encode() + b"\x1f"
                + min(HOST_PEER, MANAGER_PEER).encode() + b"\x1f"
                + max(HOST_PEER, MANAGER_PEER).encode())
    assert crypto.build_prologue(HANDSHAKE_ID, HOST_PEER, MANAGER_PEER) == expected
    assert crypto.build_prologue(HANDSHAKE_ID, MANAGER_PEER, HOST_PEER) == expected
    hs = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    assert hs.prologue == expected


def library_peer(role: str, prologue: bytes) -> NoiseConnection:
    conn = NoiseConnection.from_name(NAME)
    conn.set_as_initiator() if role == "initiator" else conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
    conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


def derive_both(host_hash: bytes, mgr_hash: bytes):
    host = crypto.derive_transport_keys(PSK, host_hash, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    mgr = crypto.derive_transport_keys(PSK, mgr_hash, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    return host, mgr


def assert_agree(host, mgr):
    assert host.send_key == mgr.recv_key and host.recv_key == mgr.send_key
    assert host.verification_code == mgr.verification_code
    assert len(mgr.verification_code) == 6 and mgr.verification_code.isdigit()
    assert host.challenge_key == mgr.challenge_key
    assert host.challenge_context == mgr.challenge_context
    crypto.verify_challenge(mgr, Role.RESPONDER, crypto.build_challenge(host, Role.INITIATOR))
    crypto.verify_challenge(host, Role.INITIATOR, crypto.build_challenge(mgr, Role.RESPONDER))


def test_our_responder_against_noiseprotocol_initiator():
    host = library_peer("initiator", crypto.build_prologue(HANDSHAKE_ID, HOST_PEER, MANAGER_PEER))
    mgr = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    m1 = host.write_message()
    mgr.read_message(m1)
    m2 = mgr.write_message()
    host.read_message(m2)
    m3 = host.write_message()
    assert not mgr.finished
    mgr.read_message(m3)
    assert (len(m1), len(m2), len(m3)) == (32, 96, 64)
    assert mgr.finished and host.handshake_finished
    assert mgr.handshake_hash == host.get_handshake_hash()
    assert_agree(*derive_both(host.get_handshake_hash(), mgr.handshake_hash))


def test_our_initiator_against_noiseprotocol_responder():
    dev_host = NoiseHandshake(Role.INITIATOR, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    peer = library_peer("responder", crypto.build_prologue(HANDSHAKE_ID, MANAGER_PEER, HOST_PEER))
    peer.read_message(dev_host.write_message())
    dev_host.read_message(peer.write_message())
    peer.read_message(dev_host.write_message())
    assert dev_host.finished and peer.handshake_finished
    assert dev_host.handshake_hash == peer.get_handshake_hash()
    assert_agree(*derive_both(dev_host.handshake_hash, peer.get_handshake_hash()))


def run(initiator: NoiseXX, responder: NoiseXX) -> None:
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())


def test_our_initiator_against_our_responder_with_payloads():
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    assert r.read_message(i.write_message(b"one")) == b"one"
    assert i.read_message(r.write_message(b"two")) == b"two"
    assert r.read_message(i.write_message(b"three")) == b"three"
    assert i.handshake_hash == r.handshake_hash
    assert i.remote_static_public == r.local_static_public
    assert r.remote_static_public == i.local_static_public
    assert_agree(*derive_both(i.handshake_hash, r.handshake_hash))


def test_fresh_keys_every_time():
    a = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    b = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    assert a.local_static_public != b.local_static_public
    assert a.write_message() != b.write_message()


@pytest.mark.parametrize("field", ["handshake_id", "peer"])
def test_prologue_mismatch_fails_at_the_first_encrypted_message(field):
    hid = HANDSHAKE_ID + "x" if field == "handshake_id" else HANDSHAKE_ID
    other = "someone-else" if field == "peer" else HOST_PEER
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    r = NoiseHandshake("responder", hid, MANAGER_PEER, other)
    r.read_message(i.write_message())  # message 1 is plaintext: nothing to check yet
    with pytest.raises(CryptoError) as err:
        i.read_message(r.write_message())
    assert err.value.reason == "auth-failed"
    assert i.failed
    with pytest.raises(CryptoError) as again:
        i.write_message()
    assert again.value.reason == "state"


def test_prologue_mismatch_against_noiseprotocol_fails_both_ways():
    host = library_peer("initiator", b"beach:secure-handshake:v1\x1fwrong")
    mgr = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    mgr.read_message(host.write_message())
    with pytest.raises(InvalidTag):  # noiseprotocol lets the AEAD error through
        host.read_message(mgr.write_message())

    dev_host = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, "someone-else")
    peer = library_peer("responder", crypto.build_prologue(HANDSHAKE_ID, MANAGER_PEER, HOST_PEER))
    peer.read_message(dev_host.write_message())
    with pytest.raises(CryptoError) as err:
        dev_host.read_message(peer.write_message())
    assert err.value.reason == "auth-failed"


@pytest.mark.parametrize("index", [0, 31, 32, 63, 64, 95])
def test_tampered_message_two_is_rejected(index):
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    r.read_message(i.write_message())
    m2 = bytearray(r.write_message())
    m2[index] ^= 0x80
    with pytest.raises(CryptoError) as err:
        i.read_message(bytes(m2))
    assert err.value.reason in ("auth-failed", "bad-public-key")


@pytest.mark.parametrize("index", [0, 40, 63])
def test_tampered_message_three_is_rejected(index):
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    r.read_message(i.write_message())
    i.read_message(r.write_message())
    m3 = bytearray(i.write_message())
    m3[index] ^= 0x01
    with pytest.raises(CryptoError) as err:
        r.read_message(bytes(m3))
    assert err.value.reason == "auth-failed"
    assert not r.finished


@pytest.mark.parametrize("size", [0, 16, 31])
def test_short_first_message_is_rejected(size):
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    with pytest.raises(CryptoError) as err:
        r.read_message(os.urandom(size))
    assert err.value.reason == "bad-length"


def test_truncated_second_message_is_rejected():
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    r.read_message(i.write_message())
    m2 = r.write_message()
    with pytest.raises(CryptoError) as err:
        i.read_message(m2[:90])
    assert err.value.reason == "bad-length"


def test_low_order_public_key_is_rejected():
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    r.read_message(bytes(32))  # the all-zero point as the initiator's ephemeral key
    with pytest.raises(CryptoError) as err:
        r.write_message()
    assert err.value.reason == "bad-public-key"


def test_out_of_turn_calls_are_rejected():
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    with pytest.raises(CryptoError, match="out of turn") as err:
        r.write_message()
    assert err.value.reason == "state"
    i = NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    with pytest.raises(CryptoError, match="out of turn"):
        i.read_message(bytes(32))
    with pytest.raises(CryptoError, match="not finished"):
        _ = i.handshake_hash
    run(i, r)
    with pytest.raises(CryptoError, match="already finished"):
        i.write_message()


@pytest.mark.parametrize("role", ["initiator", "INITIATOR", "offerer", "host", 0, Role.INITIATOR])
def test_initiator_spellings(role):
    assert NoiseHandshake(role, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER).role is Role.INITIATOR


@pytest.mark.parametrize("role", ["responder", " Responder", "answerer", "manager", 1])
def test_responder_spellings(role):
    assert NoiseHandshake(role, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER).role is Role.RESPONDER


@pytest.mark.parametrize("role", ["server", "", 2, True, None])
def test_unknown_role_is_rejected(role):
    with pytest.raises(CryptoError, match="role"):
        NoiseHandshake(role, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)


@settings(max_examples=150, deadline=None)
@given(first=st.binary(min_size=32, max_size=120), later=st.binary(max_size=200))
def test_fuzzed_messages_raise_only_crypto_error(first, later):
    r = NoiseHandshake("responder", HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    try:
        r.read_message(first)
        r.write_message()
    except CryptoError:
        return
    with pytest.raises(CryptoError):
        r.read_message(later)
