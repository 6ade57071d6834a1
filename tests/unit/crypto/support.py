"""Independent helpers for the crypto tests: a second derivation path written from the
reference text (argon2-cffi, RFC 5869 HKDF on hmac/hashlib), and fixed sample ids."""

from __future__ import annotations

import hashlib
import hmac

from argon2.low_level import Type, hash_secret_raw

HOST_SESSION_ID = "8b0f6f0e-3c1a-4a53-9a43-2f2a0b7c9d10"
HANDSHAKE_ID = "2c5e1f3a-7d44-4e5b-8f6a-0c1d2e3f4a5b"
HOST_PEER = "7f3c2a10-host"
MANAGER_PEER = "1a9e4b22-mgr"
JOIN_CODE = "SMOKEP"


def argon2id(password: str, salt: str) -> bytes:
    return hash_secret_raw(password.encode(), salt.encode(), time_cost=1, memory_cost=32768,
                           parallelism=1, hash_len=32, type=Type.ID, version=19)


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]
