"""JSON Web Key Sets: parsing (the algorithm is fixed by the key) and a rate-limited cache.

Only two kinds of key are accepted, each with exactly one algorithm: EC P-256 keys
verify ES256 and RSA keys (at least 2048 bits) verify RS256.  Symmetric (``oct``) keys,
other curves, keys marked for encryption and keys whose ``alg`` disagrees are skipped,
so no token can select HMAC or ``none``.

:class:`JwksCache` keeps a set for :data:`TTL` seconds.  A lookup of an unknown ``kid``
refetches, but no more than once every :data:`MIN_REFETCH` seconds (all fetches count,
failed ones too), so a flood of bad tokens cannot flood the authority; concurrent
lookups share one fetch.  When a refetch fails the previous keys stay in use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

TTL = 300.0
MIN_REFETCH = 10.0
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 64
MIN_RSA_BITS = 2048



class JwksError(Exception):
    """A key set or key cannot be used (bad document, bad key, fetch failed)."""


class JwksUnavailable(JwksError):
    """No key set has ever been loaded for an authority and fetching it failed."""


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str  # "ES256" or "RS256"
    key: Any  # a cryptography public key


def parse_jwk(jwk: Any) -> VerificationKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if not isinstance(jwk, dict):
        raise JwksError("key is not an object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise JwksError("key has no kid")
    if jwk.get("use") not in (None, "sig"):
        raise JwksError(f"key {kid} is not for signatures")
    kty, alg = jwk.get("kty"), jwk.get("alg")
    public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
    try:
        if kty == "EC":
            if public.get("crv") != "P-256" or alg not in (None, "ES256"):
                raise JwksError(f"EC key {kid} is not P-256/ES256")
            ec_key = ECAlgorithm.from_jwk(public)
            if not isinstance(ec_key, ec.EllipticCurvePublicKey):
                raise JwksError(f"EC key {kid} is not a public key")
            return VerificationKey(kid, "ES256", ec_key)
        if kty == "RSA":
            if alg not in (None, "RS256"):
                raise JwksError(f"RSA key {kid} is marked {alg}, only RS256 is accepted")
            rsa_key = RSAAlgorithm.from_jwk(public)
            if not isinstance(rsa_key, rsa.RSAPublicKey) or rsa_key.key_size < MIN_RSA_BITS:
                raise JwksError(f"RSA key {kid} is not a public key of at least {MIN_RSA_BITS} bits")
            return VerificationKey(kid, "RS256", rsa_key)
    except JwksError:
        raise
    except Exception as e:  # PyJWT raises InvalidKeyError, ValueError, KeyError... for bad members
        raise JwksError(f"key {kid} is malformed ({type(e).__name__})") from None
    raise JwksError(f"key {kid} has unsupported kty {kty!r}")


def parse_jwks(body: bytes) -> tuple[dict[str, VerificationKey], list[str]]:
    """The usable keys of a JWKS document, and why the others were skipped."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise JwksError("key set is not JSON") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise JwksError("key set has no 'keys' array")
    out: dict[str, VerificationKey] = {}
    skipped: list[str] = []
    for jwk in keys[:MAX_KEYS]:
        try:
            key = parse_jwk(jwk)
        except JwksError as e:
            skipped.append(str(e))
            continue
        out[key.kid] = key
    return out, skipped


def treq_fetcher(reactor, clock: IReactorTime, timeout: float = FETCH_TIMEOUT,
                 max_bytes: int = MAX_JWKS_BYTES) -> Callable[[str], Deferred[bytes]]:
    """``fetch(url) -> Deferred[bytes]`` over treq: 200 only, bounded size, timeout on *clock*."""
    import treq
    from twisted.web.client import Agent, HTTPConnectionPool

    client = treq.client.HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

    async def fetch(url: str) -> bytes:
        headers: dict[bytes | str, bytes | str] = {"accept": "application/json"}
        d = client.get(url, headers=headers)
        response = await d.addTimeout(timeout, clock)
        if response.code != 200:
            raise JwksError(f"{url} answered HTTP {response.code}")
        chunks: list[bytes] = []
        size = 0

        def collect(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > max_bytes:
                raise JwksError(f"{url} sent more than {max_bytes} bytes")
            chunks.append(data)

        await treq.collect(response, collect).addTimeout(timeout, clock)
        return b"".join(chunks)

    return lambda url: ensureDeferred(fetch(url))


class JwksCache:
    """Keys of one authority, fetched from *url* through *fetch*, timed by *clock*."""

    log = Logger()

    def __init__(self, name: str, url: str, fetch: Callable[[str], Deferred[bytes]], clock: IReactorTime,
                 ttl: float = TTL, min_refetch: float = MIN_REFETCH):
        self.name = name
        self.url = url
        self.fetch = fetch
        self.clock = clock
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.keys: dict[str, VerificationKey] = {}
        self.fetched_at: float | None = None   # last successful fetch
        self.attempted_at: float | None = None  # last fetch, successful or not
        self.fetch_count = 0
        self.last_error: str | None = None
        self._inflight: Deferred | None = None
        self._waiters: list[Deferred] = []

    def _may_fetch(self, now: float) -> bool:
        return self.attempted_at is None or now - self.attempted_at >= self.min_refetch

    def _fresh(self, now: float) -> bool:
        return self.fetched_at is not None and now - self.fetched_at < self.ttl

    async def get(self, kid: str) -> VerificationKey | None:
        """The key named *kid*, refetching when stale or unknown (rate-limited).

        Raises :class:`JwksUnavailable` when no key set could ever be loaded.
        """
        now = self.clock.seconds()
        if self._inflight is not None:
            await self._join()
        elif (not self._fresh(now) or kid not in self.keys) and self._may_fetch(now):
            await self.refresh()
        if self.fetched_at is None:
            raise JwksUnavailable(f"{self.name} key set unavailable: {self.last_error or 'never fetched'}")
        return self.keys.get(kid)

    def _join(self) -> Deferred:
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d

    async def refresh(self) -> None:
        """Fetch now (callers respect the rate limit); concurrent callers share one fetch."""
        if self._inflight is not None:
            await self._join()
            return
        self.attempted_at = self.clock.seconds()
        self.fetch_count += 1
        self._inflight = self.fetch(self.url)
        try:
            body = await self._inflight
            keys, skipped = parse_jwks(body)
            for why in skipped:
                self.log.warn("{authority} JWKS: skipped a key: {why}", authority=self.name, why=why)
            self.keys = keys
            self.fetched_at = self.clock.seconds()
            self.last_error = None
        except Exception as e:
            self.last_error = str(e) or type(e).__name__
            self.log.warn("{authority} JWKS fetch from {url} failed: {error}; keeping {count} cached keys",
                     authority=self.name, url=self.url, error=self.last_error, count=len(self.keys))
        finally:
            self._inflight = None
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                w.callback(None)

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "keys": sorted(self.keys), "fetches": self.fetch_count,
                **({"error": self.last_error} if self.last_error else {})}
