"""PostgreSQL restarts under load: every request is retried to success or answered 503, and
afterwards nothing acknowledged is missing and nothing is duplicated."""

import psycopg
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests.support.api_client import start_manager
from tests.support.eventually import eventually
from tests.support.servers import least_privilege_login, throwaway_postgres


async def register(m, i):
    return i, await m.call("POST", "/sessions/register", token=None,
                           body={"session_id": f"host-{i}", "private_beach_id": "pb-r"})


def counts(url):
    with psycopg.connect(url) as conn:
        sessions = dict(conn.execute(
            "SELECT host_session_id, count(*) FROM beach_manager.host_session GROUP BY 1").fetchall())
        leases = dict(conn.execute(
            "SELECT host_session_id, count(*) FROM beach_manager.controller_lease "
            "WHERE revoked_at IS NULL GROUP BY 1").fetchall())
        registered = dict(conn.execute(
            "SELECT host_session_id, count(*) FROM beach_manager.controller_event "
            "WHERE event_type = 'registered' GROUP BY 1").fetchall())
    return sessions, leases, registered


@pytest_twisted.ensureDeferred
async def test_restart_mid_run_retries_or_503_and_loses_nothing():
    with throwaway_postgres() as pg, least_privilege_login(pg.url) as login_url:
        m = await start_manager(database_url=login_url, database_migrate_url=pg.url, auth_bypass=True)
        try:
            # phase 1: a short restart while requests are in flight: they are retried through it
            replies = []

            async def load(start, count):
                for i in range(start, start + count):
                    replies.append(await register(m, i))
                    await deferLater(reactor, 0.02)  # paced: the load spans the restart

            running = gatherResults([ensureDeferred(load(k * 100, 40)) for k in range(3)])
            await eventually(lambda: len(replies) >= 6, what="the load to be under way")
            await deferToThread(pg.stop)
            await deferLater(reactor, 1.0)  # the restart's outage lasts 1 s (a duration)
            await deferToThread(pg.start)
            await running
            statuses = {r.status for _, r in replies}
            assert statuses <= {200, 503}, statuses
            ok = {i for i, r in replies if r.status == 200}
            assert len(ok) >= 100  # the retry budget (about 10 s) outlasts a 1 s restart
            store = m.parts.registry.store
            assert store.retries > 0  # the restart really hit requests in flight

            # phase 2: an outage longer than the retry budget is answered 503 with Retry-After
            store.attempts, store.pool_wait = 3, 0.5
            await deferToThread(pg.stop)
            down = await gatherResults([ensureDeferred(register(m, 900 + i)) for i in range(3)])
            assert store.unavailable >= 3
            for _, r in down:
                assert (r.status, r.error_code) == (503, "store_unavailable")
                assert r.headers.getRawHeaders("retry-after") == ["1"]
            await deferToThread(pg.start)
            store.attempts, store.pool_wait = 8, 2.0
            again = [await register(m, i) for i in sorted(ok)[:5]]
            assert all(r.status == 200 for _, r in again)
        finally:
            await m.stop()

        sessions, leases, registered = counts(pg.url.rsplit("/", 1)[0] + "/postgres")
        for i in ok:
            host = f"host-{i}"
            assert sessions.get(host) == 1, host  # acknowledged: present, once
            assert leases.get(host) == 1, host    # one live registration lease
            expected = 2 if i in sorted(ok)[:5] else 1
            assert registered.get(host) == expected, (host, registered.get(host))
        for i, r in replies + list(down):
            if r.status == 503:  # maybe committed before the connection dropped, never twice
                assert registered.get(f"host-{i}", 0) <= 1
