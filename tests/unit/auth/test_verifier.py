"""JWKS parsing and caching (refetch rate limit) and the token checks, on a fake clock."""

import json

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.task import Clock

from beachmanager.auth.jwks import JwksCache, JwksError, JwksUnavailable, parse_jwk, parse_jwks
from beachmanager.auth.principal import AuthFailure
from beachmanager.auth.verifier import LEEWAY, Authority, TokenVerifier
from tests.support.auth_issuer import (
    CLERK_AUDIENCE,
    CLERK_ISSUER,
    GATE_AUDIENCE,
    GATE_ISSUER,
    Issuer,
)

NOW = 1_800_000_000.0


class FakeFetch:
    def __init__(self, docs):
        self.docs = docs  # url -> Issuer | Exception
        self.calls = []

    def __call__(self, url):
        self.calls.append(url)
        doc = self.docs[url]
        if isinstance(doc, Exception):
            return fail(doc)
        return succeed(json.dumps(doc.jwks()).encode())


def verifier_for(clock, fetch, *authorities):
    return TokenVerifier([Authority(name, JwksCache(name, url, fetch, clock), iss, aud)
                          for name, url, iss, aud in authorities], clock)


def standard(clock, gate, clerk, docs=None):
    fetch = FakeFetch(docs or {"gate": gate, "clerk": clerk})
    v = verifier_for(clock, fetch, ("beach-gate", "gate", GATE_ISSUER, GATE_AUDIENCE),
                     ("clerk", "clerk", CLERK_ISSUER, CLERK_AUDIENCE))
    return v, fetch


def clock_at(t=NOW):
    c = Clock()
    c.advance(t)
    return c


# -- key parsing ------------------------------------------------------------------

def test_key_type_fixes_the_algorithm(gate, clerk):
    assert parse_jwk(gate.key.jwk).alg == "ES256"
    assert parse_jwk(clerk.key.jwk).alg == "RS256"
    unmarked = {k: v for k, v in clerk.key.jwk.items() if k != "alg"}
    assert parse_jwk(unmarked).alg == "RS256"


@pytest.mark.parametrize("mutate, why", [
    (lambda j: {**j, "alg": "HS256"}, "only RS256"),
    (lambda j: {**j, "use": "enc"}, "not for signatures"),
    (lambda j: {k: v for k, v in j.items() if k != "kid"}, "no kid"),
    (lambda j: {**j, "kty": "oct", "k": "c2VjcmV0"}, "unsupported kty"),
    (lambda j: {**j, "n": "!!!"}, "malformed"),
])
def test_unusable_keys_are_refused(clerk, mutate, why):
    with pytest.raises(JwksError, match=why):
        parse_jwk(mutate(clerk.key.jwk))


def test_ec_key_on_another_curve_and_small_rsa_are_refused(gate):
    assert "P-256" in str(pytest.raises(JwksError, parse_jwk, {**gate.key.jwk, "crv": "P-384"}).value)
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    small = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key()))
    with pytest.raises(JwksError, match="2048"):
        parse_jwk({**small, "kid": "small"})


def test_private_members_are_dropped_so_only_a_public_key_is_kept(gate):
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private_jwk = {**json.loads(ECAlgorithm.to_jwk(gate.key.private)), "kid": "p"}
    assert "d" in private_jwk
    assert isinstance(parse_jwk(private_jwk).key, ec.EllipticCurvePublicKey)


def test_a_key_set_keeps_the_good_keys_and_says_why_others_were_skipped(gate, clerk):
    doc = {"keys": [gate.key.jwk, {"kty": "oct", "kid": "h", "k": "eA"}, clerk.key.jwk]}
    keys, skipped = parse_jwks(json.dumps(doc).encode())
    assert set(keys) == {gate.key.kid, clerk.key.kid}
    assert len(skipped) == 1 and "oct" in skipped[0]
    for bad in (b"nope", b"[]", b'{"keys": 3}'):
        with pytest.raises(JwksError):
            parse_jwks(bad)


