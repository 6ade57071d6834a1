"""Controller leases: who may drive a host, until when.

A lease is held by a controller account for a reason; acquiring again with the same
account and reason renews the same token (legacy behaviour), a different account or
reason gets its own lease (several controllers may hold leases at once).  TTL: default
30 s, at least 1 s, at most 24 h.  Leases expire by time (the clock is injected);
``check`` is what the action pipeline asks before accepting an action.

``ctx.parts["leases"]`` is a :class:`Leases` over the registry store.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
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

MAX_LEASE_TTL_MS = 86_400_000


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
    def __init__(self, store: RegistryStore, clock: IReactorTime):
        self.store = store
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def acquire(self, tenant: Tenant, host_session_id: str, controller_account_id: str | None = None,
                reason: str | None = None, ttl_ms: int | None = None) -> Deferred[Lease]:
        """Renew or issue; ``controller_account_id`` defaults to the tenant's account.

        Fails with :class:`~beachmanager.registry.store.SessionNotFound`."""
        account = controller_account_id if controller_account_id is not None else tenant.account_id
        return self.store.acquire_lease(tenant, host_session_id, account, reason, clamp_ttl(ttl_ms),
                                         Op.new(), self.now_ms())

    def release(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[ReleaseOutcome]:
        """Revoke the lease; a repeat is fine; a token naming no lease of this session fails
        with :class:`LeaseError` ``controller_mismatch``."""

        async def run() -> ReleaseOutcome:
            outcome = await self.store.release_lease(tenant, host_session_id, token, Op.new(), self.now_ms())
            if outcome is ReleaseOutcome.UNKNOWN:
                raise LeaseError("controller_mismatch", "the controller token names no lease of this session")
            return outcome

        return ensureDeferred(run())

    def check(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[Lease]:
        """The live lease named by *token*, or :class:`LeaseError` saying why not."""

        async def run() -> Lease:
            lease = await self.store.find_lease(tenant, host_session_id, token)
            if lease is None:
                raise LeaseError("missing_lease", "no lease of this session has that controller token")
            if lease.revoked_at_ms is not None and lease.revoke_reason != "expired":
                raise LeaseError("lease_revoked", f"the lease was revoked ({lease.revoke_reason})")
            if not lease.active(self.now_ms()):
                raise LeaseError("lease_expired", "the lease has expired; acquire a new one")
            return lease

        return ensureDeferred(run())
