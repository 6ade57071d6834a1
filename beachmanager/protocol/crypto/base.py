"""The package's one error type, the handshake role, and input coercion shared by the modules."""

from __future__ import annotations

import enum
from typing import Any

# Reasons carried by CryptoError.reason (stable strings: tests and callers match on them).
BAD_INPUT = "bad-input"  # an argument has the wrong type or value (caller bug or bad config)
BAD_KEY = "bad-key"  # a key is not 32 bytes
BAD_ENVELOPE = "bad-envelope"  # a sealed envelope is not {"version","nonce","ciphertext"}
BAD_VERSION = "bad-version"  # envelope, challenge frame or channel frame version
BAD_ENCODING = "bad-encoding"  # invalid base64
BAD_NONCE = "bad-nonce"  # envelope nonce is not 12 bytes
BAD_LENGTH = "bad-length"  # a frame or message has the wrong size
AUTH_FAILED = "auth-failed"  # AEAD tag did not verify (wrong key, AAD, nonce or bytes)
BAD_ROLE = "bad-role"  # challenge frame from the wrong role
BAD_MAC = "bad-mac"  # challenge frame MAC mismatch
BAD_CODE = "bad-code"  # challenge frame carries a different verification code
BAD_PUBLIC_KEY = "bad-public-key"  # X25519 with a low-order point
STATE = "state"  # an operation out of turn (Noise order, handshake not finished, ...)
STALE_COUNTER = "stale-counter"  # encrypted frame counter behind the receiver's
COUNTER_EXHAUSTED = "counter-exhausted"  # 2**64 messages sent in one direction


class CryptoError(ValueError):
    """Every failure of ``beachmanager.protocol.crypto``: bad input, bad bytes, failed checks.

    ``reason`` is one short stable string (the module constants above, e.g. ``"auth-failed"``,
    ``"bad-mac"``); ``str(error)`` is a one-line human explanation.  Messages never contain key
    material or join codes.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __repr__(self) -> str:
        return f"CryptoError({self.reason!r}, {str(self)!r})"


class Role(enum.Enum):
    """Noise role.  The Beach host (WebRTC offerer) initiates; the joiner (manager) responds."""

    INITIATOR = "initiator"
    RESPONDER = "responder"

    @property
    def byte(self) -> int:
        """Role byte of the challenge frame: 0 initiator, 1 responder."""
        return 0 if self is Role.INITIATOR else 1

    @property
    def other(self) -> Role:
        return Role.RESPONDER if self is Role.INITIATOR else Role.INITIATOR

    @classmethod
    def coerce(cls, value: Any) -> Role:
        """A Role from itself, its value in any case, a Beach alias (``offerer``/``host`` initiate,
        ``answerer``/``manager`` respond), or the challenge role byte 0/1."""
        if isinstance(value, Role):
            return value
        if isinstance(value, str):
            key = value.strip().lower()
            found = _ROLE_NAMES.get(key)
            if found is not None:
                return found
        elif isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return Role.INITIATOR if value == 0 else Role.RESPONDER
        raise CryptoError(BAD_INPUT, f"unknown handshake role {value!r}")


_ROLE_NAMES = {
    "initiator": Role.INITIATOR,
    "offerer": Role.INITIATOR,
    "host": Role.INITIATOR,
    "responder": Role.RESPONDER,
    "answerer": Role.RESPONDER,
    "manager": Role.RESPONDER,
}


def as_bytes(value: Any, what: str) -> bytes:
    """UTF-8 of a str, or bytes as they are; anything else is a CryptoError."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise CryptoError(BAD_INPUT, f"{what} must be str or bytes, not {type(value).__name__}")


def as_data(value: Any, what: str) -> bytes:
    """Binary data (bytes-like only: a str here is almost certainly a caller bug)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise CryptoError(BAD_INPUT, f"{what} must be bytes, not {type(value).__name__}")


def as_key(value: Any, what: str, length: int = 32) -> bytes:
    """A symmetric key or hash of exactly *length* bytes."""
    data = as_data(value, what)
    if len(data) != length:
        raise CryptoError(BAD_KEY, f"{what} must be {length} bytes, got {len(data)}")
    return data
