"""Who is calling (:class:`Principal`) and why a call was refused (:class:`AuthFailure`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .scopes import has_scope

#: Every value of ``auth_failure_total{reason}`` (all are created at start-up, so each is
#: exported from the first scrape).  401: the caller is not authenticated; 403: it is, but
#: may not do this; 503: the key sets could not be fetched.
REASONS = {
    "missing_token": 401,        # no Authorization: Bearer header
    "malformed_token": 401,      # not a JWT, or claims of the wrong type
    "missing_kid": 401,          # header has no kid
    "unsupported_alg": 401,      # alg none, HMAC, or not the algorithm of the key
    "unknown_kid": 401,          # no configured authority has this key
    "bad_signature": 401,        # signature does not verify (tampered or wrong key)
    "expired": 401,
    "not_yet_valid": 401,        # nbf in the future
    "wrong_audience": 401,
    "wrong_issuer": 401,
    "missing_claim": 401,        # exp or sub missing
    "jwks_unavailable": 503,     # the key set could not be fetched and no key matched
    "missing_scope": 403,
    "wrong_private_beach": 403,  # token is bound to another private beach
    "not_a_member": 403,         # the account has no role in the private beach it names
    "insufficient_role": 403,    # it has one, too low for the action (viewer < contributor...)
}

#: Longest token accepted (Gate tokens are well under 2 KiB).
MAX_TOKEN_LENGTH = 8192


def _clean(value: Any, limit: int = 128) -> str | None:
    """A token-supplied value made safe for a log line (never the token itself)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value[:8])
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text[:limit]


class AuthFailure(Exception):
    """A refused request: ``reason`` is a :data:`REASONS` key; ``detail`` is safe to return."""

    def __init__(self, reason: str, detail: str, *, issuer: Any = None, audience: Any = None,
                 kid: Any = None, authority: str | None = None, scope: str | None = None):
        super().__init__(detail)
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = detail
        self.status = REASONS[reason]
        self.issuer = _clean(issuer)
        self.audience = _clean(audience)
        self.kid = _clean(kid)
        self.authority = authority
        self.scope = scope


@dataclass(frozen=True)
class Principal:
    subject: str
    account_id: str | None
    scopes: frozenset[str]
    authority: str  # "beach-gate", "clerk" or "bypass"
    private_beach_id: str | None = None  # set when the token is bound to one private beach
    kid: str | None = None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def allows(self, scope: str) -> bool:
        return has_scope(self.scopes, scope)

    def may_use_beach(self, private_beach_id: str) -> bool:
        return self.private_beach_id is None or self.private_beach_id == private_beach_id


BYPASS_PRINCIPAL = Principal(subject="auth-bypass", account_id="auth-bypass", scopes=frozenset({"*"}),
                             authority="bypass")
