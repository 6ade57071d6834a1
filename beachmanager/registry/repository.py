"""Every SQL statement of the registry, as asyncio functions on a psycopg connection.

Each function runs inside a transaction that :func:`enter_tenant` has scoped to one
private beach (``set_config(..., true)``: transaction-local), as the non-owner role,
so row-level security filters every statement.  Pure asyncio: called only through
:class:`~beachmanager.registry.postgres.PostgresStore`, which crosses into Twisted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, overload

from .join_codes import JoinCodeCipher
from .store import (
    REGISTER_REASON,
    ActionLogged,
    ActionRecord,
    AttachState,
    ControllerEvent,
    Lease,
    Op,
    ReleaseOutcome,
    Session,
    SessionNotFound,
    SessionRegistration,
    Tenant,
    parse_token,
)

S = "beach_manager"  # schema
T = TypeVar("T")
#: What the pipelined calls return: read the answers once the transaction has committed.
Collect = Callable[[], Awaitable[T]]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def ts(ms: int) -> datetime:
    return EPOCH + ms * MS


@overload
def ms(value: datetime) -> int: ...
@overload
def ms(value: None) -> None: ...
@overload
def ms(value: datetime | None) -> int | None: ...
def ms(value: datetime | None) -> int | None:
    return None if value is None else (value - EPOCH) // MS


def _jsonb(value: Any):
    from psycopg.types.json import Jsonb

    return None if value is None else Jsonb(value)


async def enter_tenant(conn, tenant: Tenant) -> None:
    await conn.execute(
        "SELECT set_config('beach.private_beach_id', %s, true), set_config('beach.account_id', %s, true)",
        (tenant.private_beach_id, tenant.account_id or ""))


# -- rows -> records ------------------------------------------------------------

_SESSION_COLS = ("private_beach_id, host_session_id, harness_id, harness_type, capabilities, "
                 "location_hint, metadata, version, transport_mode, attach_method, attach_state, "
                 "join_code_key_id, created_by_account_id, created_at, updated_at")
_LEASE_COLS = ("token, private_beach_id, host_session_id, controller_account_id, issued_by_account_id, "
               "reason, issued_at, expires_at, revoked_at, revoke_reason")


def _session(row) -> Session:
    (pb, hs, harness_id, harness_type, caps, hint, metadata, version, mode, method, state,
     key_id, created_by, created_at, updated_at) = row
    return Session(private_beach_id=pb, host_session_id=hs, harness_id=str(harness_id),
                   harness_type=harness_type, capabilities=tuple(caps or ()), location_hint=hint,
                   metadata=metadata, version=version, transport_mode=mode, attach_method=method,
                   attach_state=state, has_join_code=key_id is not None,
                   created_by_account_id=created_by, created_at_ms=ms(created_at),
                   updated_at_ms=ms(updated_at))


def _lease(row) -> Lease:
    token, pb, hs, account, issued_by, reason, issued_at, expires_at, revoked_at, revoke_reason = row
    return Lease(token=str(token), private_beach_id=pb, host_session_id=hs,
                 controller_account_id=account, issued_by_account_id=issued_by, reason=reason,
                 issued_at_ms=ms(issued_at), expires_at_ms=ms(expires_at),
                 revoked_at_ms=ms(revoked_at), revoke_reason=revoke_reason)


# -- sessions -------------------------------------------------------------------

async def _ensure_beach(conn, tenant: Tenant) -> None:
    await conn.execute(f"INSERT INTO {S}.private_beach (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
                       (tenant.private_beach_id,))


async def upsert_registered(conn, cipher: JoinCodeCipher, tenant: Tenant, reg: SessionRegistration,
                            op: Op, now_ms: int) -> Session:
    await _ensure_beach(conn, tenant)
    sealed = (cipher.encrypt(reg.viewer_passcode, tenant.private_beach_id, reg.host_session_id)
              if reg.viewer_passcode is not None else (None, None))
    cur = await conn.execute(
        f"""INSERT INTO {S}.host_session AS h (private_beach_id, host_session_id, harness_id, harness_type,
                capabilities, location_hint, metadata, version, transport_mode, attach_method,
                attach_state, join_code_key_id, join_code_sealed, created_at, updated_at)
            VALUES (%(pb)s, %(hs)s, %(harness_id)s, %(harness_type)s, %(caps)s, %(hint)s, %(metadata)s,
                    %(version)s, %(mode)s, 'register', %(state)s, %(kid)s, %(sealed)s, %(now)s, %(now)s)
            ON CONFLICT (private_beach_id, host_session_id) DO UPDATE SET
                harness_type = EXCLUDED.harness_type, capabilities = EXCLUDED.capabilities,
                location_hint = EXCLUDED.location_hint, metadata = EXCLUDED.metadata,
                version = EXCLUDED.version, transport_mode = EXCLUDED.transport_mode,
                join_code_key_id = coalesce(EXCLUDED.join_code_key_id, h.join_code_key_id),
                join_code_sealed = coalesce(EXCLUDED.join_code_sealed, h.join_code_sealed),
                updated_at = EXCLUDED.updated_at
            RETURNING {_SESSION_COLS}""",
        {"pb": tenant.private_beach_id, "hs": reg.host_session_id, "harness_id": op.event_id("harness"),
         "harness_type": reg.harness_type, "caps": _jsonb(list(reg.capabilities)),
         "hint": reg.location_hint, "metadata": _jsonb(reg.metadata), "version": reg.version,
         "mode": reg.transport_mode, "state": AttachState.REGISTERED.value, "kid": sealed[0],
         "sealed": sealed[1], "now": ts(now_ms)})
    return _session(await cur.fetchone())


async def upsert_attached(conn, cipher: JoinCodeCipher, tenant: Tenant, host_session_id: str,
                          join_code: str, op: Op, now_ms: int) -> Session:
    await _ensure_beach(conn, tenant)
    kid, sealed = cipher.encrypt(join_code, tenant.private_beach_id, host_session_id)
    cur = await conn.execute(
        f"""INSERT INTO {S}.host_session (private_beach_id, host_session_id, harness_id, attach_method,
                attach_state, join_code_key_id, join_code_sealed, created_at, updated_at)
            VALUES (%(pb)s, %(hs)s, %(harness_id)s, 'code', %(state)s, %(kid)s, %(sealed)s, %(now)s, %(now)s)
            ON CONFLICT (private_beach_id, host_session_id) DO UPDATE SET
                attach_method = 'code', attach_state = EXCLUDED.attach_state,
                join_code_key_id = EXCLUDED.join_code_key_id, join_code_sealed = EXCLUDED.join_code_sealed,
                updated_at = EXCLUDED.updated_at
            RETURNING {_SESSION_COLS}""",
        {"pb": tenant.private_beach_id, "hs": host_session_id, "harness_id": op.event_id("harness"),
         "state": AttachState.PENDING_ATTACH.value, "kid": kid, "sealed": sealed, "now": ts(now_ms)})
    return _session(await cur.fetchone())


async def set_attach_state(conn, tenant: Tenant, host_session_id: str, state: AttachState,
                           now_ms: int) -> bool:
    cur = await conn.execute(
        f"UPDATE {S}.host_session SET attach_state = %s, updated_at = %s "
        f"WHERE private_beach_id = %s AND host_session_id = %s",
        (AttachState(state).value, ts(now_ms), tenant.private_beach_id, host_session_id))
    return cur.rowcount == 1


async def get_session(conn, tenant: Tenant, host_session_id: str, lock: bool = False) -> Session | None:
    cur = await conn.execute(
        f"SELECT {_SESSION_COLS} FROM {S}.host_session WHERE private_beach_id = %s AND host_session_id = %s"
        + (" FOR UPDATE" if lock else ""), (tenant.private_beach_id, host_session_id))
    row = await cur.fetchone()
    return _session(row) if row else None


async def list_sessions(conn, tenant: Tenant) -> list[Session]:
    cur = await conn.execute(
        f"SELECT {_SESSION_COLS} FROM {S}.host_session WHERE private_beach_id = %s "
        f"ORDER BY created_at, host_session_id", (tenant.private_beach_id,))
    return [_session(r) for r in await cur.fetchall()]


async def session_beaches(conn, host_session_id: str) -> Collect[list[str]]:
    """Pipelined (see :meth:`PostgresStore._tx`)."""
    cur = await conn.execute(f"SELECT * FROM {S}.session_beaches(%s)", (host_session_id,))

    async def collect() -> list[str]:
        return [r[0] for r in await cur.fetchall()]

    return collect


async def _answer(value: T) -> T:
    return value


async def join_code(conn, cipher: JoinCodeCipher, tenant: Tenant, host_session_id: str) -> str | None:
    cur = await conn.execute(
        f"SELECT join_code_key_id, join_code_sealed FROM {S}.host_session "
        f"WHERE private_beach_id = %s AND host_session_id = %s", (tenant.private_beach_id, host_session_id))
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return cipher.decrypt(row[0], bytes(row[1]), tenant.private_beach_id, host_session_id)


# -- events ---------------------------------------------------------------------

async def add_event(conn, tenant: Tenant, host_session_id: str, op: Op, kind: str, event_type: str,
                    now_ms: int, lease: Lease | None = None, reason: str | None = None) -> None:
    await conn.execute(
        f"""INSERT INTO {S}.controller_event (id, private_beach_id, host_session_id, event_type,
                controller_token, reason, controller_account_id, issued_by_account_id, occurred_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
        (op.event_id(kind), tenant.private_beach_id, host_session_id, event_type,
         lease.token if lease else None,
         reason if reason is not None else (lease.reason if lease else None),
         lease.controller_account_id if lease else None,
         lease.issued_by_account_id if lease else tenant.account_id, ts(now_ms)))


