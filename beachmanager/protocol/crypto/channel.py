"""Encrypted ``beach`` data-channel messages, after the handshake and challenge succeed.

Every SCTP message (each framed chunk) is::

    0x01 | counter (u64 big-endian) | ChaCha20-Poly1305(key, nonce, plaintext, aad)

with ``nonce = 0x00000000 || counter (8 bytes BE)`` and ``aad = b"beach:secure-transport:v1"``.
Each direction counts from 0.  The receiver takes the counter from the frame: a jump forward
is a resynchronisation, a counter behind the next expected one is rejected (as the host does).
Unlike the host, the receiver only moves its counter after a frame authenticates, so a forged
frame cannot push it ahead of the real traffic.

:class:`SecureChannel` raises :class:`CryptoError`; :class:`InboundGate` is what a transport's
message handler should call: it never raises on bad bytes (it drops and counts them) and holds
frames that look encrypted until the keys are installed (bounded), then flushes them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .base import (
    AUTH_FAILED,
    BAD_INPUT,
    BAD_LENGTH,
    BAD_VERSION,
    COUNTER_EXHAUSTED,
    STALE_COUNTER,
    CryptoError,
    as_data,
    as_key,
)

FRAME_VERSION = 0x01
HEADER_LEN = 9
TAG_LEN = 16
TRANSPORT_AAD = b"beach:secure-transport:v1"
COUNTER_LIMIT = 2**64

DEFAULT_MAX_PENDING = 256
DEFAULT_MAX_PENDING_BYTES = 4 * 1024 * 1024


def counter_nonce(counter: int) -> bytes:
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "big")


def looks_encrypted(data: bytes) -> bool:
    """The host's test for "arrived before keys, hold it": version byte 0x01 and >= 9 bytes.

    Plaintext framed chunks start with 0xA1, so they never look encrypted."""
    return len(data) >= HEADER_LEN and data[0] == FRAME_VERSION


class SecureChannel:
    """One side of the encrypted data channel: ``seal`` outgoing, ``open`` incoming."""

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        self._send = ChaCha20Poly1305(as_key(send_key, "send key"))
        self._recv = ChaCha20Poly1305(as_key(recv_key, "receive key"))
        self.send_counter = 0  # counter of the next frame we send
        self.recv_counter = 0  # lowest counter we still accept
        self.resyncs = 0  # frames accepted with a counter ahead of the expected one

    def seal(self, plaintext: bytes) -> bytes:
        counter = self.send_counter
        if counter >= COUNTER_LIMIT:
            raise CryptoError(COUNTER_EXHAUSTED, "send counter exhausted; renegotiate")
        body = self._send.encrypt(counter_nonce(counter), as_data(plaintext, "plaintext"),
                                  TRANSPORT_AAD)
        self.send_counter = counter + 1
        return bytes([FRAME_VERSION]) + counter.to_bytes(8, "big") + body

    def open(self, frame: bytes) -> bytes:
        """Decrypt one frame; raises CryptoError (reason ``bad-length``, ``bad-version``,
        ``stale-counter`` or ``auth-failed``) and leaves the counter alone on failure."""
        data = as_data(frame, "encrypted frame")
        if len(data) < HEADER_LEN + TAG_LEN:
            raise CryptoError(BAD_LENGTH, f"encrypted frame is {len(data)} bytes, shorter than "
                                          f"header and tag ({HEADER_LEN + TAG_LEN})")
        if data[0] != FRAME_VERSION:
            raise CryptoError(BAD_VERSION, f"encrypted frame version {data[0]:#04x}, "
                                           f"expected {FRAME_VERSION:#04x}")
        counter = int.from_bytes(data[1:HEADER_LEN], "big")
        if counter < self.recv_counter:
            raise CryptoError(STALE_COUNTER, f"encrypted frame counter {counter} is behind "
                                             f"the expected {self.recv_counter}")
        try:
            plaintext = self._recv.decrypt(counter_nonce(counter), data[HEADER_LEN:],
                                           TRANSPORT_AAD)
        except InvalidTag:
            raise CryptoError(AUTH_FAILED, f"encrypted frame {counter} did not authenticate") \
                from None
        if counter > self.recv_counter:
            self.resyncs += 1
        self.recv_counter = counter + 1
        return plaintext


class InboundGate:
    """Receive path of the ``beach`` channel with secure transport: sans-I/O, never raises on
    bad bytes.

    Before :meth:`install`, frames that look encrypted are held (at most *max_pending* frames
    and *max_pending_bytes* bytes; beyond that they are dropped and counted) and anything else
    passes through as plaintext.  After it, every frame is decrypted; failures are dropped and
    counted, the last one kept in :attr:`last_error` for the caller's log.
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES) -> None:
        if max_pending < 1 or max_pending_bytes < 1:
            raise CryptoError(BAD_INPUT, "pre-key queue bounds must be positive")
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.channel: SecureChannel | None = None
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self.decrypt_failures = 0
        self.overflow_drops = 0
        self.flushed = 0
        self.last_error: CryptoError | None = None

    @property
    def installed(self) -> bool:
        return self.channel is not None

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def install(self, channel: SecureChannel) -> list[bytes]:
        """Install the keys; returns the plaintexts of the held frames, in arrival order."""
        if self.channel is not None:
            raise CryptoError(BAD_INPUT, "secure channel keys are already installed")
        self.channel = channel
        held = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        out: list[bytes] = []
        for frame in held:
            out.extend(self._decrypt(frame))
        self.flushed += len(out)
        return out

    def receive(self, data: Any) -> list[bytes]:
        """Zero or one plaintext messages for one received data-channel message."""
        try:
            frame = as_data(data, "data-channel message")
        except CryptoError as err:
            return self._drop(err)
        if self.channel is not None:
            return self._decrypt(frame)
        if not looks_encrypted(frame):
            return [frame]
        if (len(self._pending) >= self.max_pending
                or self._pending_bytes + len(frame) > self.max_pending_bytes):
            self.overflow_drops += 1
            return []
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        return []

    def _decrypt(self, frame: bytes) -> list[bytes]:
        assert self.channel is not None
        try:
            return [self.channel.open(frame)]
        except CryptoError as err:
            return self._drop(err)

    def _drop(self, err: CryptoError) -> list[bytes]:
        self.decrypt_failures += 1
        self.last_error = err
        return []
