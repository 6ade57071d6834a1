"""The whole exchange on ``beach-secure-handshake``, sans-I/O: Noise XX, then challenge frames.

Feed every message received on the handshake channel to :meth:`SecureHandshake.receive` and
send back what it returns, in order.  When :attr:`~SecureHandshake.done` is true, install
``SecureChannel(keys.send_key, keys.recv_key)`` on ``beach``.  Any failure raises
:class:`CryptoError`; the caller then closes the handshake channel and abandons the attempt.

Responder (the manager): receive m1 -> send m2; receive m3 -> send our challenge; receive the
host's challenge -> done.  Initiator: start() -> m1; receive m2 -> send m3 and our challenge;
receive the peer's challenge -> done.
"""

from __future__ import annotations

from typing import Any

from .base import STATE, CryptoError, Role, as_key
from .challenge import build_challenge, verify_challenge
from .keys import TransportKeys, derive_transport_keys
from .noise import NoiseHandshake


class SecureHandshake:
    def __init__(self, role: Any, handshake_key: bytes, handshake_id: str,
                 local_peer_id: str, remote_peer_id: str) -> None:
        self.role = Role.coerce(role)
        self._psk = as_key(handshake_key, "handshake key")
        self.handshake_id = handshake_id
        self.local_peer_id = local_peer_id
        self.remote_peer_id = remote_peer_id
        self.noise = NoiseHandshake(self.role, handshake_id, local_peer_id, remote_peer_id)
        self.keys: TransportKeys | None = None
        self.done = False
        self.error: CryptoError | None = None
        self.ignored_after_done = 0
        self._started = False

    @property
    def verification_code(self) -> str | None:
        return self.keys.verification_code if self.keys else None

    def start(self) -> list[bytes]:
        """Messages to send first: Noise message 1 for the initiator, nothing for the responder."""
        self._guard()
        if self._started:
            raise CryptoError(STATE, "secure handshake already started")
        self._started = True
        if self.role is Role.INITIATOR:
            return self._run(lambda: [self.noise.write_message()])
        return []

    def receive(self, message: bytes) -> list[bytes]:
        """Consume one handshake-channel message; returns the messages to send in reply."""
        self._guard()
        if self.done:
            self.ignored_after_done += 1
            return []
        if not self._started:
            self.start()
        return self._run(lambda: self._step(message))

    def _guard(self) -> None:
        if self.error is not None:
            raise CryptoError(STATE, f"secure handshake already failed ({self.error.reason})")

    def _run(self, fn: Any) -> list[bytes]:
        try:
            return fn()
        except CryptoError as err:
            self.error = err
            raise

    def _step(self, message: bytes) -> list[bytes]:
        if self.keys is not None:  # Noise is done: this is the peer's challenge
            verify_challenge(self.keys, self.role, message)
            self.done = True
            return []
        self.noise.read_message(message)
        out: list[bytes] = []
        if not self.noise.finished:
            out.append(self.noise.write_message())
        if self.noise.finished:
            self.keys = derive_transport_keys(self._psk, self.noise.handshake_hash,
                                              self.handshake_id, self.local_peer_id,
                                              self.remote_peer_id)
            out.append(build_challenge(self.keys, self.role))
        return out
