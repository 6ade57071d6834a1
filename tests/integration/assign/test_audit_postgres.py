"""The assignment audit mirror on a real PostgreSQL, through the service's role (RLS applies)."""

from __future__ import annotations

import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.assign.audit import PostgresAudit
from beachmanager.assign.model import InstanceInfo, Move, Ownership
from beachmanager.registry.migrate import apply_migrations, enter_app_role
from beachmanager.registry.postgres_conn import PostgresService
from tests.support.eventually import eventually
from tests.support.servers import temporary_database, throwaway_postgres

T0 = 1_700_000_000_000


def rows(url, sql, *args):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


async def open_pool(url):
    pg = PostgresService(url, reactor, max_size=2, configure=enter_app_role)
    pg.startService()
    await pg.whenReady()
    return pg


@pytest.fixture
def database():
    with temporary_database() as url:
        apply_migrations(url)
        yield url


@pytest_twisted.ensureDeferred
async def test_instance_current_owner_and_history_are_written(database):
    pg = await open_pool(database)
    try:
        audit = PostgresAudit(pg)
        audit.note_instance(InstanceInfo("mgr-a", "http://a:8081", 50), 2, T0)
        audit.note_instance(InstanceInfo("mgr-b", "http://b:8081", 40), 0, T0)  # newest note wins
        audit.note_instance(InstanceInfo("mgr-a", "http://a:8081", 50), 2, T0 + 5)
        audit.note_owned([Ownership("h1", "mgr-a", T0, "attach", None),
                          Ownership("h2", "mgr-a", T0 + 1, "failover", "mgr-z")])
        audit.note_moves([Move("h1", "mgr-a", None, "attach", T0),
                          Move("h2", "mgr-a", "mgr-z", "failover", T0 + 1)], "mgr-a")
        assert await audit.flush() is True
        assert rows(database, "SELECT id, endpoint, capacity, load, "
                    "(extract(epoch FROM last_heartbeat_at) * 1000)::bigint "
                    "FROM beach_manager.manager_instance") == [("mgr-a", "http://a:8081", 50, 2, T0 + 5)]
        assert rows(database, "SELECT host_session_id, manager_instance_id, reassigned_from, reason "
                    "FROM beach_manager.manager_assignment ORDER BY 1") == [
            ("h1", "mgr-a", None, "attach"), ("h2", "mgr-a", "mgr-z", "failover")]

        # A stale write (older assigned_at) never overwrites a newer owner ...
        audit.note_instance(InstanceInfo("mgr-b", "http://b:8081", 40), 1, T0 + 9)
        audit.note_owned([Ownership("h1", "mgr-b", T0 + 10, "drain", "mgr-a")])
        await audit.flush()
        audit.note_instance(InstanceInfo("mgr-a", "http://a:8081", 50), 1, T0 + 11)
        audit.note_owned([Ownership("h1", "mgr-a", T0, "attach", None)])
        # ... a repeated history entry is written once, and a release deletes only its own row.
        audit.note_moves([Move("h1", "mgr-a", None, "attach", T0),
                          Move("h2", None, "mgr-a", "release", T0 + 12)], "mgr-a")
        await audit.flush()
        assert rows(database, "SELECT host_session_id, manager_instance_id, reason "
                    "FROM beach_manager.manager_assignment") == [("h1", "mgr-b", "drain")]
        assert rows(database, "SELECT host_session_id, manager_instance_id, reassigned_from, reason, "
                    "recorded_by FROM beach_manager.manager_assignment_event ORDER BY id") == [
            ("h1", "mgr-a", None, "attach", "mgr-a"), ("h2", "mgr-a", "mgr-z", "failover", "mgr-a"),
            ("h2", None, "mgr-a", "release", "mgr-a")]
    finally:
        await pg.stopService()


@pytest_twisted.ensureDeferred
async def test_writes_wait_through_a_database_restart():
    with throwaway_postgres() as server:
        apply_migrations(server.url)
        pg = await open_pool(server.url)
        try:
            audit = PostgresAudit(pg, pool_wait=0.5)
            audit.note_instance(InstanceInfo("mgr-a", "http://a", 5), 0, T0)
            assert await audit.flush()
            server.stop()
            audit.note_instance(InstanceInfo("mgr-a", "http://a", 5), 1, T0 + 1)
            audit.note_owned([Ownership("h1", "mgr-a", T0 + 1, "attach", None)])
            audit.note_moves([Move("h1", "mgr-a", None, "attach", T0 + 1)], "mgr-a")
            assert await audit.flush() is False
            assert audit.status()["pending"] == 2 and "error" in audit.status()
            server.start()
            await eventually(audit.flush, timeout=20,  # the pool reconnects on its own
                             what="the pending audit written once PostgreSQL is back")
            assert audit.status() == {"store": "postgres", "pending": 0, "dropped_events": 0}
            assert rows(server.url, "SELECT host_session_id, manager_instance_id "
                        "FROM beach_manager.manager_assignment") == [("h1", "mgr-a")]
            assert rows(server.url, "SELECT count(*) FROM beach_manager.manager_assignment_event") == [(1,)]
        finally:
            await pg.stopService()
