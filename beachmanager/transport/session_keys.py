"""Argon2id session keys off the reactor thread: cached, coalesced, bounded.

``SessionKeyCache.get(join_code, host_session_id)`` returns a Deferred of the 32-byte session
key.  Each (join code, host session id) is derived once, in the reactor's thread pool
(``_aio.call_blocking``); callers asking while it runs wait on the same computation.  Results
live in an LRU of ``max_entries``.  At most ``max_parallel`` derivations run at a time (each
takes ~50 ms of CPU and 32 MiB); at most ``max_pending`` distinct keys may be running or
waiting to run, and at most ``max_waiters`` callers may wait on one key: beyond those bounds
``get`` fails at once with :class:`SessionKeyBusy`.

The same cache serves the host's legacy ICE key: ``get(join_code, handshake_id)``.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from beachmanager import _aio
from beachmanager.protocol.crypto import derive_session_key
from beachmanager.telemetry.logs import fields

DEFAULT_MAX_ENTRIES = 256
DEFAULT_MAX_PARALLEL = 2
DEFAULT_MAX_PENDING = 64
DEFAULT_MAX_WAITERS = 1024

#: (keyed digest of the join code and id, the id): never the join code itself
CacheKey = tuple[bytes, str]


class SessionKeyBusy(RuntimeError):
    """Too many derivations (or waiters) in flight; try again later."""


class SessionKeyCache:
    log = Logger()

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_waiters: int = DEFAULT_MAX_WAITERS,
        derive: Callable[[str, str], bytes] = derive_session_key,
        run_blocking: Callable[..., Deferred[bytes]] = _aio.call_blocking,
    ) -> None:
        if min(max_entries, max_parallel, max_pending, max_waiters) < 1:
            raise ValueError("session key cache bounds must be positive")
        self.max_entries = max_entries
        self.max_pending = max_pending
        self.max_waiters = max_waiters
        self._derive = derive
        self._run_blocking = run_blocking
        self._semaphore = DeferredSemaphore(max_parallel)
        #: entries are named by a keyed digest of (join code, id): no join code is kept here
        self._secret = secrets.token_bytes(32)
        self._keys: OrderedDict[CacheKey, bytes] = OrderedDict()
        self._waiters: dict[CacheKey, list[Deferred[bytes]]] = {}
        self.derivations = 0  # computations started (for tests and status)
        self.hits = 0

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def in_flight(self) -> int:
        return len(self._waiters)

    def cached(self, join_code: str, host_session_id: str) -> bytes | None:
        """The key if already derived (no computation, no LRU update)."""
        return self._keys.get(self._name(join_code, host_session_id))

    def get(self, join_code: str, host_session_id: str) -> Deferred[bytes]:
        """A Deferred of the session key; derived at most once while cached."""
        key = self._name(join_code, host_session_id)
        found = self._keys.get(key)
        if found is not None:
            self._keys.move_to_end(key)
            self.hits += 1
            return succeed(found)
        waiters = self._waiters.get(key)
        start = waiters is None
        if waiters is None:
            if len(self._waiters) >= self.max_pending:
                return fail(SessionKeyBusy(f"{len(self._waiters)} session keys already pending"))
            waiters = self._waiters[key] = []
        elif len(waiters) >= self.max_waiters:
            return fail(SessionKeyBusy("too many callers waiting for one session key"))
        waiter: Deferred[bytes] = Deferred(lambda d: self._forget(key, d))
        waiters.append(waiter)
        if start:  # after the waiter is in place: a derivation may finish at once
            self._start(key, join_code, host_session_id)
        return waiter

    def clear(self) -> None:
        """Drop cached keys (running derivations still complete and notify their waiters)."""
        self._keys.clear()

    def _forget(self, key: CacheKey, waiter: Deferred[bytes]) -> None:
        waiters = self._waiters.get(key)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)

    def _name(self, join_code: str, host_session_id: str) -> CacheKey:
        digest = hmac.digest(self._secret, f"{host_session_id}\0{join_code}".encode(), "sha256")
        return (digest, host_session_id)

    def _start(self, key: CacheKey, join_code: str, host_session_id: str) -> None:
        def compute() -> Deferred[bytes]:
            self.derivations += 1
            return self._run_blocking(self._derive, join_code, host_session_id)

        d = self._semaphore.run(compute)
        d.addCallbacks(self._derived, self._failed, callbackArgs=(key,), errbackArgs=(key,))
        _aio.background(d, "session key delivery", self.log)

    def _derived(self, value: bytes, key: CacheKey) -> None:
        self._keys[key] = value
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)
        for waiter in self._waiters.pop(key, []):
            waiter.callback(value)

    def _failed(self, failure: Failure, key: CacheKey) -> None:
        waiters = self._waiters.pop(key, [])
        if not waiters:  # nobody left to tell: keep the error in the log
            self.log.failure("session key derivation failed", failure=failure,
                             **fields(host_session_id=key[1]))
            return
        for waiter in waiters:
            waiter.errback(failure)

    def status(self) -> dict[str, Any]:
        return {"cached": len(self._keys), "in_flight": len(self._waiters),
                "derivations": self.derivations, "hits": self.hits}
