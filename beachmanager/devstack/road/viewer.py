"""Optional viewer-token verification (reference §1.4), keys from a local JWKS file.

A viewer token is an ES256 JWT whose header ``kid`` names a key in the JWKS, with
``aud`` (and ``iss`` when configured), ``sub`` = the host session id, a viewer
marker (``token_type == "viewer"`` or ``viewer: true``) and ``mac`` =
base64url-nopad(HMAC-SHA256(secret, "{session_id}:{join_code}")).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jwt.types import Options


class ViewerTokenError(Exception):
    """The token is invalid (Road: "viewer credential invalid")."""


class ViewerTokenUnavailable(Exception):
    """The keys cannot be loaded (Road: "viewer token verification failed" / HTTP 502)."""


def viewer_mac(secret: bytes, session_id: str, join_code: str) -> str:
    digest = hmac.new(secret, f"{session_id}:{join_code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ViewerVerifier:
    def __init__(self, secret: bytes, jwks_path: str, audience: str = "beach-road", issuer: str | None = None):
        self.secret = secret
        self.jwks_path = jwks_path
        self.audience = audience
        self.issuer = issuer

    def _keys(self) -> dict[str, Any]:  # kid -> key (PyJWK.key is untyped)
        from jwt import PyJWK

        try:
            with open(self.jwks_path, encoding="utf-8") as f:
                doc = json.load(f)
            return {k["kid"]: PyJWK(k, algorithm="ES256").key for k in doc["keys"] if "kid" in k}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ViewerTokenUnavailable(f"cannot load JWKS: {e}") from None
        except Exception as e:  # PyJWKError and friends
            raise ViewerTokenUnavailable(f"bad JWKS: {e}") from None

    def verify(self, token: str, session_id: str, join_code: str) -> dict:
        import jwt

        keys = self._keys()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as e:
            raise ViewerTokenError(f"malformed token: {e}") from None
        key = keys.get(kid) if kid is not None else None
        if key is None:
            raise ViewerTokenError("unknown key id")
        options: Options = {"require": ["exp", "sub", "aud"]}
        try:
            claims = jwt.decode(token, key, algorithms=["ES256"], audience=self.audience,
                                issuer=self.issuer, options=options)
        except jwt.PyJWTError as e:
            raise ViewerTokenError(str(e)) from None
        if claims.get("sub") != session_id:
            raise ViewerTokenError("token is for another session")
        token_type = claims.get("token_type")
        if not ((isinstance(token_type, str) and token_type.lower() == "viewer") or claims.get("viewer") is True):
            raise ViewerTokenError("not a viewer token")
        mac = claims.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, viewer_mac(self.secret, session_id, join_code)):
            raise ViewerTokenError("mac mismatch")
        return claims
