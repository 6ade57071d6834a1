"""The in-memory registry: the embedded default, with the PostgreSQL store's semantics.

Tenancy is enforced the way row-level security enforces it: every lookup is keyed by
the tenant's private beach.  Join codes are kept encrypted here too, so both stores
take the same path.  Nothing survives a restart.  Per session, the newest
:data:`MAX_EVENTS_PER_SESSION` events and :data:`MAX_ACTIONS_PER_SESSION` action records
are kept (the database keeps everything).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred, fail, maybeDeferred

from .join_codes import JoinCodeCipher
from .members import ACTIVE, OWNER, Beach, BeachExists, Member
from .repository import outcomes
from .store import (
    MAX_ACTION_BATCH,
    REGISTER_REASON,
    ActionLogged,
    ActionRecord,
    AttachState,
    ControllerEvent,
    Lease,
    Op,
    RegisterResult,
    ReleaseOutcome,
    Session,
    SessionNotFound,
    SessionRegistration,
    Tenant,
    action_groups,
    parse_token,
)

T = TypeVar("T")
MAX_EVENTS_PER_SESSION = 10_000
MAX_ACTIONS_PER_SESSION = 10_000


@dataclasses.dataclass
class _SessionRow:
    session: Session
    join_code: tuple[str, bytes] | None = None
    events: deque = dataclasses.field(default_factory=lambda: deque(maxlen=MAX_EVENTS_PER_SESSION))
    event_ids: set = dataclasses.field(default_factory=set)
    actions: dict = dataclasses.field(default_factory=dict)


class MemoryStore:
    name = "memory"

    def counters(self) -> dict[str, int]:
        return {}  # nothing here is retried or can be unavailable

    def __init__(self, cipher: JoinCodeCipher):
        self.cipher = cipher
        self._beaches: set[str] = set()
        self._beach_rows: dict[str, Beach] = {}  # created by create_beach (owner, name)
        self._members: dict[tuple[str, str], Member] = {}
        self._sessions: dict[tuple[str, str], _SessionRow] = {}
        self._leases: dict[str, Lease] = {}

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _run(fn: Callable[..., T], *args: Any) -> Deferred[T]:
        return maybeDeferred(fn, *args)

    def _row(self, tenant: Tenant, host_session_id: str) -> _SessionRow:
        row = self._sessions.get((tenant.private_beach_id, host_session_id))
        if row is None:
            raise SessionNotFound(host_session_id)
        return row

    def _event(self, row: _SessionRow, op: Op, kind: str, event_type: str, now_ms: int,
               lease: Lease | None = None, reason: str | None = None, tenant: Tenant | None = None) -> None:
        event_id = str(op.event_id(kind))
        if event_id in row.event_ids:
            return
        if len(row.events) == row.events.maxlen:
            row.event_ids.discard(row.events[0].id)
        row.event_ids.add(event_id)
        row.events.append(ControllerEvent(
            id=event_id, host_session_id=row.session.host_session_id, event_type=event_type,
            occurred_at_ms=now_ms, controller_token=lease.token if lease else None,
            reason=reason if reason is not None else (lease.reason if lease else None),
            controller_account_id=lease.controller_account_id if lease else None,
            issued_by_account_id=lease.issued_by_account_id if lease else (tenant.account_id if tenant else None)))

    def _seal(self, tenant: Tenant, host_session_id: str, code: str | None) -> tuple[str, bytes] | None:
        if code is None:
            return None
        return self.cipher.encrypt(code, tenant.private_beach_id, host_session_id)

    def _upsert(self, tenant: Tenant, host_session_id: str, op: Op, now_ms: int, method: str,
                state: AttachState, changes: dict[str, Any], join_code: str | None) -> _SessionRow:
        self._beaches.add(tenant.private_beach_id)
        key = (tenant.private_beach_id, host_session_id)
        row = self._sessions.get(key)
        if row is None:
            session = Session(
                private_beach_id=tenant.private_beach_id, host_session_id=host_session_id,
                harness_id=str(op.event_id("harness")), harness_type=None, capabilities=(),
                location_hint=None, metadata=None, version=None, transport_mode=None,
                attach_method=method, attach_state=state.value, has_join_code=False,
                created_by_account_id=tenant.account_id, created_at_ms=now_ms, updated_at_ms=now_ms)
            row = self._sessions[key] = _SessionRow(session)
        elif method == "code":
            changes = {**changes, "attach_method": "code", "attach_state": state.value}
        sealed = self._seal(tenant, host_session_id, join_code)
        if sealed is not None:
            row.join_code = sealed
        row.session = dataclasses.replace(row.session, **changes, updated_at_ms=now_ms,
                                          has_join_code=row.join_code is not None)
        return row

    def _acquire(self, tenant: Tenant, row: _SessionRow, account: str | None, reason: str | None,
                 ttl_ms: int, op: Op, now_ms: int) -> Lease:
        s = row.session
        live = [lease for lease in self._leases.values()
                if (lease.private_beach_id, lease.host_session_id) == (s.private_beach_id, s.host_session_id)
                and lease.revoked_at_ms is None
                and (lease.controller_account_id or "") == (account or "")
                and (lease.reason or "") == (reason or "")]  # as the database's unique index
        current = live[0] if live else None
        if current is not None and current.expires_at_ms > now_ms:
            lease = dataclasses.replace(current, issued_at_ms=now_ms, expires_at_ms=now_ms + ttl_ms)
        else:
            if current is not None:
                self._leases[current.token] = dataclasses.replace(
                    current, revoked_at_ms=current.expires_at_ms, revoke_reason="expired")
                self._event(row, op, "lease_expired", "lease_expired", now_ms, lease=current)
            lease = Lease(token=str(op.token), private_beach_id=s.private_beach_id,
                          host_session_id=s.host_session_id, controller_account_id=account,
                          issued_by_account_id=tenant.account_id, reason=reason,
                          issued_at_ms=now_ms, expires_at_ms=now_ms + ttl_ms)
        self._leases[lease.token] = lease
        self._event(row, op, "lease_acquired", "lease_acquired", now_ms, lease=lease)
        return lease

    # -- RegistryStore -------------------------------------------------------
    def register_session(self, tenant: Tenant, reg: SessionRegistration, op: Op, now_ms: int,
                         lease_ttl_ms: int = 30_000) -> Deferred[RegisterResult]:
        def run() -> RegisterResult:
            changes = {"harness_type": reg.harness_type, "capabilities": tuple(reg.capabilities),
                       "location_hint": reg.location_hint, "metadata": reg.metadata,
                       "version": reg.version, "transport_mode": reg.transport_mode}
            row = self._upsert(tenant, reg.host_session_id, op, now_ms, "register",
                               AttachState.REGISTERED, changes, reg.viewer_passcode)
            self._event(row, op, "registered", "registered", now_ms, reason=REGISTER_REASON, tenant=tenant)
            for lease in list(self._leases.values()):
                if ((lease.private_beach_id, lease.host_session_id)
                        == (tenant.private_beach_id, reg.host_session_id)
                        and lease.revoked_at_ms is None
                        and (lease.controller_account_id, lease.reason) != (tenant.account_id, REGISTER_REASON)):
                    self._leases[lease.token] = dataclasses.replace(
                        lease, revoked_at_ms=now_ms, revoke_reason="session_register")
            lease = self._acquire(tenant, row, tenant.account_id, REGISTER_REASON, lease_ttl_ms, op, now_ms)
            return RegisterResult(row.session, lease)

        return self._run(run)

    def attach_session(self, tenant: Tenant, host_session_id: str, join_code: str, op: Op,
                       now_ms: int) -> Deferred[Session]:
        def run() -> Session:
            row = self._upsert(tenant, host_session_id, op, now_ms, "code", AttachState.PENDING_ATTACH,
                               {}, join_code)
            self._event(row, op, "registered", "registered", now_ms, reason="attach_by_code", tenant=tenant)
            return row.session

        return self._run(run)

    def set_attach_state(self, tenant: Tenant, host_session_id: str, state: AttachState,
                         now_ms: int) -> Deferred[bool]:
        def run() -> bool:
            row = self._sessions.get((tenant.private_beach_id, host_session_id))
            if row is None:
                return False
            row.session = dataclasses.replace(row.session, attach_state=AttachState(state).value,
                                              updated_at_ms=now_ms)
            return True

        return self._run(run)

    def get_session(self, tenant: Tenant, host_session_id: str) -> Deferred[Session | None]:
        def run() -> Session | None:
            row = self._sessions.get((tenant.private_beach_id, host_session_id))
            return row.session if row else None

        return self._run(run)

    def list_sessions(self, tenant: Tenant) -> Deferred[list[Session]]:
        def run() -> list[Session]:
            rows = [r.session for (pb, _), r in self._sessions.items() if pb == tenant.private_beach_id]
            return sorted(rows, key=lambda s: (s.created_at_ms, s.host_session_id))

        return self._run(run)

    def session_beaches(self, host_session_id: str) -> Deferred[list[str]]:
        return self._run(lambda: sorted(pb for pb, hs in self._sessions if hs == host_session_id))

    def join_code(self, tenant: Tenant, host_session_id: str) -> Deferred[str | None]:
        def run() -> str | None:
            row = self._sessions.get((tenant.private_beach_id, host_session_id))
            if row is None or row.join_code is None:
                return None
            kid, blob = row.join_code
            return self.cipher.decrypt(kid, blob, tenant.private_beach_id, host_session_id)

        return self._run(run)

    def acquire_lease(self, tenant: Tenant, host_session_id: str, controller_account_id: str | None,
                      reason: str | None, ttl_ms: int, op: Op, now_ms: int) -> Deferred[Lease]:
        return self._run(lambda: self._acquire(tenant, self._row(tenant, host_session_id),
                                               controller_account_id, reason, ttl_ms, op, now_ms))

    def release_lease(self, tenant: Tenant, host_session_id: str, token: str, op: Op,
                      now_ms: int) -> Deferred[ReleaseOutcome]:
        def run() -> ReleaseOutcome:
            row = self._row(tenant, host_session_id)
            parsed = parse_token(token)
            lease = self._leases.get(str(parsed)) if parsed else None
            if lease is None or (lease.private_beach_id, lease.host_session_id) != (
                    tenant.private_beach_id, host_session_id):
                return ReleaseOutcome.UNKNOWN
            if lease.revoked_at_ms is not None:
                return ReleaseOutcome.ALREADY_RELEASED
            released = dataclasses.replace(lease, revoked_at_ms=now_ms, revoke_reason="released",
                                           expires_at_ms=min(lease.expires_at_ms, now_ms))
            self._leases[lease.token] = released
            self._event(row, op, "lease_released", "lease_released", now_ms, lease=released)
            return ReleaseOutcome.RELEASED

        return self._run(run)

    def find_lease(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[Lease | None]:
        def run() -> Lease | None:
            parsed = parse_token(token)
            lease = self._leases.get(str(parsed)) if parsed else None
            if lease is None or (lease.private_beach_id, lease.host_session_id) != (
                    tenant.private_beach_id, host_session_id):
                return None
            return lease

        return self._run(run)

    def live_leases(self, tenant: Tenant, now_ms: int) -> Deferred[list[Lease]]:
        def run() -> list[Lease]:
            live = [lease for lease in self._leases.values()
                    if lease.private_beach_id == tenant.private_beach_id and lease.active(now_ms)]
            return sorted(live, key=lambda lease: (-lease.expires_at_ms, lease.token))

        return self._run(run)

    def record_actions_by_beach(self, groups: Sequence[tuple[Tenant, Sequence[ActionRecord]]]
                                ) -> Deferred[list[list[ActionLogged]]]:
        try:
            listed = action_groups(groups)
        except ValueError as e:
            return fail(e)

        async def run() -> list[list[ActionLogged]]:
            return [await self.record_actions(tenant, records) for tenant, records in listed]

        return ensureDeferred(run())

    def controller_events(self, tenant: Tenant, host_session_id: str, event_type: str | None = None,
                          since_ms: int | None = None, limit: int = 200) -> Deferred[list[ControllerEvent]]:
        def run() -> list[ControllerEvent]:
            row = self._sessions.get((tenant.private_beach_id, host_session_id))
            if row is None:
                return []
            out = []
            for event in reversed(row.events):  # newest first; ties keep reverse insertion order
                if event_type is not None and event.event_type != event_type:
                    continue
                if since_ms is not None and event.occurred_at_ms < since_ms:
                    continue
                out.append(event)
            out.sort(key=lambda e: -e.occurred_at_ms)  # stable: equal times stay newest-first
            return out[:limit]

        return self._run(run)

    def record_action(self, tenant: Tenant, action: ActionRecord) -> Deferred[bool]:
        return self._run(lambda: self._append(self._row(tenant, action.host_session_id), action))

    @staticmethod
    def _append(row: _SessionRow, action: ActionRecord) -> bool:
        if action.action_id in row.actions:
            return False
        if len(row.actions) >= MAX_ACTIONS_PER_SESSION:
            row.actions.pop(next(iter(row.actions)))
        row.actions[action.action_id] = action
        return True

    def record_actions(self, tenant: Tenant, records: Sequence[ActionRecord]) -> Deferred[list[ActionLogged]]:
        records = list(records)
        if len(records) > MAX_ACTION_BATCH:
            return fail(ValueError(f"at most {MAX_ACTION_BATCH} action records per call, got {len(records)}"))

        def run() -> list[ActionLogged]:
            known = {r.host_session_id for r in records
                     if (tenant.private_beach_id, r.host_session_id) in self._sessions}
            inserted = {(r.host_session_id, r.action_id) for r in records
                        if r.host_session_id in known
                        and self._append(self._sessions[(tenant.private_beach_id, r.host_session_id)], r)}
            return outcomes(records, known, inserted)

        return self._run(run)

    # -- membership ----------------------------------------------------------
    def create_beach(self, tenant: Tenant, name: str | None, now_ms: int) -> Deferred[Beach]:
        def run() -> Beach:
            pb = tenant.private_beach_id
            if pb in self._beaches:
                raise BeachExists(pb)
            self._beaches.add(pb)
            beach = self._beach_rows[pb] = Beach(pb, name, tenant.account_id, tenant.account_id, now_ms)
            return beach

        return self._run(run)

    def get_beach(self, tenant: Tenant) -> Deferred[Beach | None]:
        def run() -> Beach | None:
            pb = tenant.private_beach_id
            if pb not in self._beaches:
                return None
            return self._beach_rows.get(pb) or Beach(pb, None, None, None, 0)

        return self._run(run)

    def member_role(self, tenant: Tenant) -> Deferred[str | None]:
        def run() -> str | None:
            pb, account = tenant.private_beach_id, tenant.account_id
            if pb not in self._beaches:
                return None
            beach = self._beach_rows.get(pb)
            if beach is not None and account is not None and beach.owner_account_id == account:
                return OWNER
            member = self._members.get((pb, account or ""))
            return member.role if member is not None and member.status == ACTIVE else None

        return self._run(run)

    def list_members(self, tenant: Tenant) -> Deferred[list[Member]]:
        pb = tenant.private_beach_id
        return self._run(lambda: [m for (b, _), m in sorted(self._members.items()) if b == pb])

    def put_member(self, tenant: Tenant, account_id: str, role: str, status: str,
                   now_ms: int) -> Deferred[Member]:
        def run() -> Member:
            pb = tenant.private_beach_id
            self._beaches.add(pb)
            old = self._members.get((pb, account_id))
            member = Member(pb, account_id, role, status,
                            old.invited_by_account_id if old else tenant.account_id,
                            old.created_at_ms if old else now_ms, now_ms)
            self._members[(pb, account_id)] = member
            return member

        return self._run(run)

    def remove_member(self, tenant: Tenant, account_id: str) -> Deferred[bool]:
        return self._run(lambda: self._members.pop((tenant.private_beach_id, account_id), None)
                         is not None)
