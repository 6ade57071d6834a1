"""The durable registry: its records, its interface and its errors.

Two implementations share this interface and one contract test suite:
:class:`~beachmanager.registry.memory.MemoryStore` (the embedded default) and
:class:`~beachmanager.registry.postgres.PostgresStore` (PostgreSQL with row-level
security).  Every method returns a Deferred and acts inside one tenant
(:class:`Tenant`): a private beach, and the account acting in it.  Rows of other
private beaches are invisible and unwritable, exactly as the database enforces it.

Time is passed in (``now_ms``, from the caller's injected clock).  Writes carry an
:class:`Op`: ids chosen once per request, so a write retried after a lost connection
(whose first attempt may have committed) neither duplicates events nor issues a
second lease.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from .members import Beach, Member

#: Legacy default and minimum lease length.
DEFAULT_LEASE_TTL_MS = 30_000
MIN_LEASE_TTL_MS = 1_000
#: Registration issues a lease with this reason (legacy ``session_register``).
REGISTER_REASON = "session_register"

EVENT_TYPES = frozenset({
    "registered", "lease_acquired", "lease_released", "lease_expired", "actions_queued",
    "actions_acked", "health_reported", "state_updated", "pairing_added", "pairing_removed",
})
HARNESS_TYPES = ("terminal_shim", "cabana_adapter", "remote_widget", "service_proxy", "custom")
#: The legacy registration's ``transport_mode`` values: accepted and stored for compatibility,
#: never acted on (every host is reached over its one WebRTC transport; there is no HTTP
#: fallback to switch to, docs/migration.md).
TRANSPORT_MODES = ("fast_path", "http_fallback")


#: Most records one ``record_actions`` call takes (the ack writer sends at most 256).
MAX_ACTION_BATCH = 1_000


class StoreError(Exception):
    """Base of the registry's errors."""


class StoreUnavailable(StoreError):
    """The database did not answer after retries; the request may be repeated (HTTP 503)."""


class SessionNotFound(StoreError):
    """No such host session in this private beach."""


class AttachState(enum.StrEnum):
    REGISTERED = "registered"          # registered by its harness (no manager attach asked)
    PENDING_ATTACH = "pending_attach"  # attach-by-code recorded; no attach machinery yet
    ATTACHING = "attaching"            # handed to the attach machinery
    ATTACHED = "attached"
    FAILED = "attach_failed"


class ActionLogged(enum.StrEnum):
    """What ``record_actions`` did with one record."""

    STORED = "stored"
    DUPLICATE = "duplicate"    # this action id was already in the log (or earlier in the batch)
    NO_SESSION = "no_session"  # no such host session in the tenant's private beach: not logged


class ReleaseOutcome(enum.StrEnum):
    RELEASED = "released"
    ALREADY_RELEASED = "already_released"  # idempotent repeat (or revoked by re-registration)
    UNKNOWN = "unknown"                    # no lease with this token on this session


@dataclass(frozen=True)
class Tenant:
    private_beach_id: str
    account_id: str | None = None


@dataclass(frozen=True)
class Op:
    """Ids for one logical write, fixed before any attempt."""

    id: uuid.UUID
    token: uuid.UUID

    @classmethod
    def new(cls) -> Op:
        return cls(uuid.uuid4(), uuid.uuid4())

    def event_id(self, kind: str) -> uuid.UUID:
        return uuid.uuid5(self.id, kind)


@dataclass(frozen=True)
class SessionRegistration:
    host_session_id: str
    harness_type: str | None = None
    capabilities: tuple[str, ...] = ()
    location_hint: str | None = None
    metadata: Any = None
    version: str | None = None
    transport_mode: str | None = None
    viewer_passcode: str | None = None


@dataclass(frozen=True)
class Session:
    private_beach_id: str
    host_session_id: str
    harness_id: str
    harness_type: str | None
    capabilities: tuple[str, ...]
    location_hint: str | None
    metadata: Any
    version: str | None
    transport_mode: str | None
    attach_method: str
    attach_state: str
    has_join_code: bool
    created_by_account_id: str | None
    created_at_ms: int
    updated_at_ms: int


@dataclass(frozen=True)
class Lease:
    token: str
    private_beach_id: str
    host_session_id: str
    controller_account_id: str | None
    issued_by_account_id: str | None
    reason: str | None
    issued_at_ms: int
    expires_at_ms: int
    revoked_at_ms: int | None = None
    revoke_reason: str | None = None

    def active(self, now_ms: int) -> bool:
        return self.revoked_at_ms is None and self.expires_at_ms > now_ms


