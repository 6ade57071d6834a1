"""Sealed signaling envelopes: ``{"version": 1, "nonce": b64, "ciphertext": b64}``.

ChaCha20-Poly1305 under the label's message key (:func:`keys.derive_message_key`), a random
12-byte nonce, and associated data::

    handshake_id 0x1F label (0x1F component)*

``components`` are the AAD parts after the label (reference §4.3):

* SDP offer/answer: ``[from_peer, to_peer, type]`` from the payload itself
  (:func:`sdp_components`);
* ICE: ``[from_peer, to_peer, handshake_id]`` where *from* is the sender's assigned id.  The
  sender passes (own id, peer id), the receiver (peer id, own id); see :func:`ice_components`.

Base64 is standard with padding.  Opening accepts the host's legacy fallback key only for
``ice``, as the host does; SDP opens with the handshake key alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .base import (
    AUTH_FAILED,
    BAD_ENCODING,
    BAD_ENVELOPE,
    BAD_INPUT,
    BAD_NONCE,
    BAD_VERSION,
    CryptoError,
    as_bytes,
    as_data,
    as_key,
)
from .keys import derive_message_key, seal_label

ENVELOPE_VERSION = 1
NONCE_LEN = 12
TAG_LEN = 16
SEPARATOR = b"\x1f"


def build_aad(handshake_id: str, label: str, components: Sequence[str]) -> bytes:
    """``handshake_id 0x1F label (0x1F component)*`` as bytes."""
    if isinstance(components, str | bytes):
        raise CryptoError(BAD_INPUT, "components must be a list of AAD parts, not one string")
    parts = [as_bytes(handshake_id, "handshake id"), seal_label(label).encode("ascii")]
    parts.extend(as_bytes(c, "AAD component") for c in components)
    return SEPARATOR.join(parts)


def sdp_components(from_peer: str, to_peer: str, sdp_type: str) -> list[str]:
    """AAD parts for an SDP payload: its own ``from_peer``, ``to_peer`` and ``type``."""
    return [from_peer, to_peer, sdp_type]


def ice_components(from_peer: str, to_peer: str, handshake_id: str) -> list[str]:
    """AAD parts for an ICE candidate sent by *from_peer* to *to_peer*.

    Sender: ``ice_components(own_id, remote_id, hid)``; receiver:
    ``ice_components(remote_id, own_id, hid)``.  (The handshake id is in the AAD twice.)
    """
    return [from_peer, to_peer, handshake_id]


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise CryptoError(BAD_ENVELOPE, f"envelope {what} must be a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise CryptoError(BAD_ENCODING, f"envelope {what} is not valid base64") from None


def seal(handshake_key: bytes, handshake_id: str, label: str, components: Sequence[str],
         plaintext: bytes, *, nonce: bytes | None = None) -> dict[str, Any]:
    """Seal *plaintext*; returns the JSON-ready envelope dict.  (*nonce* is for tests only.)"""
    key = derive_message_key(handshake_key, handshake_id, label)
    aad = build_aad(handshake_id, label, components)
    body = as_bytes(plaintext, "plaintext")
    if nonce is None:
        nonce = os.urandom(NONCE_LEN)
    elif len(as_data(nonce, "nonce")) != NONCE_LEN:
        raise CryptoError(BAD_NONCE, f"nonce must be {NONCE_LEN} bytes")
    ciphertext = ChaCha20Poly1305(key).encrypt(bytes(nonce), body, aad)
    return {"version": ENVELOPE_VERSION, "nonce": _b64encode(nonce),
            "ciphertext": _b64encode(ciphertext)}


def parse_envelope(envelope: Any) -> tuple[bytes, bytes]:
    """Validate an envelope (dict, or its JSON text) and return ``(nonce, ciphertext)``."""
    if isinstance(envelope, str | bytes | bytearray):
        try:
            envelope = json.loads(envelope)
        except (ValueError, UnicodeDecodeError):
            raise CryptoError(BAD_ENVELOPE, "sealed envelope is not valid JSON") from None
    if not isinstance(envelope, Mapping):
        raise CryptoError(BAD_ENVELOPE, "sealed envelope must be an object")
    missing = [k for k in ("version", "nonce", "ciphertext") if k not in envelope]
    if missing:
        raise CryptoError(BAD_ENVELOPE, f"sealed envelope lacks {', '.join(missing)}")
    version = envelope["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise CryptoError(BAD_VERSION, "sealed envelope version must be an integer")
    if version != ENVELOPE_VERSION:
        raise CryptoError(BAD_VERSION, f"unsupported sealed envelope version {version}")
    nonce = _b64decode(envelope["nonce"], "nonce")
    if len(nonce) != NONCE_LEN:
        raise CryptoError(BAD_NONCE, f"envelope nonce must be {NONCE_LEN} bytes, got {len(nonce)}")
    ciphertext = _b64decode(envelope["ciphertext"], "ciphertext")
    if len(ciphertext) < TAG_LEN:
        raise CryptoError(BAD_ENVELOPE, "envelope ciphertext is shorter than its tag")
    return nonce, ciphertext


def _open_with(key_source: bytes, handshake_id: str, label: str, aad: bytes,
               nonce: bytes, ciphertext: bytes) -> bytes | None:
    key = derive_message_key(key_source, handshake_id, label)
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def open_sealed(handshake_key: bytes, handshake_id: str, label: str, components: Sequence[str],
                envelope: Any, *, legacy_key: bytes | None = None) -> bytes:
    """Open a sealed envelope; raises CryptoError with a reason on any mismatch.

    *legacy_key* (:func:`keys.derive_legacy_key`) is tried after the handshake key, and only
    for ``ice`` (the host accepts it nowhere else).
    """
    label = seal_label(label)
    as_key(handshake_key, "handshake key")
    if legacy_key is not None:
        as_key(legacy_key, "legacy key")
        if label != "ice":
            raise CryptoError(BAD_INPUT, "the legacy fallback key is only accepted for ice")
    nonce, ciphertext = parse_envelope(envelope)
    aad = build_aad(handshake_id, label, components)
    plaintext = _open_with(handshake_key, handshake_id, label, aad, nonce, ciphertext)
    if plaintext is None and legacy_key is not None:
        plaintext = _open_with(legacy_key, handshake_id, label, aad, nonce, ciphertext)
    if plaintext is None:
        keys = "the handshake key or the legacy key" if legacy_key is not None else "its key"
        raise CryptoError(AUTH_FAILED, f"sealed {label} payload did not authenticate with {keys} "
                          "(wrong join code, handshake id, peer ids, or tampered bytes)")
    return plaintext
