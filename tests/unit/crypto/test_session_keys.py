"""The session-key cache: one Argon2id per key, coalesced waiters, LRU and in-flight bounds."""

from __future__ import annotations

import threading

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.logger import capturedLogs

from beachmanager.protocol.crypto import CryptoError
from beachmanager.transport.session_keys import SessionKeyBusy, SessionKeyCache
from tests.unit.crypto.support import HOST_SESSION_ID, argon2id


class ManualRunner:
    """Stands in for the thread pool: records each job and lets the test finish it."""

    def __init__(self) -> None:
        self.jobs: list[tuple[tuple[str, str], Deferred[bytes]]] = []

    def __call__(self, fn, *args) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.jobs.append((args, d))
        return d

    def finish(self, index: int = 0, value: bytes | None = None) -> None:
        args, d = self.jobs.pop(index)
        d.callback(value if value is not None else ("|".join(args)).encode().ljust(32, b"."))

    def break_(self, index: int = 0) -> None:
        _, d = self.jobs.pop(index)
        d.errback(CryptoError("bad-input", "boom"))


def results(ds):
    out = []
    for d in ds:
        d.addBoth(out.append)
    return out


def test_concurrent_requests_share_one_derivation():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run)
    got = results([cache.get("SMOKEP", "h1") for _ in range(5)])
    assert len(run.jobs) == 1 and cache.in_flight == 1 and got == []
    run.finish()
    assert len(got) == 5 and len(set(got)) == 1 and got[0].startswith(b"SMOKEP|h1")
    assert cache.derivations == 1 and cache.in_flight == 0
    again = results([cache.get("SMOKEP", "h1")])
    assert again == got[:1] and cache.hits == 1 and run.jobs == []


def test_different_keys_derive_separately():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run)
    got = results([cache.get("SMOKEP", "h1"), cache.get("SMOKEP", "h2"), cache.get("OTHER", "h1")])
    assert len(run.jobs) == 2  # max_parallel=2: the third waits for a slot
    run.finish()
    assert len(run.jobs) == 2
    run.finish()
    run.finish()
    assert len(set(got)) == 3 and cache.derivations == 3


def test_parallelism_is_bounded():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run, max_parallel=1)
    results([cache.get("C", f"h{i}") for i in range(4)])
    assert len(run.jobs) == 1 and cache.in_flight == 4
    for _ in range(4):
        assert len(run.jobs) == 1
        run.finish()
    assert cache.in_flight == 0 and len(cache) == 4


def test_lru_is_bounded_and_evicts_the_least_recently_used():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run, max_entries=2)
    for hid in ("h1", "h2"):
        cache.get("C", hid)
        run.finish()
    cache.get("C", "h1")  # touch h1: h2 is now the oldest
    cache.get("C", "h3")
    run.finish()
    assert len(cache) == 2
    assert cache.cached("C", "h1") is not None and cache.cached("C", "h3") is not None
    assert cache.cached("C", "h2") is None
    cache.get("C", "h2")
    assert len(run.jobs) == 1  # evicted keys are derived again


def test_too_many_pending_keys_fail_fast():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run, max_pending=2, max_waiters=2)
    results([cache.get("C", "h1"), cache.get("C", "h2")])
    [busy] = results([cache.get("C", "h3")])
    assert busy.check(SessionKeyBusy)
    cache.get("C", "h1")
    [busy] = results([cache.get("C", "h1")])  # a third waiter on one key
    assert busy.check(SessionKeyBusy)
    run.finish()
    assert cache.in_flight == 1
    assert results([cache.get("C", "h3")]) == []  # room again


def test_failure_reaches_every_waiter_and_is_not_cached():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run)
    got = results([cache.get("C", "h1"), cache.get("C", "h1")])
    run.break_()
    assert len(got) == 2 and all(f.check(CryptoError) for f in got)
    assert len(cache) == 0 and cache.in_flight == 0
    cache.get("C", "h1")
    assert len(run.jobs) == 1  # retried on the next request


def test_a_cancelled_waiter_leaves_the_others_alone():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run)
    first, second = cache.get("C", "h1"), cache.get("C", "h1")
    got = results([first, second])
    first.cancel()
    assert got[0].check(CancelledError)
    run.finish()
    assert isinstance(got[1], bytes)
    assert cache.cached("C", "h1") == got[1]  # the work was not wasted


def test_failure_with_no_waiters_left_is_logged_not_lost():
    run = ManualRunner()
    cache = SessionKeyCache(run_blocking=run)
    cache.get("C", "h1").cancel()
    with capturedLogs() as events:
        run.break_()
    assert cache.in_flight == 0
    [event] = [e for e in events if e.get("log_failure") is not None]
    assert event["log_failure"].check(CryptoError)
    assert event["host_session_id"] == "h1" and "C" not in event.values()


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        SessionKeyCache(max_entries=0)


@pytest_twisted.ensureDeferred
async def test_real_argon2id_runs_off_the_reactor_thread():
    reactor_thread = threading.get_ident()
    threads: list[int] = []

    def derive(code: str, hsid: str) -> bytes:
        threads.append(threading.get_ident())
        return argon2id(code, hsid)

    cache = SessionKeyCache(derive=derive)
    ds = [cache.get("SMOKEP", HOST_SESSION_ID) for _ in range(3)]
    ds.append(cache.get("SMOKEP", "another-host-session"))
    outcome = await DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    keys = [value for _, value in outcome]
    assert keys[0] == keys[1] == keys[2] == argon2id("SMOKEP", HOST_SESSION_ID)
    assert keys[3] == argon2id("SMOKEP", "another-host-session")
    assert len(threads) == 2 and reactor_thread not in threads


@pytest_twisted.ensureDeferred
async def test_default_derivation_is_the_package_function():
    cache = SessionKeyCache()
    key = await cache.get("correct horse battery staple", "session-id-1234")
    assert key.hex() == "c54c5fe10c8d7a3fcb3cf90b64e6243fe543049217171c1cf00c64431ba76d75"


def test_no_join_code_is_kept_in_the_cache():
    from twisted.internet.defer import succeed

    from beachmanager.transport.session_keys import SessionKeyCache

    cache = SessionKeyCache(derive=lambda code, host: b"k" * 32,
                            run_blocking=lambda fn, *args: succeed(fn(*args)))
    got = []
    cache.get("SECRET-JOIN-CODE", "host-1").addCallback(got.append)
    assert got == [b"k" * 32] and cache.cached("SECRET-JOIN-CODE", "host-1") == b"k" * 32
    assert cache.cached("OTHER", "host-1") is None
    kept = repr(list(cache._keys)) + repr(list(cache._waiters))
    assert "SECRET-JOIN-CODE" not in kept and "host-1" in kept
