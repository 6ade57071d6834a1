"""The handshake-channel driver end to end, against itself and against noiseprotocol."""

from __future__ import annotations

import os

import pytest
from noise.connection import Keypair, NoiseConnection

from beachmanager.protocol import crypto
from beachmanager.protocol.crypto import CryptoError, SecureChannel, SecureHandshake
from tests.unit.crypto.support import HANDSHAKE_ID, HOST_PEER, MANAGER_PEER

PSK = bytes(range(32))


def pump(host: SecureHandshake, mgr: SecureHandshake) -> None:
    to_mgr, to_host = host.start(), mgr.start()
    while to_mgr or to_host:
        next_host = [out for msg in to_mgr for out in mgr.receive(msg)]
        next_mgr = [out for msg in to_host for out in host.receive(msg)]
        to_host, to_mgr = next_host, next_mgr


def test_both_roles_complete_and_agree():
    host = SecureHandshake("initiator", PSK, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    mgr = SecureHandshake("responder", PSK, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    pump(host, mgr)
    assert host.done and mgr.done
    assert host.verification_code == mgr.verification_code
    h_chan = SecureChannel(host.keys.send_key, host.keys.recv_key)
    m_chan = SecureChannel(mgr.keys.send_key, mgr.keys.recv_key)
    assert m_chan.open(h_chan.seal(b"__offer_ready__")) == b"__offer_ready__"
    assert h_chan.open(m_chan.seal(b"__ready__")) == b"__ready__"
    assert mgr.receive(b"late") == [] and mgr.ignored_after_done == 1


def test_responder_message_sequence():
    mgr = SecureHandshake("responder", PSK, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    host = crypto.NoiseHandshake("initiator", HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    assert mgr.start() == []
    [m2] = mgr.receive(host.write_message())
    host.read_message(m2)
    [challenge] = mgr.receive(host.write_message())  # m3 -> our challenge
    assert len(challenge) == 56 and challenge[1] == 1 and not mgr.done
    host_keys = crypto.derive_transport_keys(PSK, host.handshake_hash, HANDSHAKE_ID, HOST_PEER,
                                             MANAGER_PEER)
    crypto.verify_challenge(host_keys, "initiator", challenge)
    assert mgr.receive(crypto.build_challenge(host_keys, "initiator")) == []
    assert mgr.done and mgr.keys.recv_key == host_keys.send_key


def test_manager_against_a_noiseprotocol_host():
    host = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_BLAKE2s")
    host.set_as_initiator()
    host.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
    host.set_prologue(crypto.build_prologue(HANDSHAKE_ID, HOST_PEER, MANAGER_PEER))
    host.start_handshake()
    mgr = SecureHandshake("responder", PSK, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    [m2] = mgr.receive(host.write_message())
    host.read_message(m2)
    [ours] = mgr.receive(host.write_message())
    host_keys = crypto.derive_transport_keys(PSK, host.get_handshake_hash(), HANDSHAKE_ID,
                                             HOST_PEER, MANAGER_PEER)
    crypto.verify_challenge(host_keys, "initiator", ours)
    mgr.receive(crypto.build_challenge(host_keys, "initiator"))
    assert mgr.done and mgr.verification_code == host_keys.verification_code


def test_different_handshake_key_fails_on_the_challenge_mac():
    host = SecureHandshake("initiator", bytes(32), HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    mgr = SecureHandshake("responder", PSK, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    with pytest.raises(CryptoError) as err:
        pump(host, mgr)
    assert err.value.reason == "bad-mac"  # Noise itself succeeds: the PSK binds in the challenge
    failed = mgr if mgr.error else host
    with pytest.raises(CryptoError, match="already failed"):
        failed.receive(b"x")


def test_garbage_instead_of_noise_fails_cleanly():
    mgr = SecureHandshake("responder", PSK, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    with pytest.raises(CryptoError) as err:
        mgr.receive(b"short")
    assert err.value.reason == "bad-length" and mgr.error is err.value
