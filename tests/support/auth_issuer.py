"""A stand-in Beach Gate / Clerk for tests: signing keys, token minting and a JWKS over real HTTP.

Tokens are minted with PyJWT (and by hand for the hostile cases PyJWT refuses to
make), independently of the code under test.  :class:`JwksServer` serves each key set
from a real listener on ``127.0.0.1:0`` and counts fetches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

GATE_ISSUER = "beach-gate"
GATE_AUDIENCE = "private-beach-manager"
CLERK_ISSUER = "https://clerk.example"
CLERK_AUDIENCE = "beach-clerk"
ALL_SCOPES = ("pb:sessions.register pb:sessions.read pb:sessions.write pb:control.write "
              "pb:control.read pb:manager.read pb:manager.debug pb:beaches.read pb:beaches.write")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    def __init__(self, kind: str, kid: str):
        self.kind, self.kid = kind, kid
        if kind == "ec":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            jwk = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            jwk = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        self.jwk = {**jwk, "kid": kid, "alg": self.alg, "use": "sig"}
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class Issuer:
    """Keys of one authority and tokens signed with them."""

    def __init__(self, kind: str, issuer: str, audience: str, kid: str | None = None):
        self.issuer, self.audience = issuer, audience
        self.key = SigningKey(kind, kid or f"{kind}-{uuid.uuid4().hex[:8]}")
        self.keys = [self.key]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.keys]}

    def rotate(self) -> SigningKey:
        """A new signing key, published next to the old one."""
        self.key = SigningKey(self.key.kind, f"{self.key.kind}-{uuid.uuid4().hex[:8]}")
        self.keys.append(self.key)
        return self.key

    def claims(self, now: float | None = None, **overrides: Any) -> dict[str, Any]:
        now = time.time() if now is None else now
        claims = {"iss": self.issuer, "aud": self.audience, "sub": "user-1", "account_id": "acct-1",
                  "iat": int(now), "exp": int(now) + 300, "scope": ALL_SCOPES}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: SigningKey | None = None, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        key = key or self.key
        return jwt.encode(self.claims(**claims), key.private, algorithm=key.alg,
                          headers={"kid": key.kid, **(headers or {})})

    # -- hostile tokens PyJWT will not make ------------------------------------
    def raw(self, header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
        h = b64url(json.dumps(header).encode())
        p = b64url(json.dumps(claims).encode())
        return f"{h}.{p}.{b64url(signature)}"

    def alg_none(self, **claims: Any) -> str:
        return self.raw({"alg": "none", "typ": "JWT", "kid": self.key.kid}, self.claims(**claims))

    def hs256_with_public_key(self, **claims: Any) -> str:
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(self.claims(**claims)).encode()))
        sig = hmac.new(self.key.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(sig)}"

    def tampered(self, **claims: Any) -> str:
        """A valid token whose payload was then rewritten (scope widened)."""
        token = self.token(scope="pb:sessions.read")
        header, _, sig = token.split(".")
        forged = b64url(json.dumps(self.claims(scope="*", **claims)).encode())
        return f"{header}.{forged}.{sig}"


class JwksServer:
    """Serves ``/<name>/jwks.json`` for each issuer on a real listener; counts fetches."""

    def __init__(self, reactor, issuers: dict[str, Issuer]):
        self.reactor = reactor
        self.issuers = issuers
        self.fetches: dict[str, int] = {name: 0 for name in issuers}
        self.status = 200
        self.port = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}/{name}/jwks.json"

    def start(self) -> None:
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        server = self

        class Jwks(Resource):
            isLeaf = True

            def render_GET(self, request):
                parts = request.path.decode().strip("/").split("/")
                name = parts[0] if parts else ""
                if name not in server.issuers:
                    request.setResponseCode(404)
                    return b"{}"
                server.fetches[name] += 1
                request.setResponseCode(server.status)
                request.setHeader(b"content-type", b"application/json")
                return json.dumps(server.issuers[name].jwks()).encode()

        site = Site(Jwks())
        site.noisy = False
        self.port = self.reactor.listenTCP(0, site, interface="127.0.0.1")

    def stop(self):
        return self.port.stopListening()