# -- cache --------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_cache_ttl_and_unknown_kid_refetch_is_rate_limited(gate):
    clock = clock_at()
    fetch = FakeFetch({"u": gate})
    cache = JwksCache("beach-gate", "u", fetch, clock, ttl=300, min_refetch=10)
    assert (await cache.get(gate.key.kid)).kid == gate.key.kid
    assert await cache.get(gate.key.kid) is not None
    assert len(fetch.calls) == 1
    for _ in range(50):  # a flood of unknown kids right after a fetch: no refetch
        assert await cache.get("nope") is None
    assert len(fetch.calls) == 1
    clock.advance(9.9)
    assert await cache.get("nope") is None
    assert len(fetch.calls) == 1
    clock.advance(0.1)  # 10 s since the last fetch: one refetch, then quiet again
    for _ in range(50):
        assert await cache.get("nope") is None
    assert len(fetch.calls) == 2
    clock.advance(299)  # fresh until 300 s after the last fetch: a known kid needs no fetch
    assert await cache.get(gate.key.kid) is not None
    assert len(fetch.calls) == 2
    clock.advance(2)  # stale: refetched
    assert await cache.get(gate.key.kid) is not None
    assert len(fetch.calls) == 3


@pytest_twisted.ensureDeferred
async def test_rotation_is_picked_up_by_the_unknown_kid_refetch(gate):
    issuer = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
    clock = clock_at()
    cache = JwksCache("beach-gate", "u", FakeFetch({"u": issuer}), clock)
    await cache.get(issuer.key.kid)
    new = issuer.rotate()
    clock.advance(10)
    assert (await cache.get(new.kid)).kid == new.kid


@pytest_twisted.ensureDeferred
async def test_failed_fetch_keeps_old_keys_and_never_loaded_is_unavailable(gate):
    clock = clock_at()
    docs = {"u": gate}
    fetch = FakeFetch(docs)
    cache = JwksCache("beach-gate", "u", fetch, clock)
    await cache.get(gate.key.kid)
    docs["u"] = JwksError("HTTP 500")
    clock.advance(400)
    assert (await cache.get(gate.key.kid)).kid == gate.key.kid  # stale but kept
    assert cache.last_error == "HTTP 500"
    dead = JwksCache("clerk", "d", FakeFetch({"d": JwksError("refused")}), clock)
    with pytest.raises(JwksUnavailable):
        await dead.get("x")


@pytest_twisted.ensureDeferred
async def test_concurrent_lookups_share_one_fetch(gate):
    clock = clock_at()
    pending = Deferred()
    calls = []

    def fetch(url):
        calls.append(url)
        return pending

    cache = JwksCache("beach-gate", "u", fetch, clock)
    results = [cache.get(gate.key.kid) for _ in range(5)]
    from twisted.internet.defer import gatherResults

    d = gatherResults([ensureDeferred(r) for r in results])
    pending.callback(json.dumps(gate.jwks()).encode())
    keys = await d
    assert len(calls) == 1 and all(k.kid == gate.key.kid for k in keys)


# -- token checks -------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_valid_gate_and_clerk_tokens(gate, clerk):
    clock = clock_at()
    v, _ = standard(clock, gate, clerk)
    p = await v.verify(gate.token(now=NOW, private_beach_id="pb-1"))
    assert (p.authority, p.subject, p.account_id, p.private_beach_id) == ("beach-gate", "user-1", "acct-1", "pb-1")
    assert "pb:control.write" in p.scopes
    p = await v.verify(clerk.token(now=NOW, account_id=None, sub="clerk-user", scope=None,
                                   scp=["pb:sessions.read"]))
    assert (p.authority, p.account_id, p.scopes) == ("clerk", "clerk-user", {"pb:sessions.read"})


def _matrix(gate, clerk):
    other = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
    return [
        ("expired", lambda: gate.token(now=NOW - 400)),
        ("expired", lambda: gate.token(now=NOW, exp=int(NOW - LEEWAY - 1))),
        ("not_yet_valid", lambda: gate.token(now=NOW, nbf=int(NOW + LEEWAY + 5))),
        ("wrong_audience", lambda: gate.token(now=NOW, aud="someone-else")),
        ("wrong_audience", lambda: gate.token(now=NOW, aud=None)),
        ("wrong_issuer", lambda: gate.token(now=NOW, iss="evil")),
        ("wrong_issuer", lambda: clerk.token(now=NOW, iss=GATE_ISSUER, aud=CLERK_AUDIENCE)),
        ("unknown_kid", lambda: other.token(now=NOW)),
        ("unsupported_alg", lambda: gate.alg_none(now=NOW)),
        ("unsupported_alg", lambda: gate.hs256_with_public_key(now=NOW)),
        ("unsupported_alg", lambda: gate.raw({"alg": "RS256", "kid": gate.key.kid}, gate.claims(now=NOW),
                                             b"x" * 256)),
        ("bad_signature", lambda: gate.tampered(now=NOW)),
        ("bad_signature", lambda: gate.raw({"alg": "ES256", "kid": gate.key.kid}, gate.claims(now=NOW),
                                           b"\x00" * 64)),
        ("missing_kid", lambda: gate.raw({"alg": "ES256"}, gate.claims(now=NOW), b"x")),
        ("missing_claim", lambda: gate.token(now=NOW, exp=None)),
        ("missing_claim", lambda: gate.token(now=NOW, sub=None)),
        ("malformed_token", lambda: "not-a-jwt"),
        ("malformed_token", lambda: "a.b.c"),
        ("malformed_token", lambda: gate.token(now=NOW, exp="tomorrow")),
        ("malformed_token", lambda: "x" * 9000 + ".a.b"),
    ]