async def controller_events(conn, tenant: Tenant, host_session_id: str, event_type: str | None,
                            since_ms: int | None, limit: int) -> list[ControllerEvent]:
    cur = await conn.execute(
        f"""SELECT id, host_session_id, event_type, occurred_at, controller_token, reason,
                   controller_account_id, issued_by_account_id
            FROM {S}.controller_event
            WHERE private_beach_id = %s AND host_session_id = %s
              AND (%s::text IS NULL OR event_type = %s)
              AND (%s::timestamptz IS NULL OR occurred_at >= %s)
            ORDER BY occurred_at DESC, seq DESC LIMIT %s""",
        (tenant.private_beach_id, host_session_id, event_type, event_type,
         ts(since_ms) if since_ms is not None else None, ts(since_ms) if since_ms is not None else None,
         limit))
    return [ControllerEvent(id=str(r[0]), host_session_id=r[1], event_type=r[2], occurred_at_ms=ms(r[3]),
                            controller_token=str(r[4]) if r[4] else None, reason=r[5],
                            controller_account_id=r[6], issued_by_account_id=r[7])
            for r in await cur.fetchall()]


# -- leases ---------------------------------------------------------------------

async def revoke_for_register(conn, tenant: Tenant, host_session_id: str, now_ms: int) -> int:
    """Revoke every live lease except the tenant account's own registration lease."""
    cur = await conn.execute(
        f"""UPDATE {S}.controller_lease SET revoked_at = %s, revoke_reason = 'session_register'
            WHERE private_beach_id = %s AND host_session_id = %s AND revoked_at IS NULL
              AND NOT (controller_account_id IS NOT DISTINCT FROM %s AND reason IS NOT DISTINCT FROM %s)""",
        (ts(now_ms), tenant.private_beach_id, host_session_id, tenant.account_id, REGISTER_REASON))
    return cur.rowcount


