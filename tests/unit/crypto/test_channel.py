"""Encrypted data channel: frame layout, counters, resynchronisation, tampering, pre-key queue."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol.crypto import CryptoError, InboundGate, SecureChannel, looks_encrypted

A_TO_B = bytes(range(32))
B_TO_A = bytes(range(32, 64))


def pair() -> tuple[SecureChannel, SecureChannel]:
    return SecureChannel(A_TO_B, B_TO_A), SecureChannel(B_TO_A, A_TO_B)


def test_frame_layout_and_independent_decrypt():
    a, _ = pair()
    frames = [a.seal(b"hello"), a.seal(b""), a.seal(b"x" * 1000)]
    for counter, (frame, pt) in enumerate(zip(frames, [b"hello", b"", b"x" * 1000], strict=True)):
        assert frame[0] == 0x01
        assert frame[1:9] == counter.to_bytes(8, "big")
        assert len(frame) == 9 + len(pt) + 16
        nonce = b"\x00" * 4 + counter.to_bytes(8, "big")
        assert ChaCha20Poly1305(A_TO_B).decrypt(nonce, frame[9:],
                                                b"beach:secure-transport:v1") == pt
    assert a.send_counter == 3


def test_round_trip_both_directions_with_independent_counters():
    a, b = pair()
    for i in range(5):
        assert b.open(a.seal(b"a%d" % i)) == b"a%d" % i
    assert a.open(b.seal(b"b0")) == b"b0"
    assert (a.send_counter, a.recv_counter, b.send_counter, b.recv_counter) == (5, 1, 1, 5)


def test_opens_a_frame_built_independently():
    _, b = pair()
    nonce = b"\x00" * 4 + (7).to_bytes(8, "big")
    frame = b"\x01" + (7).to_bytes(8, "big") + ChaCha20Poly1305(A_TO_B).encrypt(
        nonce, b"__ready__", b"beach:secure-transport:v1")
    assert b.open(frame) == b"__ready__"


def test_receiver_resynchronises_forward_and_rejects_going_back():
    a, b = pair()
    frames = [a.seal(b"%d" % i) for i in range(6)]
    assert b.open(frames[0]) == b"0"
    assert b.open(frames[3]) == b"3"  # 1 and 2 lost: jump forward
    assert b.resyncs == 1 and b.recv_counter == 4
    for stale in (frames[1], frames[2], frames[3]):  # behind, or a replay
        with pytest.raises(CryptoError) as err:
            b.open(stale)
        assert err.value.reason == "stale-counter"
    assert b.open(frames[4]) == b"4" and b.open(frames[5]) == b"5"
    assert b.resyncs == 1


@pytest.mark.parametrize("index", [9, 20, -1])
def test_tampered_frame_is_rejected_and_does_not_move_the_counter(index):
    a, b = pair()
    frame = bytearray(a.seal(b"payload"))
    frame[index] ^= 0x01
    with pytest.raises(CryptoError) as err:
        b.open(bytes(frame))
    assert err.value.reason == "auth-failed"
    assert b.recv_counter == 0


def test_forged_counter_jump_cannot_block_real_traffic():
    a, b = pair()
    good = a.seal(b"real")
    forged = b"\x01" + (2**40).to_bytes(8, "big") + bytes(30)
    with pytest.raises(CryptoError):
        b.open(forged)
    assert b.open(good) == b"real"


def test_counter_changed_in_header_is_rejected():
    a, b = pair()
    frame = a.seal(b"x")
    with pytest.raises(CryptoError) as err:
        b.open(frame[:1] + (1).to_bytes(8, "big") + frame[9:])
    assert err.value.reason == "auth-failed"


def test_wrong_key_direction_is_rejected():
    a, _ = pair()
    with pytest.raises(CryptoError):
        a.open(a.seal(b"loopback"))  # our own send key is not our receive key


def test_wrong_version_and_short_frames():
    a, b = pair()
    frame = a.seal(b"x")
    with pytest.raises(CryptoError) as err:
        b.open(b"\x02" + frame[1:])
    assert err.value.reason == "bad-version"
    for size in (0, 8, 9, 24):
        with pytest.raises(CryptoError) as err:
            b.open(frame[:size])
        assert err.value.reason == "bad-length"


def test_keys_must_be_32_bytes():
    with pytest.raises(CryptoError):
        SecureChannel(b"short", B_TO_A)


def test_looks_encrypted_matches_the_host_rule():
    assert looks_encrypted(b"\x01" + bytes(8))
    assert not looks_encrypted(b"\x01" + bytes(7))
    assert not looks_encrypted(b"\xa1" + bytes(60))  # a plaintext framed chunk


# --- inbound gate ---------------------------------------------------------------------------


def test_gate_holds_encrypted_frames_until_keys_then_flushes_in_order():
    a, b = pair()
    gate = InboundGate()
    early = [a.seal(b"m%d" % i) for i in range(3)]
    for frame in early:
        assert gate.receive(frame) == []
    assert gate.pending == 3 and gate.pending_bytes == sum(map(len, early))
    assert gate.receive(b"\xa1plain chunk") == [b"\xa1plain chunk"]  # passes through
    assert gate.install(b) == [b"m0", b"m1", b"m2"]
    assert gate.pending == 0 and gate.pending_bytes == 0 and gate.flushed == 3
    assert gate.receive(a.seal(b"m3")) == [b"m3"]


def test_gate_queue_is_bounded_by_count_and_bytes():
    a, b = pair()
    gate = InboundGate(max_pending=2, max_pending_bytes=10_000)
    frames = [a.seal(b"%d" % i) for i in range(4)]
    for frame in frames:
        gate.receive(frame)
    assert gate.pending == 2 and gate.overflow_drops == 2
    assert gate.install(b) == [b"0", b"1"]

    gate = InboundGate(max_pending=100, max_pending_bytes=100)
    big = a.seal(b"y" * 60)  # 85 bytes
    assert gate.receive(big) == [] and gate.receive(big) == []
    assert gate.pending == 1 and gate.overflow_drops == 1


def test_gate_drops_and_counts_failures_after_install_without_raising():
    a, b = pair()
    gate = InboundGate()
    gate.install(b)
    bad = bytearray(a.seal(b"x"))
    bad[-1] ^= 1
    assert gate.receive(bytes(bad)) == []
    assert gate.receive(b"\xa1 plaintext after keys") == []
    assert gate.receive("not bytes") == []
    assert gate.decrypt_failures == 3
    assert gate.last_error is not None and gate.last_error.reason == "bad-input"
    assert gate.receive(a.seal(b"ok")) == [b"ok"]


def test_gate_flush_skips_bad_queued_frames():
    a, b = pair()
    gate = InboundGate()
    gate.receive(a.seal(b"one"))
    gate.receive(b"\x01" + (1).to_bytes(8, "big") + bytes(32))  # looks encrypted, is junk
    gate.receive(a.seal(b"two"))
    assert gate.install(b) == [b"one", b"two"]
    assert gate.decrypt_failures == 1 and gate.last_error.reason == "auth-failed"


def test_gate_install_twice_is_a_bug():
    _, b = pair()
    gate = InboundGate()
    gate.install(b)
    with pytest.raises(CryptoError):
        gate.install(b)


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.binary(max_size=64), max_size=10), install_at=st.integers(0, 10))
def test_gate_never_raises_on_junk(frames, install_at):
    _, b = pair()
    gate = InboundGate(max_pending=4)
    for i, frame in enumerate(frames):
        if i == install_at:
            gate.install(b)
        gate.receive(frame)
    assert gate.pending <= 4
