"""The membership statements (asyncio, psycopg), inside a transaction scoped to one tenant by
:func:`~beachmanager.registry.repository.enter_tenant`; row-level security applies."""

from __future__ import annotations

from .members import ACTIVE, Beach, BeachExists, Member
from .repository import Collect, ms, ts
from .store import Tenant

S = "beach_manager"
_MEMBER_COLS = ("private_beach_id, account_id, role, status, invited_by_account_id, created_at, "
                "updated_at")


def _member(row) -> Member:
    pb, account, role, status, invited_by, created_at, updated_at = row
    return Member(pb, account, role, status, invited_by, ms(created_at), ms(updated_at))


async def create_beach(conn, tenant: Tenant, name: str | None, now_ms: int) -> Beach:
    cur = await conn.execute(
        f"""INSERT INTO {S}.private_beach (id, name, owner_account_id, created_at)
            VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING
            RETURNING id, name, owner_account_id, created_by_account_id, created_at""",
        (tenant.private_beach_id, name, tenant.account_id, ts(now_ms)))
    row = await cur.fetchone()
    if row is None:
        raise BeachExists(tenant.private_beach_id)
    return Beach(row[0], row[1], row[2], row[3], ms(row[4]))


async def get_beach(conn, tenant: Tenant) -> Beach | None:
    cur = await conn.execute(
        f"SELECT id, name, owner_account_id, created_by_account_id, created_at "
        f"FROM {S}.private_beach WHERE id = %s", (tenant.private_beach_id,))
    row = await cur.fetchone()
    return Beach(row[0], row[1], row[2], row[3], ms(row[4])) if row else None


async def member_role(conn, tenant: Tenant) -> Collect[str | None]:
    """Pipelined (see ``PostgresStore._tx``): one statement, read after the commit."""
    cur = await conn.execute(
        f"""SELECT CASE WHEN b.owner_account_id = %(a)s THEN 'owner' ELSE m.role END
            FROM {S}.private_beach b
            LEFT JOIN {S}.private_beach_membership m
              ON m.private_beach_id = b.id AND m.account_id = %(a)s AND m.status = %(active)s
            WHERE b.id = %(pb)s""",
        {"a": tenant.account_id, "pb": tenant.private_beach_id, "active": ACTIVE})

    async def collect() -> str | None:
        row = await cur.fetchone()
        return row[0] if row else None

    return collect


async def list_members(conn, tenant: Tenant) -> list[Member]:
    cur = await conn.execute(
        f"SELECT {_MEMBER_COLS} FROM {S}.private_beach_membership WHERE private_beach_id = %s "
        f"ORDER BY account_id", (tenant.private_beach_id,))
    return [_member(r) for r in await cur.fetchall()]


async def put_member(conn, tenant: Tenant, account_id: str, role: str, status: str,
                     now_ms: int) -> Member:
    await conn.execute(f"INSERT INTO {S}.private_beach (id) VALUES (%s) ON CONFLICT (id) DO NOTHING",
                       (tenant.private_beach_id,))
    cur = await conn.execute(
        f"""INSERT INTO {S}.private_beach_membership (private_beach_id, account_id, role, status,
                created_at, updated_at)
            VALUES (%(pb)s, %(a)s, %(role)s, %(status)s, %(now)s, %(now)s)
            ON CONFLICT (private_beach_id, account_id) DO UPDATE SET
                role = EXCLUDED.role, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
            RETURNING {_MEMBER_COLS}""",
        {"pb": tenant.private_beach_id, "a": account_id, "role": role, "status": status,
         "now": ts(now_ms)})
    return _member(await cur.fetchone())


async def remove_member(conn, tenant: Tenant, account_id: str) -> bool:
    cur = await conn.execute(
        f"DELETE FROM {S}.private_beach_membership WHERE private_beach_id = %s AND account_id = %s",
        (tenant.private_beach_id, account_id))
    return cur.rowcount == 1
