"""The manager cluster's association authority, and the bridge tokens it issues to harnesses.

Every instance of one cluster shares one Ed25519 key (``BEACH_MANAGER_ASSOCIATION_KEY``, the
base64 of its 32-byte seed; generated per process when unset, which suits one instance
only).  With it an instance

* signs each association message it sends to a host's harness
  (:mod:`beachmanager.protocol.association`): a harness pins the authority and refuses an
  association signed by anyone else, so after a failover it accepts the new owner's;
* issues **bridge tokens**: a JWT (EdDSA) scoped to one host (``sub``), with the private beach
  it was linked to, scope ``pb:harness.bridge``, expiring after ``BEACH_MANAGER_BRIDGE_TOKEN_TTL``
  seconds.  The harness sends it back where it talks to the manager on its own behalf (a
  renewal request, an agent's lease and actions); any instance of the cluster can check it.

Times come from the injected clock, not pyjwt's: expiry is checked here.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..protocol.association import Authority, key_id

BRIDGE_SCOPE = "pb:harness.bridge"
BRIDGE_AUDIENCE = "beach-harness"
ISSUER_PREFIX = "beach-manager/"
#: Seconds of clock difference tolerated when checking a token's times.
LEEWAY = 5.0


class BridgeTokenError(Exception):
    """A bridge token that is not valid for this use; ``code`` is the bus/API error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BridgeClaims:
    host_session_id: str
    private_beach_id: str | None
    expires_at_ms: int
    issued_by: str  # the manager instance that issued it


def parse_key(raw: str) -> bytes:
    """The 32-byte seed from ``BEACH_MANAGER_ASSOCIATION_KEY`` (ValueError with a short reason)."""
    try:
        seed = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64") from None
    if len(seed) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(seed)}")
    return seed


class AssociationAuthority:
    """One cluster's signing key: signs associations, issues and checks bridge tokens."""

    def __init__(self, seed: bytes | None = None):
        self.ephemeral = seed is None
        self._key = (Ed25519PrivateKey.generate() if seed is None
                     else Ed25519PrivateKey.from_private_bytes(seed))
        self._public = self._key.public_key()
        raw = self._public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.authority = Authority(key_id(raw), raw)
        self.issuer = ISSUER_PREFIX + self.authority.key_id

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.authority.public_key).decode()

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def issue(self, host_session_id: str, private_beach_id: str | None, now: float, ttl: float,
              issued_by: str) -> tuple[str, int]:
        """A bridge token for *host_session_id*; (token, expiry in ms)."""
        expires = int(now + ttl)
        claims = {"iss": self.issuer, "aud": BRIDGE_AUDIENCE, "sub": host_session_id,
                  "iat": int(now), "exp": expires, "jti": uuid.uuid4().hex,
                  "scope": BRIDGE_SCOPE, "mgr": issued_by}
        if private_beach_id is not None:
            claims["private_beach_id"] = private_beach_id
        return jwt.encode(claims, self._key, algorithm="EdDSA"), expires * 1000

    def check(self, token: str, host_session_id: str, now: float) -> BridgeClaims:
        """The claims of a bridge token presented by *host_session_id*'s harness."""
        if not isinstance(token, str) or not 0 < len(token) <= 8192:
            raise BridgeTokenError("invalid_bridge_token", "the bridge token is missing or too long")
        try:
            claims = jwt.decode(token, self._public, algorithms=["EdDSA"],
                                audience=BRIDGE_AUDIENCE, issuer=self.issuer,
                                options={"verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False,
                                         "require": ["exp", "sub", "iss", "aud"]})
        except jwt.PyJWTError as e:
            raise BridgeTokenError("invalid_bridge_token",
                                   f"the bridge token was not issued by this cluster ({e})") from None
        exp, sub = claims.get("exp"), claims.get("sub")
        if type(exp) is not int or not isinstance(sub, str) or claims.get("scope") != BRIDGE_SCOPE:
            raise BridgeTokenError("invalid_bridge_token", "the bridge token's claims are malformed")
        if exp + LEEWAY < now:
            raise BridgeTokenError("bridge_token_expired", "the bridge token has expired")
        if sub != host_session_id:
            raise BridgeTokenError("invalid_bridge_token", "the bridge token was issued to "
                                   "another host")
        beach = claims.get("private_beach_id")
        return BridgeClaims(sub, beach if isinstance(beach, str) else None, exp * 1000,
                            str(claims.get("mgr", "")))


__all__ = ["BRIDGE_SCOPE", "AssociationAuthority", "BridgeClaims", "BridgeTokenError",
           "parse_key"]
