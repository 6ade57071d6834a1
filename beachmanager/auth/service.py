"""The auth part of the manager: authorities from configuration, the dev bypass, failure accounting.

``ctx.parts["auth"]`` is an :class:`AuthService`.  The HTTP guard calls
:meth:`AuthService.authenticate` with the request's ``Authorization`` header and
:meth:`AuthService.authorize` with the route's scope; every refusal goes through
:meth:`AuthService.refuse`, which logs issuer, audience, kid and reason (never the
token) and counts ``auth_failure_total{reason}``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from .._aio import background
from ..service import FatalStartupError, ReadyService
from .jwks import JwksCache, treq_fetcher
from .principal import BYPASS_PRINCIPAL, REASONS, AuthFailure, Principal
from .verifier import Authority, TokenVerifier

BYPASS_BANNER = (
    "!!! AUTH_BYPASS=1: AUTHENTICATION IS OFF. Every request is accepted without a token and "
    "with every scope. Development only; refused when BEACH_ENV=production. !!!")


def authorities_from(config, fetch, clock) -> list[Authority]:
    """Beach Gate first, then Clerk; an authority exists when its JWKS URL is set."""
    out = []
    for name, prefix in (("beach-gate", "beach_gate"), ("clerk", "clerk")):
        url = config[f"{prefix}_jwks_url"]
        if url:
            out.append(Authority(name, JwksCache(name, url, fetch, clock),
                                 issuer=config[f"{prefix}_issuer"], audience=config[f"{prefix}_audience"]))
    return out


def bearer_token(header: bytes | str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if not header:
        return None
    if isinstance(header, bytes):
        try:
            header = header.decode("ascii")
        except UnicodeDecodeError:
            return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


class AuthService(ReadyService):
    log = Logger()

    def __init__(self, config, reactor, clock, metrics, fetch=None):
        super().__init__("auth", clock)
        self.config = config
        self.metrics = metrics
        self.bypass = bool(config.auth_bypass)
        self.authorities = authorities_from(config, fetch or treq_fetcher(reactor, clock), clock)
        self.verifier = TokenVerifier(self.authorities, clock)
        for reason in REASONS:
            metrics.auth_failure_total.labels(reason=reason)

    def start(self) -> Deferred | None:
        if self.bypass and self.config.beach_env == "production":
            raise FatalStartupError("AUTH_BYPASS=1 is refused when BEACH_ENV=production")
        if self.bypass:
            # Error level: loud in every log setup, without being taken for a crash.
            self.log.error("{banner}", banner=BYPASS_BANNER, auth_bypass=True)
            return None
        if not self.authorities:
            self.log.warn("no BEACH_GATE_JWKS_URL or CLERK_JWKS_URL: every route except /healthz, "
                          "/readyz and /metrics answers 401")
        for authority in self.authorities:
            self.log.info("accepting {authority} tokens (JWKS {url}, issuer {issuer}, audience {audience})",
                          authority=authority.name, url=authority.jwks.url,
                          issuer=authority.issuer or "any", audience=authority.audience or "any")
            # Warm the cache; a failure is only logged (the first request retries, rate-limited).
            background(ensureDeferred(authority.jwks.refresh()), "JWKS prefetch", self.log)
        return None

    # -- per request ---------------------------------------------------------
    async def authenticate(self, authorization: bytes | str | None, route: str = "") -> Principal:
        """The caller's principal (Twisted-side coroutine); raises :class:`AuthFailure`."""
        if self.bypass:
            return BYPASS_PRINCIPAL
        token = bearer_token(authorization)
        try:
            if token is None:
                raise AuthFailure("missing_token", "an Authorization: Bearer token is required")
            return await self.verifier.verify(token)
        except AuthFailure as failure:
            raise self.refuse(failure, route) from None

    def authorize(self, principal: Principal, scope: str, route: str = "") -> None:
        if not principal.allows(scope):
            raise self.refuse(AuthFailure("missing_scope", f"this route needs scope {scope}",
                                          kid=principal.kid, authority=principal.authority, scope=scope),
                              route)

    def check_beach(self, principal: Principal, private_beach_id: str, route: str = "") -> None:
        if not principal.may_use_beach(private_beach_id):
            raise self.refuse(AuthFailure("wrong_private_beach",
                                          "the token is bound to another private beach",
                                          kid=principal.kid, authority=principal.authority), route)

    def refuse(self, failure: AuthFailure, route: str = "") -> AuthFailure:
        self.metrics.auth_failure_total.labels(reason=failure.reason).inc()
        self.log.info("auth failure {reason} on {route}: issuer={issuer} audience={audience} kid={kid} "
                      "authority={authority}", reason=failure.reason, route=route, issuer=failure.issuer,
                      audience=failure.audience, kid=failure.kid, authority=failure.authority,
                      scope=failure.scope)
        return failure

    def status(self) -> dict[str, Any]:
        out = {**super().status(), "bypass": self.bypass}
        out["authorities"] = {a.name: a.jwks.status() for a in self.authorities}
        return out
