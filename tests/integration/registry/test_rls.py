"""Migrations from empty, and row-level security probed with direct SQL as the service's role."""

import contextlib
import uuid

import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
from beachmanager.registry.migrate import APP_ROLE, SCHEMA, apply_migrations
from beachmanager.registry.postgres import PostgresStore
from beachmanager.registry.store import ActionRecord, Op, SessionRegistration, Tenant

TENANT_TABLES = ("private_beach", "host_session", "controller_lease", "controller_event", "action_log",
                 "private_beach_membership")
NOW = 1_700_000_000_000


@contextlib.contextmanager
def login_role(database):
    """A fresh login role that is a member of the app role (not superuser); yields its URL."""
    name = "beach_svc_" + uuid.uuid4().hex[:10]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER IN ROLE {APP_ROLE}")
    try:
        yield database.replace("postgres@", f"{name}@", 1)
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {name}")


def as_app(url, beach=None, account=None):
    """A connection acting exactly like the service: SET ROLE, then the transaction-local tenant."""
    conn = psycopg.connect(url)
    conn.execute(f"SET ROLE {APP_ROLE}")
    if beach is not None:
        conn.execute("SELECT set_config('beach.private_beach_id', %s, true), "
                     "set_config('beach.account_id', %s, true)", (beach, account or ""))
    return conn


def test_migrations_from_empty_and_again(database):
    applied = apply_migrations(database)
    assert applied[0] == "0001.initial-schema" and applied == sorted(applied)
    assert apply_migrations(database) == []
    with psycopg.connect(database) as conn:
        tables = dict(conn.execute(
            "SELECT tablename, rowsecurity FROM pg_tables WHERE schemaname = %s", (SCHEMA,)).fetchall())
        owners = {r[0] for r in conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s", (SCHEMA,)).fetchall()}
        role = conn.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (APP_ROLE,)).fetchone()
    for table in TENANT_TABLES:
        assert tables[table] is True, f"{table} has no row-level security"
    assert {"manager_instance", "manager_assignment"} <= set(tables)
    assert APP_ROLE not in owners
    assert role == (False, False, False)


def test_the_first_migration_can_be_rolled_back_and_reapplied(database):
    from yoyo import get_backend, read_migrations

    from beachmanager.registry.migrate import migrations_path, yoyo_url

    apply_migrations(database)
    backend = get_backend(yoyo_url(database))
    try:
        migrations = read_migrations(migrations_path())
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(migrations))
    finally:
        backend.connection.close()
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()[0] == 0
    assert "0001.initial-schema" in apply_migrations(database)


SECRET = "PASSCODE-SECRET-1"


async def seed(pg) -> PostgresStore:
    store = PostgresStore(pg, JoinCodeCipher(JoinCodeKeys.generate()), reactor)
    for tenant, host in ((Tenant("pb-a", "acct-a"), "host-a"), (Tenant("pb-b", "acct-b"), "host-b")):
        await store.register_session(tenant, SessionRegistration(host, viewer_passcode=SECRET), Op.new(), NOW)
        await store.record_action(tenant, ActionRecord(host, "act-1", "t", {"n": 1}, NOW))
        # the batched path: the other tenant's host is skipped, never written under either tenant
        other = "host-b" if host == "host-a" else "host-a"
        outcome = await store.record_actions(tenant, [ActionRecord(host, "act-2", "t", None, NOW),
                                                      ActionRecord(other, "act-3", "t", None, NOW)])
        assert [str(o) for o in outcome] == ["stored", "no_session"]
        await store.put_member(tenant, "acct-m", "viewer", "active", NOW)
    return store


@pytest.mark.parametrize("mine, theirs", [("pb-a", "pb-b"), ("pb-b", "pb-a")])
@pytest_twisted.ensureDeferred
async def test_rls_denies_reads_and_writes_across_tenants_both_ways(pg, database, mine, theirs):
    await seed(pg)
    with as_app(database, mine, "acct-x") as conn:
        for table in TENANT_TABLES:
            key = "id" if table == "private_beach" else "private_beach_id"
            seen = {r[0] for r in conn.execute(f"SELECT {key} FROM {SCHEMA}.{table}").fetchall()}
            assert seen == {mine}, (table, seen)
        # updates and deletes of the other tenant's rows touch nothing
        cur = conn.execute(f"UPDATE {SCHEMA}.host_session SET version = 'x' WHERE private_beach_id = %s",
                           (theirs,))
        assert cur.rowcount == 0
        cur = conn.execute(f"UPDATE {SCHEMA}.controller_lease SET revoked_at = now(), revoke_reason = 'released' "
                           f"WHERE private_beach_id = %s", (theirs,))
        assert cur.rowcount == 0
        cur = conn.execute(f"UPDATE {SCHEMA}.action_log SET status = 'x' WHERE private_beach_id = %s", (theirs,))
        assert cur.rowcount == 0
        # moving one's own row into the other tenant is refused
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(f"UPDATE {SCHEMA}.host_session SET private_beach_id = %s WHERE private_beach_id = %s",
                         (theirs, mine))
    with as_app(database, mine) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(f"INSERT INTO {SCHEMA}.private_beach (id) VALUES (%s)", (theirs + "-new",))
    with as_app(database, mine) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                f"INSERT INTO {SCHEMA}.controller_event (id, private_beach_id, host_session_id, event_type, "
                f"occurred_at) VALUES (gen_random_uuid(), %s, %s, 'registered', now())",
                (theirs, "host-b" if theirs == "pb-b" else "host-a"))
    with as_app(database, mine) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {SCHEMA}.controller_event")  # not granted at all


