"""Sealed envelopes: exact AAD bytes, round trips, an independent opener, every tamper rejected."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import crypto
from beachmanager.protocol.crypto import CryptoError, ice_components, sdp_components
from tests.unit.crypto.support import HANDSHAKE_ID, HOST_PEER, MANAGER_PEER, hkdf

PSK = bytes(range(32))
OTHER_PSK = bytes(range(1, 33))
SDP = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\n"
ICE_BLOB = json.dumps({"candidate": "candidate:1 1 UDP 1 192.0.2.2 5000 typ host",
                       "sdp_mid": "0", "sdp_mline_index": 0}).encode()


def independent_open(psk: bytes, hid: str, label: str, parts: list[str], env: dict) -> bytes:
    """A second opener written from reference §4.2-4.3, sharing no code with the package."""
    mk = hkdf(hid.encode(), psk, b"beach:secure-signaling:aead:v1" + label.encode())
    aad = b"\x1f".join([hid.encode(), label.encode(), *(p.encode() for p in parts)])
    assert env["version"] == 1
    return ChaCha20Poly1305(mk).decrypt(base64.b64decode(env["nonce"]),
                                        base64.b64decode(env["ciphertext"]), aad)


def independent_seal(psk: bytes, hid: str, label: str, parts: list[str], pt: bytes,
                     nonce: bytes) -> dict:
    mk = hkdf(hid.encode(), psk, b"beach:secure-signaling:aead:v1" + label.encode())
    aad = b"\x1f".join([hid.encode(), label.encode(), *(p.encode() for p in parts)])
    ct = ChaCha20Poly1305(mk).encrypt(nonce, pt, aad)
    return {"version": 1, "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ct).decode()}


def test_aad_layout_is_exact():
    aad = crypto.build_aad("hid", "ice", ["A", "B", "hid"])
    assert aad == b"hid\x1fice\x1fA\x1fB\x1fhid"
    assert crypto.build_aad("hid", "offer", []) == b"hid\x1foffer"


def test_component_helpers_give_the_sender_and_receiver_the_same_aad():
    # The host sends ICE: it uses (own id, our id); we open with (its id, own id).
    host_view = ice_components(HOST_PEER, MANAGER_PEER, HANDSHAKE_ID)
    our_view = ice_components(HOST_PEER, MANAGER_PEER, HANDSHAKE_ID)
    assert host_view == our_view == [HOST_PEER, MANAGER_PEER, HANDSHAKE_ID]
    assert sdp_components(HOST_PEER, MANAGER_PEER, "offer") == [HOST_PEER, MANAGER_PEER, "offer"]


@pytest.mark.parametrize("label,parts,plaintext", [
    ("offer", [HOST_PEER, MANAGER_PEER, "offer"], SDP.encode()),
    ("answer", [MANAGER_PEER, HOST_PEER, "answer"], SDP.encode()),
    ("ice", [MANAGER_PEER, HOST_PEER, HANDSHAKE_ID], ICE_BLOB),
    ("ice", [HOST_PEER, MANAGER_PEER, HANDSHAKE_ID], b""),
])
def test_round_trip_and_independent_open(label, parts, plaintext):
    env = crypto.seal(PSK, HANDSHAKE_ID, label, parts, plaintext)
    assert set(env) == {"version", "nonce", "ciphertext"} and env["version"] == 1
    assert len(base64.b64decode(env["nonce"], validate=True)) == 12
    assert len(base64.b64decode(env["ciphertext"])) == len(plaintext) + 16
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, label, parts, env) == plaintext
    assert independent_open(PSK, HANDSHAKE_ID, label, parts, env) == plaintext
    # ... and the JSON text of the envelope (as it travels) opens too.
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, label, parts, json.dumps(env)) == plaintext


def test_opens_what_an_independent_sealer_produced():
    parts = sdp_components(HOST_PEER, MANAGER_PEER, "offer")
    env = independent_seal(PSK, HANDSHAKE_ID, "offer", parts, SDP.encode(), b"\x07" * 12)
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, "offer", parts, env) == SDP.encode()
    # With the same nonce our sealer produces the identical envelope.
    assert crypto.seal(PSK, HANDSHAKE_ID, "offer", parts, SDP, nonce=b"\x07" * 12) == env


def test_nonces_are_fresh():
    parts = ["a", "b", "offer"]
    nonces = {crypto.seal(PSK, HANDSHAKE_ID, "offer", parts, b"x")["nonce"] for _ in range(20)}
    assert len(nonces) == 20


PARTS = [HOST_PEER, MANAGER_PEER, "offer"]


@pytest.fixture
def envelope():
    return crypto.seal(PSK, HANDSHAKE_ID, "offer", PARTS, SDP)


def expect(reason: str, *args, **kwargs) -> CryptoError:
    with pytest.raises(CryptoError) as err:
        crypto.open_sealed(*args, **kwargs)
    assert err.value.reason == reason, err.value
    assert str(err.value)  # a human message
    return err.value


@pytest.mark.parametrize("index", [0, 1, 2])
def test_changed_aad_component_is_rejected(envelope, index):
    parts = list(PARTS)
    parts[index] = parts[index] + "x"
    err = expect("auth-failed", PSK, HANDSHAKE_ID, "offer", parts, envelope)
    assert "did not authenticate" in str(err)


def test_swapped_or_missing_or_extra_components_are_rejected(envelope):
    expect("auth-failed", PSK, HANDSHAKE_ID, "offer", [PARTS[1], PARTS[0], PARTS[2]], envelope)
    expect("auth-failed", PSK, HANDSHAKE_ID, "offer", PARTS[:2], envelope)
    expect("auth-failed", PSK, HANDSHAKE_ID, "offer", [*PARTS, ""], envelope)


def test_other_handshake_id_label_or_key_is_rejected(envelope):
    expect("auth-failed", PSK, HANDSHAKE_ID + "0", "offer", PARTS, envelope)
    expect("auth-failed", PSK, HANDSHAKE_ID, "answer", PARTS, envelope)
    expect("auth-failed", OTHER_PSK, HANDSHAKE_ID, "offer", PARTS, envelope)


def flip_b64(value: str, index: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_changed_nonce_is_rejected(envelope):
    for i in (0, 11):
        bad = dict(envelope, nonce=flip_b64(envelope["nonce"], i))
        expect("auth-failed", PSK, HANDSHAKE_ID, "offer", PARTS, bad)


def test_every_changed_ciphertext_byte_is_rejected(envelope):
    n = len(base64.b64decode(envelope["ciphertext"]))
    for i in range(n):
        bad = dict(envelope, ciphertext=flip_b64(envelope["ciphertext"], i))
        expect("auth-failed", PSK, HANDSHAKE_ID, "offer", PARTS, bad)


@pytest.mark.parametrize("version", [0, 2, "1", 1.0, True, None])
def test_changed_version_is_rejected(envelope, version):
    expect("bad-version", PSK, HANDSHAKE_ID, "offer", PARTS, dict(envelope, version=version))


@pytest.mark.parametrize("mutate,reason", [
    (lambda e: {k: v for k, v in e.items() if k != "nonce"}, "bad-envelope"),
    (lambda e: {k: v for k, v in e.items() if k != "ciphertext"}, "bad-envelope"),
    (lambda e: {k: v for k, v in e.items() if k != "version"}, "bad-envelope"),
    (lambda e: dict(e, nonce="!!!!"), "bad-encoding"),
    (lambda e: dict(e, nonce=e["nonce"][:-1]), "bad-encoding"),
    (lambda e: dict(e, ciphertext=base64.b64encode(b"x" * 20).decode().rstrip("=")),
     "bad-encoding"),
    (lambda e: dict(e, ciphertext="a b"), "bad-encoding"),
    (lambda e: dict(e, nonce=base64.b64encode(b"x" * 8).decode()), "bad-nonce"),
    (lambda e: dict(e, nonce=12), "bad-envelope"),
    (lambda e: dict(e, ciphertext=base64.b64encode(b"short").decode()), "bad-envelope"),
    (lambda e: [e], "bad-envelope"),
    (lambda e: "{not json", "bad-envelope"),
])
def test_malformed_envelopes_are_rejected_clearly(envelope, mutate, reason):
    expect(reason, PSK, HANDSHAKE_ID, "offer", PARTS, mutate(envelope))


def test_unknown_fields_are_ignored_like_the_host(envelope):
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, "offer", PARTS,
                              dict(envelope, extra=1)) == SDP.encode()


def test_components_must_be_a_list():
    with pytest.raises(CryptoError, match="list"):
        crypto.seal(PSK, HANDSHAKE_ID, "offer", "abc", b"x")


# --- legacy fallback key -----------------------------------------------------------------


LEGACY = bytes(range(50, 82))
ICE_PARTS = ice_components(HOST_PEER, MANAGER_PEER, HANDSHAKE_ID)


def test_legacy_key_opens_ice_only_after_the_handshake_key():
    by_legacy = crypto.seal(LEGACY, HANDSHAKE_ID, "ice", ICE_PARTS, ICE_BLOB)
    by_psk = crypto.seal(PSK, HANDSHAKE_ID, "ice", ICE_PARTS, ICE_BLOB)
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, "ice", ICE_PARTS, by_legacy,
                              legacy_key=LEGACY) == ICE_BLOB
    assert crypto.open_sealed(PSK, HANDSHAKE_ID, "ice", ICE_PARTS, by_psk,
                              legacy_key=LEGACY) == ICE_BLOB
    err = expect("auth-failed", PSK, HANDSHAKE_ID, "ice", ICE_PARTS, by_legacy)
    assert "its key" in str(err)
    err = expect("auth-failed", OTHER_PSK, HANDSHAKE_ID, "ice", ICE_PARTS, by_legacy,
                 legacy_key=OTHER_PSK)
    assert "legacy key" in str(err)


@pytest.mark.parametrize("label", ["offer", "answer"])
def test_legacy_key_is_not_accepted_for_sdp(label):
    env = crypto.seal(LEGACY, HANDSHAKE_ID, label, PARTS, SDP)
    err = expect("bad-input", PSK, HANDSHAKE_ID, label, PARTS, env, legacy_key=LEGACY)
    assert "only accepted for ice" in str(err)


# --- fuzz ----------------------------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(version=json_values, nonce=json_values | st.binary(max_size=20).map(
    lambda b: base64.b64encode(b).decode()), ciphertext=json_values | st.binary(max_size=40).map(
    lambda b: base64.b64encode(b).decode()))
def test_fuzzed_envelopes_raise_only_crypto_error(version, nonce, ciphertext):
    env = {"version": version, "nonce": nonce, "ciphertext": ciphertext}
    with pytest.raises(CryptoError):
        crypto.open_sealed(PSK, HANDSHAKE_ID, "ice", ICE_PARTS, env)


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200))
def test_fuzzed_envelope_text_raises_only_crypto_error(raw):
    with pytest.raises(CryptoError):
        crypto.open_sealed(PSK, HANDSHAKE_ID, "ice", ICE_PARTS, raw)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=2000), parts=st.lists(st.text(max_size=20), max_size=4),
       hid=st.text(min_size=1, max_size=40))
def test_round_trip_property(plaintext, parts, hid):
    env = crypto.seal(PSK, hid, "answer", parts, plaintext)
    assert crypto.open_sealed(PSK, hid, "answer", parts, env) == plaintext
