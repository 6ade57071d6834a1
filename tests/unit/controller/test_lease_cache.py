"""The request path's caches: the bounded TTL map, lease checks trusted briefly (and never
stale for what this instance did), and which private beaches hold a session."""

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from beachmanager.api.tenancy import SessionBeaches
from beachmanager.controller.leases import LeaseError, Leases
from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
from beachmanager.registry.memory import MemoryStore
from beachmanager.registry.store import Op, SessionRegistration, Tenant
from beachmanager.registry.ttl_cache import TtlCache

A = Tenant("pb-a", "acct-a")


def clock_at(seconds=1_700_000_000.0):
    clock = Clock()
    clock.advance(seconds)
    return clock


def test_ttl_cache_expires_on_the_clock_caps_at_until_and_is_bounded():
    clock = clock_at(100)
    cache = TtlCache(clock, ttl=1.0, bound=3)
    cache.put("a", 1)
    cache.put("b", 2, until=100.25)
    clock.advance(0.25)
    assert (cache.get("a"), cache.get("b")) == (1, None)  # b's own deadline came first
    clock.advance(0.75)
    assert cache.get("a") is None and len(cache) == 0
    for k in "wxyz":
        cache.put(k, k)
    assert len(cache) == 3 and cache.get("w") is None and cache.get("z") == "z"
    cache.put("x", "again", until=clock.seconds())  # already past: not kept, and the old value dropped
    assert cache.get("x") is None
    assert cache.discard_if(lambda k: k in ("y", "q")) == 1 and len(cache) == 1
    with pytest.raises(ValueError):
        TtlCache(clock, ttl=1.0, bound=0)


class CountingStore(MemoryStore):
    def __init__(self):
        super().__init__(JoinCodeCipher(JoinCodeKeys.generate()))
        self.lookups = 0
        self.hold: Deferred | None = None

    def find_lease(self, tenant, host_session_id, token):
        self.lookups += 1
        found = super().find_lease(tenant, host_session_id, token)
        if self.hold is None:
            return found
        held, self.hold = self.hold, None  # answers what it read now, when the test says so
        return held.addCallback(lambda _: found)


def setup(cache_ttl=1.0):
    clock = clock_at()
    store = CountingStore()
    here, there = Leases(store, clock, cache_ttl=cache_ttl), Leases(store, clock, cache_ttl=cache_ttl)
    now = int(clock.seconds() * 1000)
    ensureDeferred(store.register_session(A, SessionRegistration("h1"), Op.new(), now))
    return clock, store, here, there


def check(leases, token, **kw):
    d = leases.check(A, "h1", token, **kw)
    out = []
    d.addBoth(out.append)
    assert out, "the check did not answer"
    if isinstance(out[0], Exception) or hasattr(out[0], "value"):
        raise out[0].value
    return out[0]


def lease(leases, reason="ui", ttl_ms=60_000):
    out = []
    leases.acquire(A, "h1", reason=reason, ttl_ms=ttl_ms).addCallback(out.append)
    return out[0]


def test_a_live_lease_is_looked_up_once_per_ttl():
    clock, store, here, _ = setup()
    token = lease(here).token
    for _ in range(50):
        check(here, token)
        clock.advance(0.01)
    assert store.lookups == 1  # 0.5 s of requests: one look-up
    clock.advance(0.51)
    check(here, token)
    assert store.lookups == 2
    check(here, token, fresh=True)
    assert store.lookups == 3


def test_a_release_here_is_seen_at_once():
    clock, store, here, _ = setup()
    token = lease(here).token
    check(here, token)
    here.release(A, "h1", token)
    with pytest.raises(LeaseError) as info:
        check(here, token)
    assert info.value.code == "lease_revoked"


def test_a_release_elsewhere_is_seen_within_the_ttl_and_at_once_when_fresh():
    clock, store, here, there = setup()
    token = lease(here).token
    check(here, token)
    there.release(A, "h1", token)  # another manager instance, same database
    clock.advance(0.999)
    assert check(here, token).token == token  # the documented bound: at most cache_ttl late
    with pytest.raises(LeaseError):
        check(here, token, fresh=True)  # what the lease watch asks
    with pytest.raises(LeaseError):
        check(here, token)  # the refused fresh answer dropped the cached one

    token = lease(here, reason="other").token
    check(here, token)
    there.release(A, "h1", token)
    clock.advance(1.0)
    with pytest.raises(LeaseError) as info:
        check(here, token)
    assert info.value.code == "lease_revoked"