@pytest_twisted.ensureDeferred
async def test_without_a_tenant_nothing_is_visible_and_the_owner_sees_all(pg, database):
    await seed(pg)
    with as_app(database) as conn:
        for table in TENANT_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()[0] == 0
        # the one cross-tenant lookup: ids only
        assert conn.execute(f"SELECT * FROM {SCHEMA}.session_beaches('host-a')").fetchall() == [("pb-a",)]
    with psycopg.connect(database) as conn:  # the owner (migrations) is not subject to the policies
        assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.host_session").fetchone()[0] == 2
        logged = conn.execute(f"SELECT private_beach_id, host_session_id, action_id FROM {SCHEMA}.action_log "
                              f"ORDER BY 1, 3").fetchall()
        assert logged == [("pb-a", "host-a", "act-1"), ("pb-a", "host-a", "act-2"),
                          ("pb-b", "host-b", "act-1"), ("pb-b", "host-b", "act-2")]


@pytest_twisted.ensureDeferred
async def test_join_codes_are_encrypted_at_rest(pg, database):
    store = await seed(pg)
    with psycopg.connect(database) as conn:
        rows = conn.execute(f"SELECT private_beach_id, join_code_key_id, join_code_sealed, "
                            f"row_to_json(h)::text FROM {SCHEMA}.host_session h").fetchall()
    assert len(rows) == 2
    for _pb, kid, sealed, whole_row in rows:
        assert kid == store.cipher.current_id
        assert SECRET.encode() not in bytes(sealed) and SECRET not in whole_row
    # a sealed code moved to another row does not decrypt (bound to its row)
    from beachmanager.registry.join_codes import JoinCodeError

    (_pb, kid, sealed, _), _ = rows
    with pytest.raises(JoinCodeError):
        store.cipher.decrypt(kid, bytes(sealed), "pb-other", "host-a")
    assert await store.join_code(Tenant("pb-a"), "host-a") == SECRET


@pytest_twisted.ensureDeferred
async def test_the_service_role_is_checked_at_start(pg):
    from beachmanager._aio import as_deferred
    from beachmanager.registry.service import _role_of

    role = await as_deferred(_role_of(pg.pool))
    assert role[:3] == (APP_ROLE, False, False) and role[3].startswith("beach_login_")
    assert role[4] is False  # the fixtures log in with least privilege, as deployed


@pytest_twisted.ensureDeferred
async def test_the_login_is_judged_least_privilege_or_not(pg, database):
    from beachmanager._aio import as_deferred
    from beachmanager.registry.roles import LOGIN_QUERY, login_problems
    from beachmanager.registry.service import _login_of

    name, problems = login_problems(await as_deferred(_login_of(pg.pool)))
    assert name.startswith("beach_login_") and problems == []
    with psycopg.connect(database) as conn:  # the owner's URL: the machine's superuser
        row = conn.execute(LOGIN_QUERY, {"app": APP_ROLE}).fetchone()
    name, problems = login_problems(row)
    assert name == "postgres" and problems[0] == "is a superuser"
    assert any(p.startswith("owns ") and "beach_manager." in p for p in problems)


@pytest_twisted.ensureDeferred
async def test_a_login_role_in_the_app_role_cannot_escape_rls(pg, database):
    """The recommended deployment: DATABASE_URL logs in as a member of the app role."""
    await seed(pg)
    with login_role(database) as url:
        with psycopg.connect(url) as conn:
            conn.execute(f"SET ROLE {APP_ROLE}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SET ROLE postgres")
        with psycopg.connect(url) as conn:  # even without SET ROLE: not an owner, so RLS applies
            assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.host_session").fetchone()[0] == 0
            conn.execute("SELECT set_config('beach.private_beach_id', 'pb-a', true)")
            assert conn.execute(f"SELECT host_session_id FROM {SCHEMA}.host_session").fetchall() == [("host-a",)]