async def acquire_lease(conn, tenant: Tenant, host_session_id: str, account: str | None,
                        reason: str | None, ttl_ms: int, op: Op, now_ms: int) -> Lease:
    """Renew or issue; the caller holds the session row lock (serialises acquires per session).
    The natural key compares as the unique index does: NULL and '' are the same account or
    reason (else an acquire with reason '' after one with none would hit the index)."""
    cur = await conn.execute(
        f"""SELECT {_LEASE_COLS} FROM {S}.controller_lease
            WHERE private_beach_id = %s AND host_session_id = %s AND revoked_at IS NULL
              AND coalesce(controller_account_id, '') = coalesce(%s::text, '')
              AND coalesce(reason, '') = coalesce(%s::text, '')""",
        (tenant.private_beach_id, host_session_id, account, reason))
    row = await cur.fetchone()
    current = _lease(row) if row else None
    if current is not None and current.expires_at_ms > now_ms:
        cur = await conn.execute(
            f"UPDATE {S}.controller_lease SET issued_at = %s, expires_at = %s WHERE token = %s "
            f"RETURNING {_LEASE_COLS}", (ts(now_ms), ts(now_ms + ttl_ms), current.token))
        lease = _lease(await cur.fetchone())
    else:
        if current is not None:
            await conn.execute(
                f"UPDATE {S}.controller_lease SET revoked_at = expires_at, revoke_reason = 'expired' "
                f"WHERE token = %s", (current.token,))
            await add_event(conn, tenant, host_session_id, op, "lease_expired", "lease_expired", now_ms,
                            lease=current)
        cur = await conn.execute(
            f"""INSERT INTO {S}.controller_lease (token, private_beach_id, host_session_id,
                    controller_account_id, issued_by_account_id, reason, issued_at, expires_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_LEASE_COLS}""",
            (op.token, tenant.private_beach_id, host_session_id, account, tenant.account_id, reason,
             ts(now_ms), ts(now_ms + ttl_ms)))
        lease = _lease(await cur.fetchone())
    await add_event(conn, tenant, host_session_id, op, "lease_acquired", "lease_acquired", now_ms, lease=lease)
    return lease


