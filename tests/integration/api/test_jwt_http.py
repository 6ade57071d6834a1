"""The JWT matrix end to end: a token minted outside the manager, its JWKS fetched over HTTP;
each case answered 401/403/503 and counted in auth_failure_total{reason}."""

import time

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from beachmanager.auth.verifier import LEEWAY
from tests.support.api_client import start_manager as start_bare
from tests.support.auth_fixtures import auth_settings
from tests.support.auth_issuer import GATE_AUDIENCE, GATE_ISSUER, Issuer

ROUTE = ("GET", "/private-beaches/pb-1/sessions")  # needs pb:sessions.read


async def start_manager(**settings):
    """A manager where acct-1 (the test issuer's default account) owns private beach pb-1."""
    return await start_bare(owners={"pb-1": "acct-1"}, **settings)


def cases(gate, clerk):
    now = time.time()
    stranger = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
    return [
        (None, 401, "missing_token"),
        ("Basic dXNlcjpwYXNz", 401, "missing_token"),
        (gate.token(now=now - 400), 401, "expired"),
        (gate.token(exp=int(now - LEEWAY - 5)), 401, "expired"),
        (gate.token(nbf=int(now + 600)), 401, "not_yet_valid"),
        (gate.token(aud="another-service"), 401, "wrong_audience"),
        (clerk.token(aud=GATE_AUDIENCE), 401, "wrong_audience"),
        (gate.token(iss="https://evil.example"), 401, "wrong_issuer"),
        (stranger.token(), 401, "unknown_kid"),
        (gate.alg_none(), 401, "unsupported_alg"),
        (gate.hs256_with_public_key(), 401, "unsupported_alg"),
        (clerk.hs256_with_public_key(), 401, "unsupported_alg"),
        (gate.tampered(), 401, "bad_signature"),
        (gate.token(exp=None), 401, "missing_claim"),
        ("garbage", 401, "malformed_token"),
        (gate.token(scope="pb:sessions.write pb:control.*"), 403, "missing_scope"),
        (clerk.token(scope=None, scp=["pb:sessions.readX", "pb:sessions"]), 403, "missing_scope"),
        (gate.token(scope="pb:sessions.*"), 200, None),
        (clerk.token(scope=None, scp=["pb:sessions.read"]), 200, None),
        (gate.token(scope="*"), 200, None),
    ]


@pytest_twisted.ensureDeferred
async def test_jwt_matrix_over_http(jwks, gate, clerk):
    m = await start_manager(**auth_settings(jwks))
    try:
        for token, status, reason in cases(gate, clerk):
            headers = {}
            if token is not None and token.startswith("Basic "):
                headers, token = {"Authorization": token}, None
            before = m.failures(reason) if reason else None
            r = await m.call(*ROUTE, token=token, headers=headers)
            assert r.status == status, (reason, r.body)
            if reason:
                assert r.error_code == reason, (reason, r.body)
                assert m.failures(reason) == before + 1, reason
                assert token is None or token not in str(r.body)
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_unknown_kid_flood_is_rate_limited_and_rotation_is_picked_up(jwks, gate):
    m = await start_manager(**auth_settings(jwks))
    try:
        assert (await m.call(*ROUTE, token=gate.token())).status == 200
        fetched = jwks.fetches["gate"]
        stranger = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
        for _ in range(40):
            r = await m.call(*ROUTE, token=stranger.token())
            assert r.error_code == "unknown_kid"
        assert jwks.fetches["gate"] - fetched <= 1  # 40 bad tokens, at most one refetch in 10 s
        assert m.failures("unknown_kid") >= 40

        # Gate rotates its key: after the refetch interval the new kid is found on first use
        cache = m.parts.auth.authorities[0].jwks
        cache.min_refetch = 0.5  # (10 s in production; shortened to keep the test quick)
        new_token = gate.token(key=gate.rotate())
        await deferLater(reactor, 0.6)  # the refetch interval passes (a duration, not an event)
        r = await m.call(*ROUTE, token=new_token)
        assert r.status == 200, r.body
    finally:
        gate.keys[:] = gate.keys[:1]
        gate.key = gate.keys[0]
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_unreachable_jwks_is_503_and_counted(jwks, gate):
    jwks.status = 500
    m = await start_manager(**auth_settings(jwks))
    try:
        r = await m.call(*ROUTE, token=gate.token())
        assert (r.status, r.error_code) == (503, "jwks_unavailable")
        assert r.headers.getRawHeaders("retry-after") == ["5"]
        assert m.failures("jwks_unavailable") == 1
    finally:
        jwks.status = 200
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_no_authority_configured_refuses_everything_but_probes():
    m = await start_manager()
    try:
        assert (await m.call("GET", "/healthz")).status == 200
        r = await m.call(*ROUTE, token="a.b.c")
        assert r.status == 401
    finally:
        await m.stop()
