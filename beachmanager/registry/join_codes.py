"""Join codes at rest: AES-256-GCM with keys from configuration (``BEACH_MANAGER_JOIN_CODE_KEY``).

A join code is the host's secret for the secure layer, so the store keeps only
``(key_id, nonce || ciphertext)``.  The ciphertext is bound to its row: the
associated data is the private beach id and host session id, so a blob copied to
another row does not decrypt.  Several keys may be configured: the first encrypts,
all decrypt (rotation: prepend the new key, re-register, then drop the old one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
MAX_CODE_BYTES = 1024


class JoinCodeError(Exception):
    """A stored join code cannot be decrypted (unknown key, tampered or misplaced blob)."""


def key_id(key: bytes) -> str:
    """A short public fingerprint of *key*, stored next to each ciphertext."""
    return hashlib.sha256(b"beach-manager join code key\0" + key).hexdigest()[:16]


def _decode_key(raw: str) -> bytes:
    text = raw.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"must decode to {KEY_BYTES} bytes, got {len(key)}")
    return key


@dataclass(frozen=True)
class JoinCodeKeys:
    """Parsed keys; the repr never shows key material (it ends up in start-up logs)."""

    keys: tuple[bytes, ...]

    def __repr__(self) -> str:
        return f"<join code keys: {len(self.keys)}, encrypting with {key_id(self.keys[0])}>"

    __str__ = __repr__

    @classmethod
    def generate(cls) -> JoinCodeKeys:
        return cls((os.urandom(KEY_BYTES),))


def parse_keys(raw: str) -> JoinCodeKeys:
    """``BEACH_MANAGER_JOIN_CODE_KEY``: comma-separated base64 (standard or URL-safe) 32-byte keys."""
    parts = [p for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValueError("needs at least one key")
    keys = []
    for i, part in enumerate(parts, 1):
        try:
            keys.append(_decode_key(part))
        except ValueError as e:
            raise ValueError(f"key {i} {e}") from None
    return JoinCodeKeys(tuple(keys))


def _aad(private_beach_id: str, host_session_id: str) -> bytes:
    return f"{private_beach_id}\0{host_session_id}".encode()


class JoinCodeCipher:
    def __init__(self, keys: JoinCodeKeys):
        self._by_id = {key_id(k): AESGCM(k) for k in keys.keys}
        self.current_id = key_id(keys.keys[0])

    def encrypt(self, code: str, private_beach_id: str, host_session_id: str) -> tuple[str, bytes]:
        data = code.encode()
        if len(data) > MAX_CODE_BYTES:
            raise ValueError(f"join code longer than {MAX_CODE_BYTES} bytes")
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._by_id[self.current_id].encrypt(nonce, data, _aad(private_beach_id, host_session_id))
        return self.current_id, nonce + sealed

    def decrypt(self, kid: str, blob: bytes, private_beach_id: str, host_session_id: str) -> str:
        aead = self._by_id.get(kid)
        if aead is None:
            raise JoinCodeError(f"join code was encrypted with key {kid}, which is not configured")
        if len(blob) < NONCE_BYTES + 16:
            raise JoinCodeError("stored join code is truncated")
        try:
            data = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(private_beach_id, host_session_id))
        except InvalidTag:
            raise JoinCodeError("stored join code does not authenticate (tampered or moved)") from None
        return data.decode()
