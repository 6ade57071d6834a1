"""Key schedule: join code -> session key -> handshake key -> per-label and per-direction keys.

All byte layouts follow the Beach host (reference §4.2 and §4.5):

* session key   = Argon2id(join code, salt = host session id, t=1, m=32 MiB, p=1, 32 bytes);
* handshake key = HKDF-SHA256(salt = handshake id, ikm = session key,
  info = ``beach:secure-signaling:handshake``);
* message key   = HKDF-SHA256(salt = handshake id, ikm = handshake key,
  info = ``beach:secure-signaling:aead:v1`` + label), label ``offer``/``answer``/``ice``;
* after Noise, HKDF-SHA256(salt = handshake key, ikm = Noise handshake hash) with the
  direction, verification and challenge infos of :func:`derive_transport_keys`.

Strings are used exactly as given (UTF-8): the join code is not trimmed or upper-cased here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .base import BAD_INPUT, CryptoError, as_bytes, as_key

KEY_LEN = 32
ARGON2_ITERATIONS = 1
ARGON2_MEMORY_KIB = 32 * 1024
ARGON2_LANES = 1
ARGON2_MIN_SALT = 8

HANDSHAKE_INFO = b"beach:secure-signaling:handshake"
MESSAGE_INFO_PREFIX = b"beach:secure-signaling:aead:v1"
SEAL_LABELS = ("offer", "answer", "ice")

DIRECTION_PREFIX = "beach:secure-transport:direction:"
VERIFY_PREFIX = "beach:secure-transport:verify:"
CHALLENGE_KEY_PREFIX = "beach:secure-transport:challenge-key:"
CHALLENGE_MAC_PREFIX = "beach:secure-transport:challenge-mac:"
CODE_DIGITS = 6


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = KEY_LEN) -> bytes:
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _argon2id(secret: Any, salt: Any) -> bytes:
    password = as_bytes(secret, "join code")
    salt_bytes = as_bytes(salt, "salt")
    if not password.strip():
        raise CryptoError(BAD_INPUT, "join code is blank: there is nothing to derive a key from")
    if len(salt_bytes) < ARGON2_MIN_SALT:
        raise CryptoError(BAD_INPUT, f"Argon2id salt must be at least {ARGON2_MIN_SALT} bytes")
    kdf = Argon2id(salt=salt_bytes, length=KEY_LEN, iterations=ARGON2_ITERATIONS,
                   lanes=ARGON2_LANES, memory_cost=ARGON2_MEMORY_KIB)
    return kdf.derive(password)


def derive_session_key(join_code: str, host_session_id: str) -> bytes:
    """Argon2id session key for one host (blocking: ~50 ms and 32 MiB; run it off the reactor)."""
    return _argon2id(join_code, host_session_id)


def derive_legacy_key(join_code: str, handshake_id: str) -> bytes:
    """The host's legacy fallback key: Argon2id(join code, salt = handshake id), used in place of
    the handshake key.  Only ever needed to open sealed ICE (see ``open_sealed(legacy_key=)``)."""
    return _argon2id(join_code, handshake_id)


def derive_handshake_key(session_key: bytes, handshake_id: str) -> bytes:
    """The per-negotiation handshake key (the host calls it the pre-shared key)."""
    return hkdf_sha256(as_key(session_key, "session key"), as_bytes(handshake_id, "handshake id"),
                       HANDSHAKE_INFO)


def seal_label(label: Any) -> str:
    """Validate a sealing label: ``offer``, ``answer`` or ``ice``."""
    if isinstance(label, bytes):
        label = label.decode("utf-8", "replace")
    if label not in SEAL_LABELS:
        raise CryptoError(BAD_INPUT, f"sealing label must be one of {SEAL_LABELS}, got {label!r}")
    return label


def derive_message_key(handshake_key: bytes, handshake_id: str, label: str) -> bytes:
    """The ChaCha20-Poly1305 key sealing one kind of signaling message."""
    info = MESSAGE_INFO_PREFIX + seal_label(label).encode("ascii")
    return hkdf_sha256(as_key(handshake_key, "handshake key"),
                       as_bytes(handshake_id, "handshake id"), info)


def sorted_peers(a: str, b: str) -> tuple[str, str]:
    """The two peer ids in byte-wise order (as the host sorts them)."""
    return (a, b) if a.encode("utf-8") <= b.encode("utf-8") else (b, a)


def _peer_id(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise CryptoError(BAD_INPUT, f"{what} must be str, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ChallengeMaterial:
    """What the 56-byte challenge frames are MACed with: HMAC-SHA256(key, context || ...)."""

    key: bytes = field(repr=False)
    context: bytes


@dataclass(frozen=True)
class TransportKeys:
    """One side's view after the Noise handshake.

    ``send_key`` encrypts what this side sends on ``beach``; ``recv_key`` decrypts what it
    receives (the peer's ``send_key``).  Unpacks as ``send, recv, code, challenge``.
    """

    send_key: bytes = field(repr=False)
    recv_key: bytes = field(repr=False)
    verification_code: str
    challenge: ChallengeMaterial

    @property
    def receive_key(self) -> bytes:
        return self.recv_key

    @property
    def code(self) -> str:
        return self.verification_code

    @property
    def challenge_key(self) -> bytes:
        return self.challenge.key

    @property
    def challenge_context(self) -> bytes:
        return self.challenge.context

    def __iter__(self) -> Iterator[Any]:
        return iter((self.send_key, self.recv_key, self.verification_code, self.challenge))


def derive_transport_keys(handshake_key: bytes, handshake_hash: bytes, handshake_id: str,
                          local_peer_id: str, remote_peer_id: str) -> TransportKeys:
    """Direction keys, verification code and challenge material from the Noise handshake hash.

    Both roles use the same formulas with their own local/remote ids, so one side's send key is
    the other's receive key and the code and challenge material agree.
    """
    salt = as_key(handshake_key, "handshake key")
    ikm = as_key(handshake_hash, "handshake hash")
    hid = _peer_id(handshake_id, "handshake id")
    local = _peer_id(local_peer_id, "local peer id")
    remote = _peer_id(remote_peer_id, "remote peer id")
    p0, p1 = sorted_peers(local, remote)

    def expand(info: str, length: int = KEY_LEN) -> bytes:
        return hkdf_sha256(ikm, salt, info.encode("utf-8"), length)

    send_key = expand(f"{DIRECTION_PREFIX}{local}->{remote}")
    recv_key = expand(f"{DIRECTION_PREFIX}{remote}->{local}")
    verify = int.from_bytes(expand(f"{VERIFY_PREFIX}{p0}|{p1}", 4), "little")
    code = f"{verify % 10**CODE_DIGITS:0{CODE_DIGITS}d}"
    challenge = ChallengeMaterial(
        key=expand(f"{CHALLENGE_KEY_PREFIX}{hid}|{p0}|{p1}"),
        context=f"{CHALLENGE_MAC_PREFIX}{hid}|{p0}|{p1}".encode(),
    )
    return TransportKeys(send_key, recv_key, code, challenge)
