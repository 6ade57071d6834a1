"""The 56-byte challenge frame both sides send right after Noise, on the handshake channel.

=======  ====  =====================================================================
offset   size  content
=======  ====  =====================================================================
0        1     version ``0x01``
1        1     role: 0 initiator, 1 responder
2        6     verification code, ASCII digits
8        16    random nonce
24       32    HMAC-SHA256(challenge key, context || role || code || nonce)
=======  ====  =====================================================================

A peer's frame is accepted when the length is 56, the version 1, the role the opposite of
ours, the MAC matches (constant-time) and its code equals ours, checked in that order.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

from .base import (
    BAD_CODE,
    BAD_INPUT,
    BAD_LENGTH,
    BAD_MAC,
    BAD_ROLE,
    BAD_VERSION,
    CryptoError,
    Role,
    as_data,
    as_key,
)
from .keys import CODE_DIGITS, TransportKeys

CHALLENGE_VERSION = 1
CHALLENGE_NONCE_LEN = 16
CHALLENGE_MAC_LEN = 32
CHALLENGE_FRAME_LEN = 1 + 1 + CODE_DIGITS + CHALLENGE_NONCE_LEN + CHALLENGE_MAC_LEN  # 56
_CODE_AT = slice(2, 2 + CODE_DIGITS)
_NONCE_AT = slice(_CODE_AT.stop, _CODE_AT.stop + CHALLENGE_NONCE_LEN)
_MAC_AT = slice(_NONCE_AT.stop, CHALLENGE_FRAME_LEN)


def challenge_mac(key: bytes, context: bytes, role_byte: int, code: bytes, nonce: bytes) -> bytes:
    """HMAC-SHA256(key, context || role_byte || code || nonce)."""
    mac = hmac.new(as_key(key, "challenge key"), as_data(context, "challenge context"),
                   hashlib.sha256)
    mac.update(bytes([role_byte]))
    mac.update(code)
    mac.update(nonce)
    return mac.digest()


def _code_bytes(code: str) -> bytes:
    if not (isinstance(code, str) and len(code) == CODE_DIGITS and code.isascii()
            and code.isdigit()):
        raise CryptoError(BAD_INPUT, f"verification code must be {CODE_DIGITS} ASCII digits")
    return code.encode("ascii")


def build_challenge(keys: TransportKeys, role: Any, *, nonce: bytes | None = None) -> bytes:
    """Our 56-byte challenge frame (``role`` is our own role).  *nonce* is for tests only."""
    me = Role.coerce(role)
    code = _code_bytes(keys.verification_code)
    if nonce is None:
        nonce = os.urandom(CHALLENGE_NONCE_LEN)
    elif len(as_data(nonce, "nonce")) != CHALLENGE_NONCE_LEN:
        raise CryptoError(BAD_INPUT, f"challenge nonce must be {CHALLENGE_NONCE_LEN} bytes")
    nonce = bytes(nonce)
    mac = challenge_mac(keys.challenge_key, keys.challenge_context, me.byte, code, nonce)
    return bytes([CHALLENGE_VERSION, me.byte]) + code + nonce + mac


def verify_challenge(keys: TransportKeys, local_role: Any, frame: bytes) -> None:
    """Check the peer's challenge frame; raises CryptoError whose reason names the failed check
    (``bad-length``, ``bad-version``, ``bad-role``, ``bad-mac``, ``bad-code``)."""
    me = Role.coerce(local_role)
    data = as_data(frame, "challenge frame")
    if len(data) != CHALLENGE_FRAME_LEN:
        raise CryptoError(BAD_LENGTH, f"challenge frame is {len(data)} bytes, "
                                      f"expected {CHALLENGE_FRAME_LEN}")
    if data[0] != CHALLENGE_VERSION:
        raise CryptoError(BAD_VERSION, f"challenge frame version {data[0]}, "
                                       f"expected {CHALLENGE_VERSION}")
    if data[1] != me.other.byte:
        raise CryptoError(BAD_ROLE, f"challenge frame role byte {data[1]}, expected "
                                    f"{me.other.byte} ({me.other.value})")
    expected = challenge_mac(keys.challenge_key, keys.challenge_context, data[1],
                             data[_CODE_AT], data[_NONCE_AT])
    if not hmac.compare_digest(expected, data[_MAC_AT]):
        raise CryptoError(BAD_MAC, "challenge frame MAC does not verify "
                                   "(different join code, handshake id or peer ids)")
    if not hmac.compare_digest(data[_CODE_AT], _code_bytes(keys.verification_code)):
        raise CryptoError(BAD_CODE, "challenge frame carries a different verification code")
