"""Token buckets on a fake clock: burst, refill, Retry-After, the bound, both write limits."""

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.task import Clock

from beachmanager import config
from beachmanager.auth.principal import BYPASS_PRINCIPAL, Principal
from beachmanager.ratelimit import RateLimited, RateLimits, TokenBuckets
from beachmanager.telemetry.metrics import Metrics


def test_a_bucket_gives_its_burst_then_its_rate():
    clock = Clock()
    b = TokenBuckets(clock, rate=2.0, burst=3)
    assert [b.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert b.wait("k") == pytest.approx(0.5) and b.take("other") == 0.0
    clock.advance(0.5)
    assert b.take("k") == 0.0 and b.take("k") > 0
    clock.advance(100)
    assert [b.take("k") for _ in range(3)] == [0.0] * 3  # refilled to the burst, no more
    assert b.take("k") > 0


def test_the_bound_keeps_the_keys_in_use():
    clock = Clock()
    b = TokenBuckets(clock, rate=1.0, burst=1, bound=50)
    assert b.take("busy") == 0.0 and b.take("busy") > 0
    for i in range(1000):  # a flood of fresh keys
        b.take(f"k{i}")
        b.take("busy")  # the flooding key itself stays remembered, and empty
    assert len(b) == 50 and b.take("busy") > 0


def test_rate_zero_is_off():
    b = TokenBuckets(Clock(), rate=0, burst=1)
    assert all(b.take("k") == 0.0 for _ in range(1000)) and len(b) == 0


def test_writes_take_from_the_account_then_the_beach_and_count_refusals():
    clock, metrics = Clock(), Metrics(CollectorRegistry())
    cfg = config.defaults(rate_limit_account=1.0, rate_limit_account_burst=2, rate_limit_beach=1.0,
                          rate_limit_beach_burst=3)
    limits = RateLimits(clock, cfg, metrics)
    a, b, c = (Principal(s, s, frozenset(), "beach-gate") for s in ("acct-a", "acct-b", "acct-c"))
    limits.write(a, "pb")
    limits.write(a, "pb")
    with pytest.raises(RateLimited) as e:
        limits.write(a, "pb")
    assert (e.value.limit, e.value.retry_after) == ("account", 1)
    limits.write(b, "pb")  # the beach's third token
    with pytest.raises(RateLimited) as e:
        limits.write(b, "pb")
    assert e.value.limit == "beach"
    limits.write(c, None)  # no beach named: the account's bucket only
    for _ in range(100):
        limits.write(BYPASS_PRINCIPAL, "pb")  # development only: never limited
    sample = metrics.registry.get_sample_value
    assert sample("rate_limited_total", {"limit": "account"}) == 1
    assert sample("rate_limited_total", {"limit": "beach"}) == 1
    assert sample("rate_limited_total", {"limit": "address"}) == 0


def test_an_address_is_refused_once_its_failures_are_spent():
    clock = Clock()
    limits = RateLimits(clock, config.defaults(rate_limit_failures=1.0, rate_limit_failures_burst=2))
    for _ in range(2):
        limits.before_auth("10.0.0.1")
        limits.auth_failed("10.0.0.1")
    with pytest.raises(RateLimited) as e:
        limits.before_auth("10.0.0.1")
    assert e.value.limit == "address"
    limits.before_auth("10.0.0.2")
    clock.advance(1)
    limits.before_auth("10.0.0.1")
