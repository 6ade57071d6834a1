"""``Noise_XX_25519_ChaChaPoly_BLAKE2s`` (Noise revision 34) on ``cryptography`` primitives.

Only what Beach needs: the XX pattern, no PSK, empty or small payloads, and the handshake hash.
The Beach prologue is ``beach:secure-handshake:v1 0x1F handshake_id 0x1F p0 0x1F p1`` with the
two WebSocket-assigned peer ids sorted byte-wise.  The host (offerer) initiates and the manager
(answerer) responds::

    -> e                    32 bytes with an empty payload
    <- e, ee, s, es         96 bytes
    -> s, se                64 bytes

Each message is one raw binary message on ``beach-secure-handshake``.  Beach discards the
transport ciphers and keys everything from :attr:`NoiseHandshake.handshake_hash`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .base import (
    AUTH_FAILED,
    BAD_LENGTH,
    BAD_PUBLIC_KEY,
    STATE,
    CryptoError,
    Role,
    as_bytes,
    as_data,
    as_key,
)
from .keys import sorted_peers

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2s"
PROLOGUE_PREFIX = b"beach:secure-handshake:v1"
DHLEN = 32
HASHLEN = 32
TAGLEN = 16
MAX_MESSAGE_LEN = 65535
MAX_NONCE = 2**64 - 1  # reserved by the spec

# XX: message i is written by the initiator when i is even.
XX_PATTERN = (("e",), ("e", "ee", "s", "es"), ("s", "se"))


def build_prologue(handshake_id: str, local_peer_id: str, remote_peer_id: str) -> bytes:
    """The Beach prologue; the same bytes on both sides because the peer ids are sorted."""
    p0, p1 = sorted_peers(local_peer_id, remote_peer_id)
    return b"\x1f".join([PROLOGUE_PREFIX, as_bytes(handshake_id, "handshake id"),
                         as_bytes(p0, "peer id"), as_bytes(p1, "peer id")])


def _blake2s(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def _hkdf(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    temp = _hmac(chaining_key, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class CipherState:
    """ChaChaPoly with a 64-bit little-endian counter nonce (Noise §5.1)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.n = 0

    def _nonce(self) -> bytes:
        if self.n >= MAX_NONCE:
            raise CryptoError(STATE, "Noise nonce exhausted")
        return b"\x00\x00\x00\x00" + self.n.to_bytes(8, "little")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.key is None:
            return plaintext
        out = ChaCha20Poly1305(self.key).encrypt(self._nonce(), plaintext, ad)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.key is None:
            return ciphertext
        try:
            out = ChaCha20Poly1305(self.key).decrypt(self._nonce(), ciphertext, ad)
        except InvalidTag:
            raise CryptoError(AUTH_FAILED, "Noise message did not authenticate") from None
        self.n += 1
        return out


