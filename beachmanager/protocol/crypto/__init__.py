"""Sans-I/O secure signaling and secure transport: sealing, Noise XX, challenge, encrypted channel.

Flow for the manager (answerer, Noise responder), reference §4:

1. ``session_key = derive_session_key(join_code, host_session_id)`` (Argon2id, blocking: use
   ``beachmanager.transport.session_keys`` from the reactor);
2. per offer: ``psk = derive_handshake_key(session_key, handshake_id)``; open the offer with
   ``open_sealed(psk, hid, "offer", sdp_components(from, to, "offer"), sealed)``; seal the
   answer and ICE with :func:`seal`;
3. if :func:`secure_transport_active`: run :class:`SecureHandshake` (Noise responder and the
   challenge frames) on ``beach-secure-handshake``;
4. encrypt ``beach`` with :class:`SecureChannel`; receive through :class:`InboundGate`.

Every failure raises :class:`CryptoError` (``.reason`` is a short stable string).
"""

from .base import CryptoError, Role
from .challenge import (
    CHALLENGE_FRAME_LEN,
    build_challenge,
    challenge_mac,
    verify_challenge,
)
from .channel import TRANSPORT_AAD, InboundGate, SecureChannel, looks_encrypted
from .handshake import SecureHandshake
from .keys import (
    ChallengeMaterial,
    TransportKeys,
    derive_handshake_key,
    derive_legacy_key,
    derive_message_key,
    derive_session_key,
    derive_transport_keys,
)
from .noise import PROTOCOL_NAME, NoiseHandshake, build_prologue
from .policy import (
    HANDSHAKE_CHANNEL_LABEL,
    MANAGER_PEER_LABEL,
    SECURE_PEER_LABELS,
    InsecureOverrides,
    InsecureOverrideWarning,
    secure_transport_active,
    signaling_sealed,
)
from .sealing import build_aad, ice_components, open_sealed, sdp_components, seal

__all__ = [
    "CHALLENGE_FRAME_LEN",
    "HANDSHAKE_CHANNEL_LABEL",
    "MANAGER_PEER_LABEL",
    "PROTOCOL_NAME",
    "SECURE_PEER_LABELS",
    "TRANSPORT_AAD",
    "ChallengeMaterial",
    "CryptoError",
    "InboundGate",
    "InsecureOverrideWarning",
    "InsecureOverrides",
    "NoiseHandshake",
    "Role",
    "SecureChannel",
    "SecureHandshake",
    "TransportKeys",
    "build_aad",
    "build_challenge",
    "build_prologue",
    "challenge_mac",
    "derive_handshake_key",
    "derive_legacy_key",
    "derive_message_key",
    "derive_session_key",
    "derive_transport_keys",
    "ice_components",
    "looks_encrypted",
    "open_sealed",
    "sdp_components",
    "seal",
    "secure_transport_active",
    "signaling_sealed",
    "verify_challenge",
]