@pytest_twisted.ensureDeferred
async def test_the_jwt_matrix(gate, clerk):
    clock = clock_at()
    v, _ = standard(clock, gate, clerk)
    for expected, make in _matrix(gate, clerk):
        with pytest.raises(AuthFailure) as info:
            await v.verify(make())
        assert info.value.reason == expected, (expected, info.value.reason, info.value.detail)
        assert info.value.status == 401


@pytest_twisted.ensureDeferred
async def test_leeway_and_clock_are_the_injected_ones(gate, clerk):
    clock = clock_at()
    v, _ = standard(clock, gate, clerk)
    token = gate.token(now=NOW, exp=int(NOW + 10))
    await v.verify(token)
    clock.advance(10 + LEEWAY)  # at exp + leeway: still accepted
    await v.verify(token)
    clock.advance(1)
    with pytest.raises(AuthFailure, match="expired"):
        await v.verify(token)


@pytest_twisted.ensureDeferred
async def test_unreachable_jwks_is_503_unless_another_authority_has_the_key(gate, clerk):
    clock = clock_at()
    v, _ = standard(clock, gate, clerk, docs={"gate": JwksError("down"), "clerk": clerk})
    assert (await v.verify(clerk.token(now=NOW))).authority == "clerk"
    with pytest.raises(AuthFailure) as info:
        await v.verify(gate.token(now=NOW))
    assert (info.value.reason, info.value.status) == ("jwks_unavailable", 503)


@pytest_twisted.ensureDeferred
async def test_failure_context_is_from_the_token_but_never_the_token(gate, clerk):
    clock = clock_at()
    v, _ = standard(clock, gate, clerk)
    token = gate.token(now=NOW, aud="x" * 500, iss=GATE_ISSUER)
    with pytest.raises(AuthFailure) as info:
        await v.verify(token)
    f = info.value
    assert f.issuer == GATE_ISSUER and f.kid == gate.key.kid and len(f.audience) == 128
    assert token not in repr(vars(f))


# -- fuzz: whatever arrives as a token or a key set, the answer is a refusal, never a crash ---

_FUZZ_GATE = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE, kid="fuzz-gate")


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=300))
def test_any_string_is_refused_cleanly(token):
    clock = clock_at()
    v, _ = standard(clock, _FUZZ_GATE, _FUZZ_GATE)

    failures = []
    ensureDeferred(v.verify(token)).addErrback(lambda f: failures.append(f.value))
    assert len(failures) == 1 and isinstance(failures[0], AuthFailure), failures


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_mutation_of_a_valid_token_is_refused(data):
    clock = clock_at()
    v, _ = standard(clock, _FUZZ_GATE, _FUZZ_GATE)
    token = _FUZZ_GATE.token(now=NOW)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("AbZ09-_.=x"))
    mutated = token[:i] + c + token[i + 1:]
    results = []
    ensureDeferred(v.verify(mutated)).addBoth(results.append)
    if mutated == token:
        assert results[0].subject == "user-1"
    else:
        # base64url has a few spare bits: a change there can decode to the same bytes
        assert isinstance(results[0].value, AuthFailure) or results[0].subject == "user-1"


@settings(max_examples=300, deadline=None)
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                            st.sampled_from(["keys", "kid", "kty", "crv", "x", "y", "n", "e", "alg", "use"]),
                            inner, max_size=6), max_leaves=20))
def test_any_json_key_set_parses_or_raises_jwks_error(doc):
    try:
        keys, skipped = parse_jwks(json.dumps(doc).encode())
    except JwksError:
        return
    assert keys == {} or all(k.alg in ("ES256", "RS256") for k in keys.values())