async def release_lease(conn, tenant: Tenant, host_session_id: str, token: str, op: Op,
                        now_ms: int) -> ReleaseOutcome:
    if await get_session(conn, tenant, host_session_id, lock=True) is None:
        raise SessionNotFound(host_session_id)
    parsed = parse_token(token)
    if parsed is None:
        return ReleaseOutcome.UNKNOWN
    cur = await conn.execute(
        f"""UPDATE {S}.controller_lease SET revoked_at = %(now)s, revoke_reason = 'released',
                expires_at = least(expires_at, %(now)s)
            WHERE private_beach_id = %(pb)s AND host_session_id = %(hs)s AND token = %(token)s
              AND revoked_at IS NULL
            RETURNING {_LEASE_COLS}""",
        {"now": ts(now_ms), "pb": tenant.private_beach_id, "hs": host_session_id, "token": parsed})
    row = await cur.fetchone()
    if row is not None:
        await add_event(conn, tenant, host_session_id, op, "lease_released", "lease_released", now_ms,
                        lease=_lease(row))
        return ReleaseOutcome.RELEASED
    return ReleaseOutcome.ALREADY_RELEASED if await find_lease(conn, tenant, host_session_id, token) \
        else ReleaseOutcome.UNKNOWN


async def find_lease(conn, tenant: Tenant, host_session_id: str, token: str) -> Lease | None:
    return await (await find_lease_later(conn, tenant, host_session_id, token))()


async def find_lease_later(conn, tenant: Tenant, host_session_id: str, token: str) -> Collect[Lease | None]:
    """Pipelined form of :func:`find_lease`."""
    parsed = parse_token(token)
    if parsed is None:
        return lambda: _answer(None)
    cur = await conn.execute(
        f"SELECT {_LEASE_COLS} FROM {S}.controller_lease "
        f"WHERE private_beach_id = %s AND host_session_id = %s AND token = %s",
        (tenant.private_beach_id, host_session_id, parsed))

    async def collect() -> Lease | None:
        row = await cur.fetchone()
        return _lease(row) if row else None

    return collect


async def live_leases(conn, tenant: Tenant, now_ms: int) -> list[Lease]:
    cur = await conn.execute(
        f"SELECT {_LEASE_COLS} FROM {S}.controller_lease "
        f"WHERE private_beach_id = %s AND revoked_at IS NULL AND expires_at > %s "
        f"ORDER BY expires_at DESC, token", (tenant.private_beach_id, ts(now_ms)))
    return [_lease(r) for r in await cur.fetchall()]


# -- action log -----------------------------------------------------------------

async def record_action(conn, tenant: Tenant, action: ActionRecord) -> bool:
    from psycopg.types.json import Jsonb

    if await get_session(conn, tenant, action.host_session_id) is None:
        raise SessionNotFound(action.host_session_id)
    cur = await conn.execute(
        f"""INSERT INTO {S}.action_log (private_beach_id, host_session_id, action_id, controller_token,
                action_type, payload, status, enqueued_at, acked_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (private_beach_id, host_session_id, action_id) DO NOTHING""",
        (tenant.private_beach_id, action.host_session_id, action.action_id,
         parse_token(action.controller_token) if action.controller_token else None, action.action_type,
         Jsonb(action.payload), action.status, ts(action.enqueued_at_ms),
         ts(action.acked_at_ms) if action.acked_at_ms is not None else None))
    return cur.rowcount == 1


_RECORD_ACTIONS = f"""
WITH r AS (
    SELECT * FROM unnest(%(hs)s::text[], %(aid)s::text[], %(tok)s::uuid[], %(typ)s::text[],
                         %(payload)s::jsonb[], %(status)s::text[], %(enq)s::timestamptz[],
                         %(ack)s::timestamptz[])
        AS r(hs, aid, tok, typ, payload, status, enq, ack)
), known AS (
    SELECT host_session_id FROM {S}.host_session
    WHERE private_beach_id = %(pb)s AND host_session_id = ANY(%(hosts)s::text[])
), ins AS (
    INSERT INTO {S}.action_log (private_beach_id, host_session_id, action_id, controller_token,
        action_type, payload, status, enqueued_at, acked_at)
    SELECT %(pb)s, r.hs, r.aid, r.tok, r.typ, r.payload, r.status, r.enq, r.ack
    FROM r JOIN known ON known.host_session_id = r.hs
    ORDER BY r.hs, r.aid
    ON CONFLICT (private_beach_id, host_session_id, action_id) DO NOTHING
    RETURNING host_session_id, action_id
)
SELECT true, host_session_id, action_id FROM ins
UNION ALL SELECT false, host_session_id, NULL FROM known"""