@dataclass(frozen=True)
class ControllerEvent:
    id: str
    host_session_id: str
    event_type: str
    occurred_at_ms: int
    controller_token: str | None = None
    reason: str | None = None
    controller_account_id: str | None = None
    issued_by_account_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The legacy ``GET /sessions/:id/controller-events`` item."""
        out: dict[str, Any] = {"id": self.id, "event_type": self.event_type,
                               "timestamp_ms": self.occurred_at_ms}
        for key in ("controller_token", "reason", "controller_account_id", "issued_by_account_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class RegisterResult:
    session: Session
    lease: Lease


@dataclass(frozen=True)
class ActionRecord:
    host_session_id: str
    action_id: str
    action_type: str
    payload: Any
    enqueued_at_ms: int
    controller_token: str | None = None
    status: str = "queued"
    acked_at_ms: int | None = None


def action_groups(groups: Sequence[tuple[Tenant, Sequence[ActionRecord]]]
                  ) -> list[tuple[Tenant, list[ActionRecord]]]:
    """The groups of a ``record_actions_by_beach`` call, as lists; :class:`ValueError` past
    :data:`MAX_ACTION_BATCH` records in all."""
    listed = [(tenant, list(records)) for tenant, records in groups]
    total = sum(len(records) for _, records in listed)
    if total > MAX_ACTION_BATCH:
        raise ValueError(f"at most {MAX_ACTION_BATCH} action records per call, got {total}")
    return listed


def parse_token(token: str) -> uuid.UUID | None:
    """A lease token as a UUID, or None when it cannot name any lease."""
    try:
        return uuid.UUID(token)
    except (ValueError, TypeError, AttributeError):
        return None


class RegistryStore(Protocol):
    """What the API and the controller use; both implementations honour it identically."""

    name: str

    def counters(self) -> dict[str, int]:
        """Health counters for ``/readyz`` (retries, calls that gave up); may be empty."""

    def register_session(self, tenant: Tenant, reg: SessionRegistration, op: Op, now_ms: int,
                         lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Deferred[RegisterResult]:
        """Upsert the session (``attach_method=register``), revoke other live leases, and issue
        or renew the tenant account's ``session_register`` lease.  Events: registered,
        lease_acquired."""

    def attach_session(self, tenant: Tenant, host_session_id: str, join_code: str, op: Op,
                       now_ms: int) -> Deferred[Session]:
        """Upsert a session attached by code (join code stored encrypted), state
        ``pending_attach``.  Event: registered (reason ``attach_by_code``)."""

    def set_attach_state(self, tenant: Tenant, host_session_id: str, state: AttachState,
                         now_ms: int) -> Deferred[bool]:
        ...

    def get_session(self, tenant: Tenant, host_session_id: str) -> Deferred[Session | None]:
        ...

    def list_sessions(self, tenant: Tenant) -> Deferred[list[Session]]:
        """Sessions of the tenant's private beach, oldest first."""

    def session_beaches(self, host_session_id: str) -> Deferred[list[str]]:
        """Private beaches holding this host session (ids only; the one cross-tenant lookup)."""

    def join_code(self, tenant: Tenant, host_session_id: str) -> Deferred[str | None]:
        ...

    def acquire_lease(self, tenant: Tenant, host_session_id: str, controller_account_id: str | None,
                      reason: str | None, ttl_ms: int, op: Op, now_ms: int) -> Deferred[Lease]:
        """Renew the live lease of ``(controller_account_id, reason)`` (same token) or issue a
        new one; an expired one is revoked first (event lease_expired).  Event: lease_acquired.
        Raises :class:`SessionNotFound`."""

    def release_lease(self, tenant: Tenant, host_session_id: str, token: str, op: Op,
                      now_ms: int) -> Deferred[ReleaseOutcome]:
        """Revoke the lease named by *token*.  Event: lease_released.  Raises SessionNotFound."""

    def find_lease(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[Lease | None]:
        ...

    def live_leases(self, tenant: Tenant, now_ms: int) -> Deferred[list[Lease]]:
        """Unrevoked, unexpired leases of the tenant, newest expiry first."""

    def controller_events(self, tenant: Tenant, host_session_id: str, event_type: str | None = None,
                          since_ms: int | None = None, limit: int = 200) -> Deferred[list[ControllerEvent]]:
        """Newest first."""

    def record_action(self, tenant: Tenant, action: ActionRecord) -> Deferred[bool]:
        """Append to the action log; False when this action id was already recorded."""

    def record_actions(self, tenant: Tenant, records: Sequence[ActionRecord]) -> Deferred[list[ActionLogged]]:
        """Append many records in one transaction, one outcome per record (same order).

        Idempotent on ``(host session, action id)``: a repeat, in the log or earlier in the
        same batch, is :attr:`ActionLogged.DUPLICATE` and changes nothing (the first wins).
        A record of a session the tenant does not hold is :attr:`ActionLogged.NO_SESSION`
        and written nowhere, so one such record cannot make the batch fail for ever.
        More than :data:`MAX_ACTION_BATCH` records fail with :class:`ValueError`."""

    def record_actions_by_beach(self, groups: Sequence[tuple[Tenant, Sequence[ActionRecord]]]
                                ) -> Deferred[list[list[ActionLogged]]]:
        """:meth:`record_actions` for several private beaches in one transaction: one list of
        outcomes per group (same order), each group written under its own tenant (row security
        applies to each as if it were alone).  At most :data:`MAX_ACTION_BATCH` records in all."""

    # -- membership (registry/members.py) -------------------------------------
    def create_beach(self, tenant: Tenant, name: str | None, now_ms: int) -> Deferred[Beach]:
        """Create the tenant's private beach owned by ``tenant.account_id``; raises
        :class:`~beachmanager.registry.members.BeachExists` when the id is taken."""

    def get_beach(self, tenant: Tenant) -> Deferred[Beach | None]:
        ...

    def member_role(self, tenant: Tenant) -> Deferred[str | None]:
        """The role ``tenant.account_id`` acts with in the beach: ``owner`` for its owner, the
        role of an active membership, else None (no beach, no membership, not active)."""

    def list_members(self, tenant: Tenant) -> Deferred[list[Member]]:
        """Memberships of the beach, by account id."""

    def put_member(self, tenant: Tenant, account_id: str, role: str, status: str,
                   now_ms: int) -> Deferred[Member]:
        """Upsert a membership (the beach is created, owner-less, when it does not exist)."""

    def remove_member(self, tenant: Tenant, account_id: str) -> Deferred[bool]:
        """Delete a membership; False when there was none."""
