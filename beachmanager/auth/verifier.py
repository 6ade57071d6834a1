"""Bearer-token verification against the configured authorities (Beach Gate, then Clerk).

The checks, in order: the token is a JWT of bounded size; its header names ``ES256``
or ``RS256`` and carries a ``kid``; some authority's key set has that ``kid`` (tried in
configuration order); the header's algorithm is the key's algorithm; the signature
verifies; ``iss``/``aud`` match when the authority configures them; ``exp`` is present
and not past (with :data:`LEEWAY`); ``nbf``, when present, is not in the future; ``sub``
is a string.  Times come from the injected clock, not from PyJWT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from .jwks import JwksCache, JwksUnavailable
from .principal import MAX_TOKEN_LENGTH, AuthFailure, Principal
from .scopes import granted_scopes

#: Seconds of clock skew tolerated on ``exp`` and ``nbf``.
LEEWAY = 30.0
ALGORITHMS = ("ES256", "RS256")


@dataclass(frozen=True)
class Authority:
    name: str
    jwks: JwksCache
    issuer: str | None = None
    audience: str | None = None


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthFailure("malformed_token", f"claim {name} is not a number")
    return float(value)


class TokenVerifier:
    def __init__(self, authorities: Sequence[Authority], clock: IReactorTime, leeway: float = LEEWAY):
        self.authorities = tuple(authorities)
        self.clock = clock
        self.leeway = leeway

    async def verify(self, token: str) -> Principal:
        """The principal of a valid *token*; raises :class:`AuthFailure` (Twisted-side coroutine)."""
        import jwt

        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise AuthFailure("malformed_token", "the bearer token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthFailure("malformed_token", "the bearer token is not a JWT") from None
        iss, aud, kid, alg = unverified.get("iss"), unverified.get("aud"), header.get("kid"), header.get("alg")
        context = {"issuer": iss, "audience": aud, "kid": kid}
        if alg not in ALGORITHMS:
            raise AuthFailure("unsupported_alg", f"algorithm {str(alg)[:16]!r} is not accepted", **context)
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise AuthFailure("missing_kid", "the token header has no kid", **context)
        authority, key, unavailable = None, None, []
        for candidate in self.authorities:
            try:
                key = await candidate.jwks.get(kid)
            except JwksUnavailable:
                unavailable.append(candidate.name)
                continue
            if key is not None:
                authority = candidate
                break
        if authority is None or key is None:
            if unavailable:
                raise AuthFailure("jwks_unavailable", "the signing keys cannot be fetched; try again",
                                  **context)
            raise AuthFailure("unknown_kid", "the token is signed with an unknown key", **context)
        context["authority"] = authority.name
        if alg != key.alg:
            raise AuthFailure("unsupported_alg", f"key {kid} verifies {key.alg}, not {alg}", **context)
        claims = self._decode(jwt, token, key, authority, context)
        now = self.clock.seconds()
        exp = _number(claims, "exp")
        nbf = _number(claims, "nbf")
        if exp is None:
            raise AuthFailure("missing_claim", "the token has no exp", **context)
        if now > exp + self.leeway:
            raise AuthFailure("expired", "the token has expired", **context)
        if nbf is not None and nbf > now + self.leeway:
            raise AuthFailure("not_yet_valid", "the token is not valid yet", **context)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthFailure("missing_claim", "the token has no sub", **context)
        account = claims.get("account_id")
        beach = claims.get("private_beach_id")
        return Principal(subject=sub, account_id=account if isinstance(account, str) and account else sub,
                         scopes=granted_scopes(claims), authority=authority.name,
                         private_beach_id=beach if isinstance(beach, str) and beach else None,
                         kid=kid, expires_at=exp, claims=claims)

    @staticmethod
    def _decode(jwt, token: str, key, authority: Authority, context: dict[str, Any]) -> dict[str, Any]:
        options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                   "verify_aud": authority.audience is not None, "verify_iss": authority.issuer is not None,
                   "require": []}
        try:
            return jwt.decode(token, key.key, algorithms=[key.alg], options=options,
                              audience=authority.audience, issuer=authority.issuer)
        except jwt.InvalidSignatureError:
            raise AuthFailure("bad_signature", "the token signature does not verify", **context) from None
        except jwt.MissingRequiredClaimError as e:
            reason = {"aud": "wrong_audience", "iss": "wrong_issuer"}.get(e.claim, "missing_claim")
            raise AuthFailure(reason, f"the token has no {e.claim}", **context) from None
        except jwt.InvalidAudienceError:
            raise AuthFailure("wrong_audience", "the token is not for this audience", **context) from None
        except jwt.InvalidIssuerError:
            raise AuthFailure("wrong_issuer", "the token is from another issuer", **context) from None
        except jwt.InvalidAlgorithmError:
            raise AuthFailure("unsupported_alg", "the token algorithm is not accepted", **context) from None
        except jwt.PyJWTError:
            raise AuthFailure("malformed_token", "the token claims are malformed", **context) from None