async def record_actions(conn, tenant: Tenant, records: list[ActionRecord]) -> Collect[list[ActionLogged]]:
    """One statement for the whole batch: sessions the tenant holds, the rows inserted.
    Pipelined (see :meth:`PostgresStore._tx`)."""
    rows = _unique_rows(records)
    if not rows:
        return lambda: _answer([])
    cur = await conn.execute(_RECORD_ACTIONS, {
        "pb": tenant.private_beach_id, "hosts": sorted({r.host_session_id for r in rows}),
        **_columns(rows)})

    async def collect() -> list[ActionLogged]:
        inserted: set[tuple[str, str]] = set()
        known: set[str] = set()
        for was_inserted, hs, aid in await cur.fetchall():
            if was_inserted:
                inserted.add((hs, aid))
            else:
                known.add(hs)
        return outcomes(records, known, inserted)

    return collect


_RECORD_ACTION_GROUPS = f"""
SELECT o_group, o_inserted, o_host, o_action FROM {S}.record_action_groups(
    %(pb)s::text[], %(n)s::integer[], %(hs)s::text[], %(aid)s::text[], %(tok)s::uuid[],
    %(typ)s::text[], %(payload)s::jsonb[], %(status)s::text[], %(enq)s::timestamptz[],
    %(ack)s::timestamptz[])"""


def _unique_rows(records: list[ActionRecord]) -> list[ActionRecord]:
    """The first record of each key, in key order (the insert's lock order)."""
    first: dict[tuple[str, str], ActionRecord] = {}
    for r in records:
        first.setdefault((r.host_session_id, r.action_id), r)
    return sorted(first.values(), key=lambda r: (r.host_session_id, r.action_id))


def _columns(rows: list[ActionRecord]) -> dict[str, list[Any]]:
    """The action-log columns of *rows*, one array each (the statements unnest them)."""
    from psycopg.types.json import Jsonb

    return {
        "hs": [r.host_session_id for r in rows], "aid": [r.action_id for r in rows],
        "tok": [parse_token(r.controller_token) if r.controller_token else None for r in rows],
        "typ": [r.action_type for r in rows], "payload": [Jsonb(r.payload) for r in rows],
        "status": [r.status for r in rows], "enq": [ts(r.enqueued_at_ms) for r in rows],
        "ack": [ts(r.acked_at_ms) if r.acked_at_ms is not None else None for r in rows]}


async def record_actions_by_beach(conn, groups: list[tuple[Tenant, list[ActionRecord]]]
                                  ) -> Collect[list[list[ActionLogged]]]:
    """All groups in one statement (``record_action_groups``, migration 0004), each written
    under its own tenant setting: row security sees every insert with the beach it is for.
    Pipelined (see :meth:`PostgresStore._tx`)."""
    rows_of = [_unique_rows(records) for _, records in groups]
    cur = await conn.execute(_RECORD_ACTION_GROUPS, {
        "pb": [tenant.private_beach_id for tenant, _ in groups], "n": [len(g) for g in rows_of],
        **_columns([r for group in rows_of for r in group])})

    async def collect() -> list[list[ActionLogged]]:
        inserted: list[set[tuple[str, str]]] = [set() for _ in groups]
        known: list[set[str]] = [set() for _ in groups]
        for group, was_inserted, hs, aid in await cur.fetchall():
            if was_inserted:
                inserted[group - 1].add((hs, aid))
            else:
                known[group - 1].add(hs)
        return [outcomes(records, known[i], inserted[i]) for i, (_, records) in enumerate(groups)]

    return collect


def outcomes(records: list[ActionRecord], known: set[str],
             inserted: set[tuple[str, str]]) -> list[ActionLogged]:
    """One outcome per record: the first of a key that was inserted is STORED, later ones
    DUPLICATE (shared with the in-memory twin)."""
    out = []
    for r in records:
        key = (r.host_session_id, r.action_id)
        if r.host_session_id not in known:
            out.append(ActionLogged.NO_SESSION)
        elif key in inserted:
            inserted.discard(key)
            out.append(ActionLogged.STORED)
        else:
            out.append(ActionLogged.DUPLICATE)
    return out
