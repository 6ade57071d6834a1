"""The pool checks only connections that sat idle; a recently used connection that died
anyway (the server dropped it) costs one retried attempt, never a failed call."""

import psycopg
import pytest_twisted
from psycopg_pool import AsyncConnectionPool
from twisted.internet import reactor

from beachmanager.registry.postgres import PostgresStore
from beachmanager.registry.store import Op, SessionRegistration, Tenant

A = Tenant("pb-a", "acct-a")
NOW = 1_700_000_000_000


async def one_connection_pool(database, clock):
    from beachmanager.registry.migrate import enter_app_role, migrate_in_thread
    from beachmanager.registry.postgres_conn import PostgresService

    svc = PostgresService(database, clock, max_size=1, prepare=lambda: migrate_in_thread(database),
                          configure=enter_app_role)
    svc.startService()
    await svc.whenReady()
    return svc


def count_checks(monkeypatch) -> list:
    checks = []
    plain = AsyncConnectionPool.check_connection

    async def counted(conn):
        checks.append(conn)
        await plain(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted))
    return checks


@pytest_twisted.ensureDeferred
async def test_recently_used_connections_skip_the_check_and_dead_ones_are_retried(database, cipher,
                                                                                  monkeypatch):
    checks = count_checks(monkeypatch)
    svc = await one_connection_pool(database, reactor)
    try:
        store = PostgresStore(svc, cipher, reactor)
        await store.register_session(A, SessionRegistration("h1"), Op.new(), NOW)
        before = len(checks)
        for _ in range(20):
            assert (await store.get_session(A, "h1")).host_session_id == "h1"
        assert len(checks) == before  # used a moment ago: no extra round trip

        with psycopg.connect(database, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) t").fetchone()[0]
        assert killed >= 1
        assert (await store.get_session(A, "h1")).host_session_id == "h1"  # retried, answered
        assert store.retries >= 1 and store.unavailable == 0
    finally:
        await svc.stopService()


@pytest_twisted.ensureDeferred
async def test_idle_connections_are_checked(database, cipher, monkeypatch):
    from twisted.internet.task import Clock

    from beachmanager.registry.postgres_conn import IDLE_CHECK

    checks = count_checks(monkeypatch)
    clock = Clock()  # the pool's idle rule runs on this clock; retries on the reactor
    svc = await one_connection_pool(database, clock)
    try:
        store = PostgresStore(svc, cipher, reactor)
        await store.register_session(A, SessionRegistration("h1"), Op.new(), NOW)
        n = len(checks)
        await store.get_session(A, "h1")
        assert len(checks) == n
        clock.advance(IDLE_CHECK + 0.1)
        await store.get_session(A, "h1")
        assert len(checks) == n + 1
    finally:
        await svc.stopService()
