"""Controller leases: who may drive a host, until when.

A lease is held by a controller account for a reason; acquiring again with the same
account and reason renews the same token (legacy behaviour), a different account or
reason gets its own lease (several controllers may hold leases at once).  TTL: default
30 s, at least 1 s, at most 24 h.  Leases expire by time (the clock is injected);
``check`` is what the action pipeline asks before accepting an action.

``check`` trusts a positive answer for at most ``cache_ttl`` seconds (default
:data:`LEASE_CACHE_TTL`, 1 s) and never past the lease's own expiry, so a steady
stream of actions costs one database look-up per token per second, not one per
request.  What that may miss, and for how long:

* a release through this instance (``release``), a renewal (``acquire``) and a
  re-registration through this instance (``forget_session``) drop the cached answers at
  once, and a look-up that was in flight meanwhile is not cached, so here nothing is
  missed;
* expiry is never missed (the cache holds an answer only until the lease expires);
* a release or revocation made through *another* manager instance (leases are shared
  through PostgreSQL) is seen here at most ``cache_ttl`` seconds late: during that
  window actions carrying the old token may still be accepted.  The lease watch
  (:mod:`.lease_watch`) asks with ``fresh=True``, so actions still waiting are
  preempted as promptly as without the cache.

Negative answers are never cached (a token may get its lease on another instance
the next moment).

``ctx.parts["leases"]`` is a :class:`Leases` over the registry store.
"""

from __future__ import annotations

from collections.abc import Hashable

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.interfaces import IReactorTime

from ..registry.store import (
    DEFAULT_LEASE_TTL_MS,
    MIN_LEASE_TTL_MS,
    Lease,
    Op,
    RegistryStore,
    ReleaseOutcome,
    Tenant,
)
from ..registry.ttl_cache import TtlCache

MAX_LEASE_TTL_MS = 86_400_000
#: Seconds a positive ``check`` is trusted (see the module text); 0 turns the cache off.
LEASE_CACHE_TTL = 1.0
#: Tokens remembered at once.
LEASE_CACHE_BOUND = 10_000


class LeaseError(Exception):
    """A controller token does not grant control (HTTP 409 with ``code`` as error_code)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code  # controller_mismatch | missing_lease | lease_expired | lease_revoked
        self.message = message


def clamp_ttl(ttl_ms: int | None) -> int:
    if ttl_ms is None:
        return DEFAULT_LEASE_TTL_MS
    return max(MIN_LEASE_TTL_MS, min(MAX_LEASE_TTL_MS, int(ttl_ms)))


class Leases:
    def __init__(self, store: RegistryStore, clock: IReactorTime, cache_ttl: float = LEASE_CACHE_TTL,
                 cache_bound: int = LEASE_CACHE_BOUND):
        self.store = store
        self.clock = clock
        self.valid: TtlCache[Lease] | None = TtlCache(clock, cache_ttl, cache_bound) if cache_ttl > 0 else None
        self._epoch = 0  # bumped by every invalidation: a look-up that saw it change is not cached

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def acquire(self, tenant: Tenant, host_session_id: str, controller_account_id: str | None = None,
                reason: str | None = None, ttl_ms: int | None = None) -> Deferred[Lease]:
        """Renew or issue; ``controller_account_id`` defaults to the tenant's account.

        Fails with :class:`~beachmanager.registry.store.SessionNotFound`."""
        account = controller_account_id if controller_account_id is not None else tenant.account_id

        async def run() -> Lease:
            lease = await self.store.acquire_lease(tenant, host_session_id, account, reason,
                                                   clamp_ttl(ttl_ms), Op.new(), self.now_ms())
            self._forget((tenant.private_beach_id, host_session_id, lease.token))
            return lease

        return ensureDeferred(run())

    def release(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[ReleaseOutcome]:
        """Revoke the lease; a repeat is fine; a token naming no lease of this session fails
        with :class:`LeaseError` ``controller_mismatch``."""
        key = (tenant.private_beach_id, host_session_id, token)

        async def run() -> ReleaseOutcome:
            self._forget(key)
            try:
                outcome = await self.store.release_lease(tenant, host_session_id, token, Op.new(),
                                                         self.now_ms())
            finally:
                self._forget(key)  # and whatever a concurrent look-up cached before the commit
            if outcome is ReleaseOutcome.UNKNOWN:
                raise LeaseError("controller_mismatch", "the controller token names no lease of this session")
            return outcome

        return ensureDeferred(run())

    def forget_session(self, tenant: Tenant, host_session_id: str) -> None:
        """Drop cached answers for every token of a session (e.g. a re-registration revoked its
        other leases)."""
        self._epoch += 1
        if self.valid is not None:
            beach = tenant.private_beach_id

            def doomed(key: Hashable) -> bool:  # keys are (beach, host session, token)
                return isinstance(key, tuple) and key[0] == beach and key[1] == host_session_id

            self.valid.discard_if(doomed)

    def _forget(self, key: tuple[str, str, str]) -> None:
        self._epoch += 1
        if self.valid is not None:
            self.valid.pop(key)

    def check(self, tenant: Tenant, host_session_id: str, token: str, *, fresh: bool = False) -> Deferred[Lease]:
        """The live lease named by *token*, or :class:`LeaseError` saying why not.

        A live answer may come from the cache (see the module text); ``fresh`` always asks
        the store (and refreshes the cache with what it says)."""
        key = (tenant.private_beach_id, host_session_id, token)
        if self.valid is not None and not fresh:
            cached = self.valid.get(key)
            if cached is not None and cached.active(self.now_ms()):
                return succeed(cached)
        epoch = self._epoch

        async def run() -> Lease:
            lease = await self.store.find_lease(tenant, host_session_id, token)
            try:
                if lease is None:
                    raise LeaseError("missing_lease", "no lease of this session has that controller token")
                if lease.revoked_at_ms is not None and lease.revoke_reason != "expired":
                    raise LeaseError("lease_revoked", f"the lease was revoked ({lease.revoke_reason})")
                if not lease.active(self.now_ms()):
                    raise LeaseError("lease_expired", "the lease has expired; acquire a new one")
            except LeaseError:
                if self.valid is not None:
                    self.valid.pop(key)
                raise
            if self.valid is not None and epoch == self._epoch:
                self.valid.put(key, lease, until=lease.expires_at_ms / 1000)
            return lease

        return ensureDeferred(run())