def test_a_cached_answer_never_outlives_the_lease():
    clock, store, here, _ = setup(cache_ttl=30.0)
    token = lease(here, ttl_ms=2_000).token
    check(here, token)
    clock.advance(1.999)
    check(here, token)
    assert store.lookups == 1
    clock.advance(0.001)
    with pytest.raises(LeaseError) as info:
        check(here, token)
    assert info.value.code == "lease_expired"


def test_renewal_and_re_registration_here_drop_cached_answers():
    clock, store, here, _ = setup(cache_ttl=30.0)
    first = lease(here, ttl_ms=5_000)
    check(here, first.token)
    renewed = lease(here, ttl_ms=20_000)
    assert renewed.token == first.token
    clock.advance(10)
    assert check(here, first.token).expires_at_ms == renewed.expires_at_ms  # not the old expiry
    # a re-registration by another account revokes this lease; the route tells the cache
    now = int(clock.seconds() * 1000)
    ensureDeferred(store.register_session(Tenant("pb-a", "acct-b"), SessionRegistration("h1"), Op.new(), now))
    here.forget_session(A, "h1")
    with pytest.raises(LeaseError) as info:
        check(here, first.token)
    assert info.value.code == "lease_revoked"


def test_a_look_up_in_flight_during_a_release_is_not_cached():
    clock, store, here, _ = setup()
    token = lease(here).token
    store.hold = Deferred()
    held = store.hold
    pending = here.check(A, "h1", token)  # reads "live" now, answers later
    here.release(A, "h1", token)
    held.callback(None)
    assert pending.result.token == token  # it was live when read
    with pytest.raises(LeaseError):
        check(here, token)  # but that answer was not kept


def test_a_disabled_cache_always_asks():
    clock, store, here, _ = setup(cache_ttl=0)
    token = lease(here).token
    for _ in range(3):
        check(here, token)
    assert store.lookups == 3


class BeachStore:
    def __init__(self):
        self.beaches = {"h1": ["pb-a"]}
        self.lookups = 0
        self.hold: Deferred | None = None

    def session_beaches(self, session_id):
        self.lookups += 1
        found = list(self.beaches.get(session_id, []))
        if self.hold is not None:
            held, self.hold = self.hold, None
            return held.addCallback(lambda _: found)
        return succeed(found)


def lookup(cache, session_id):
    return ensureDeferred(cache.lookup(session_id)).result


def test_session_beaches_are_kept_briefly_unknown_ones_never():
    clock = clock_at()
    store = BeachStore()
    cache = SessionBeaches(store, clock, ttl=2.0, bound=2)
    for _ in range(10):
        assert lookup(cache, "h1") == ["pb-a"]
    assert store.lookups == 1
    assert lookup(cache, "nobody") == [] and lookup(cache, "nobody") == []
    assert store.lookups == 3  # unknown sessions are asked every time
    store.beaches["h1"].append("pb-b")  # joined another private beach through another instance
    clock.advance(1.999)
    assert lookup(cache, "h1") == ["pb-a"]  # the documented bound
    clock.advance(0.001)
    assert lookup(cache, "h1") == ["pb-a", "pb-b"]
    store.beaches["h1"].append("pb-c")  # ... through this instance: the route forgets it at once
    cache.forget("h1")
    assert lookup(cache, "h1") == ["pb-a", "pb-b", "pb-c"]
    store.beaches.update(h2=["pb-a"], h3=["pb-a"])
    lookup(cache, "h2"), lookup(cache, "h3")
    assert len(cache.kept) == 2  # bounded


def test_a_session_lookup_in_flight_during_a_registration_is_not_kept():
    clock = clock_at()
    store = BeachStore()
    cache = SessionBeaches(store, clock)
    store.hold = held = Deferred()
    pending = ensureDeferred(cache.lookup("h1"))
    store.beaches["h1"].append("pb-b")
    cache.forget("h1")
    held.callback(None)
    assert pending.result == ["pb-a"]
    assert lookup(cache, "h1") == ["pb-a", "pb-b"]
