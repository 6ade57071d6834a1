"""Token buckets over real HTTP with real JWTs: 429 rate_limited with Retry-After per account,
per private beach and per address of failing tokens; counted; bounded."""

import pytest_twisted

from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings
from tests.support.auth_issuer import GATE_AUDIENCE, GATE_ISSUER, Issuer

LEASE = "/sessions/h-r/controller/lease"


async def manager(jwks, gate, **limits):
    m = await start_manager(owners={"pb-r": "acct-1"}, **auth_settings(jwks), **limits)
    r = await m.call("POST", "/sessions/register", token=gate.token(),
                     body={"session_id": "h-r", "private_beach_id": "pb-r"})
    assert r.status == 200, r.body
    return m


def limited(m, limit):
    return m.metrics.registry.get_sample_value("rate_limited_total", {"limit": limit})


@pytest_twisted.ensureDeferred
async def test_an_accounts_writes_are_limited_and_its_reads_are_not(jwks, gate):
    m = await manager(jwks, gate, rate_limit_account=0.01, rate_limit_account_burst=4)
    try:
        token = gate.token()  # acct-1: the registration took one token
        for _ in range(3):
            assert (await m.call("POST", LEASE, token=token, body={})).status == 200
        r = await m.call("POST", LEASE, token=token, body={})
        assert (r.status, r.error_code, r.body["limit"]) == (429, "rate_limited", "account")
        assert int(r.headers.getRawHeaders("retry-after")[0]) == r.body["retry_after_seconds"] >= 1
        assert limited(m, "account") == 1
        assert (await m.call("GET", "/sessions/h-r/controller-events", token=token)).status == 200
        other = gate.token(sub="u2", account_id="acct-2", private_beach_id="pb-r")
        assert (await m.call("POST", LEASE, token=other, body={})).status == 200  # its own bucket
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_a_beachs_writes_are_limited_across_its_accounts(jwks, gate):
    m = await manager(jwks, gate, rate_limit_beach=0.01, rate_limit_beach_burst=3)
    try:
        codes = []
        for n in range(4):
            token = gate.token(sub=f"u{n}", account_id=f"acct-b{n}", private_beach_id="pb-r")
            codes.append((await m.call("POST", LEASE, token=token, body={})).status)
        assert codes == [200, 200, 429, 429] and limited(m, "beach") == 2
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_bad_tokens_spend_the_addresss_budget_then_cost_nothing(jwks, gate):
    m = await manager(jwks, gate, rate_limit_failures=0.01, rate_limit_failures_burst=5)
    try:
        stranger = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)  # unknown kid: a refetch candidate
        fetches = jwks.fetches["gate"]
        for _ in range(5):
            r = await m.call("GET", "/private-beaches/pb-r/sessions", token=stranger.token())
            assert r.error_code == "unknown_kid"
        failures = m.failures("unknown_kid")
        for _ in range(50):
            r = await m.call("GET", "/private-beaches/pb-r/sessions", token=stranger.token())
            assert (r.status, r.error_code, r.body["limit"]) == (429, "rate_limited", "address")
        assert m.failures("unknown_kid") == failures  # not even checked
        assert jwks.fetches["gate"] - fetches <= 1 and limited(m, "address") == 50
        r = await m.call("GET", "/healthz")  # the probes stay open
        assert r.status == 200
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_the_buckets_are_bounded(jwks, gate):
    m = await manager(jwks, gate, rate_limit_keys=8)
    try:
        for n in range(40):
            token = gate.token(sub=f"u{n}", account_id=f"acct-k{n}", private_beach_id="pb-r")
            assert (await m.call("POST", LEASE, token=token, body={})).status == 200
        assert len(m.root.api.limits.account) == 8
    finally:
        await m.stop()