class _SymmetricState:
    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = _blake2s(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_hash(self, data: bytes) -> None:
        self.h = _blake2s(self.h + data)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, ikm)
        self.cipher = CipherState(temp_k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf(self.ck, b"")
        return CipherState(k1), CipherState(k2)


def _private_key(raw: Any, what: str) -> X25519PrivateKey:
    if raw is None:
        return X25519PrivateKey.generate()
    return X25519PrivateKey.from_private_bytes(as_key(raw, what))


class NoiseXX:
    """A generic XX handshake state with any prologue (Beach uses :class:`NoiseHandshake`).

    Fixed private keys are for test vectors only; by default both keypairs are fresh.
    """

    def __init__(self, role: Any, prologue: bytes, *, static_private_key: bytes | None = None,
                 ephemeral_private_key: bytes | None = None) -> None:
        self.role = Role.coerce(role)
        self._sym = _SymmetricState(PROTOCOL_NAME)
        self._sym.mix_hash(as_data(prologue, "prologue"))
        self._s = _private_key(static_private_key, "static private key")
        self._e_fixed = ephemeral_private_key
        self._e: X25519PrivateKey | None = None
        self._re: bytes | None = None
        self._rs: bytes | None = None
        self._index = 0
        self._failed = False
        self._transport: tuple[CipherState, CipherState] | None = None

    # -- state ------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._index == len(XX_PATTERN)

    @property
    def failed(self) -> bool:
        return self._failed

    @property
    def handshake_hash(self) -> bytes:
        """The 32-byte handshake hash ``h``; only once :attr:`finished`."""
        if not self.finished:
            raise CryptoError(STATE, "the Noise handshake is not finished")
        return self._sym.h

    @property
    def local_static_public(self) -> bytes:
        return _public_bytes(self._s)

    @property
    def remote_static_public(self) -> bytes | None:
        return self._rs

    @property
    def writes_next(self) -> bool:
        """True when the next handshake message is ours to write."""
        return not self.finished and (self._index % 2 == 0) == (self.role is Role.INITIATOR)

    def transport_ciphers(self) -> tuple[CipherState, CipherState]:
        """(send, receive) Noise transport ciphers.  Beach does not use them."""
        if self._transport is None:
            raise CryptoError(STATE, "the Noise handshake is not finished")
        c1, c2 = self._transport
        return (c1, c2) if self.role is Role.INITIATOR else (c2, c1)

    def _check_turn(self, writing: bool) -> None:
        if self._failed:
            raise CryptoError(STATE, "the Noise handshake already failed")
        if self.finished:
            raise CryptoError(STATE, "the Noise handshake is already finished")
        if self.writes_next != writing:
            action = "write" if writing else "read"
            raise CryptoError(STATE, f"out of turn: the {self.role.value} cannot {action} "
                                     f"Noise message {self._index + 1} now")

    def _dh(self, private: X25519PrivateKey, public: bytes | None) -> bytes:
        if public is None:
            raise CryptoError(STATE, "Noise DH before the peer key is known")
        try:
            return private.exchange(X25519PublicKey.from_public_bytes(public))
        except ValueError:
            raise CryptoError(BAD_PUBLIC_KEY, "peer sent an invalid X25519 public key") from None

    def _mix_dh(self, token: str) -> None:
        initiator = self.role is Role.INITIATOR
        e = self._e
        assert e is not None
        if token == "ee":
            self._sym.mix_key(self._dh(e, self._re))
        elif token == "es":  # initiator's e with responder's s
            self._sym.mix_key(self._dh(e, self._rs) if initiator else self._dh(self._s, self._re))
        elif token == "se":  # initiator's s with responder's e
            self._sym.mix_key(self._dh(self._s, self._re) if initiator else self._dh(e, self._rs))

    def _advance(self) -> None:
        self._index += 1
        if self.finished:
            self._transport = self._sym.split()

    # -- messages ---------------------------------------------------------------

    def write_message(self, payload: bytes = b"") -> bytes:
        """The next handshake message (our turn only)."""
        self._check_turn(writing=True)
        body = as_data(payload, "payload")
        out = bytearray()
        try:
            for token in XX_PATTERN[self._index]:
                if token == "e":
                    self._e = _private_key(self._e_fixed, "ephemeral private key")
                    pub = _public_bytes(self._e)
                    out += pub
                    self._sym.mix_hash(pub)
                elif token == "s":
                    out += self._sym.encrypt_and_hash(self.local_static_public)
                else:
                    self._mix_dh(token)
            out += self._sym.encrypt_and_hash(body)
        except CryptoError:
            self._failed = True
            raise
        if len(out) > MAX_MESSAGE_LEN:
            self._failed = True
            raise CryptoError(BAD_LENGTH, "Noise message would exceed 65535 bytes")
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes) -> bytes:
        """Consume the peer's next handshake message; returns its payload."""
        self._check_turn(writing=False)
        data = as_data(message, "Noise message")
        try:
            if len(data) > MAX_MESSAGE_LEN:
                raise CryptoError(BAD_LENGTH, "Noise message exceeds 65535 bytes")
            pos = 0
            for token in XX_PATTERN[self._index]:
                if token in ("e", "s"):
                    size = DHLEN + (TAGLEN if token == "s" and self._sym.cipher.key else 0)
                    if len(data) - pos < size:
                        raise CryptoError(BAD_LENGTH, f"Noise message {self._index + 1} is "
                                                      f"too short ({len(data)} bytes)")
                    chunk = data[pos:pos + size]
                    pos += size
                    if token == "e":
                        self._re = chunk
                        self._sym.mix_hash(chunk)
                    else:
                        self._rs = self._sym.decrypt_and_hash(chunk)
                else:
                    self._mix_dh(token)
            rest = data[pos:]
            if self._sym.cipher.key is not None and len(rest) < TAGLEN:
                raise CryptoError(BAD_LENGTH, f"Noise message {self._index + 1} is too short")
            payload = self._sym.decrypt_and_hash(rest)
        except CryptoError:
            self._failed = True
            raise
        self._advance()
        return payload


class NoiseHandshake(NoiseXX):
    """Beach's Noise XX: the prologue is built from the handshake id and the two peer ids.

    ``role`` is :class:`Role` or ``"initiator"``/``"responder"`` (the manager responds, the host
    initiates).  ``write_message()`` / ``read_message(bytes)`` in turn until :attr:`finished`,
    then feed :attr:`handshake_hash` to :func:`keys.derive_transport_keys`.
    """

    def __init__(self, role: Any, handshake_id: str, local_peer_id: str, remote_peer_id: str,
                 **fixed_keys: bytes | None) -> None:
        self.handshake_id = handshake_id
        self.local_peer_id = local_peer_id
        self.remote_peer_id = remote_peer_id
        self.prologue = build_prologue(handshake_id, local_peer_id, remote_peer_id)
        super().__init__(role, self.prologue, **fixed_keys)
