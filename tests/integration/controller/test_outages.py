"""A short PostgreSQL outage loses no ack: acks wait (bounded buffer, retried) and their queue
entries stay until the action log has them."""

import json
import uuid

import psycopg
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.support.eventually import eventually
from tests.support.servers import least_privilege_login, throwaway_postgres

from .test_actions_api import FakeHostBus, ack, cmd, session_with_lease


@pytest_twisted.ensureDeferred
async def test_postgres_outage_loses_no_ack():
    from tests.support.api_client import start_manager

    with throwaway_postgres() as pg, least_privilege_login(pg.url) as login_url:
        bus = FakeHostBus()
        mgr = await start_manager(auth_bypass=True, database_url=login_url,
                                  database_migrate_url=pg.url, publisher=bus)
        bus.events = mgr.parts.events
        try:
            controller = mgr.parts.controller
            await controller.whenReady()
            host = "host-" + uuid.uuid4().hex[:8]
            tenant, token = await session_with_lease(mgr, host)
            bus.up(host)
            r = await mgr.call("POST", f"/sessions/{host}/actions",
                               body={"controller_token": token, "actions": [cmd(i) for i in range(3)]})
            assert r.status == 200 and bus.ids(host) == ["a-0", "a-1", "a-2"]

            pg.stop()
            for i in range(3):
                controller.ingest.ack_value(host, ack(i))
            await deferLater(reactor, 2.0, lambda: None)  # a stretch of outage (a duration, not a wait for an event)
            # held and retried (by the store, then by the writer), never dropped
            assert controller.writer.written == 0 and controller.writer.status()["buffered"] == 3
            assert await controller.queue.depth(host) == 3  # still queued: a crash now loses nothing

            pg.start()
            await eventually(lambda: controller.writer.written == 3, timeout=20,
                             what="the held acks written once PostgreSQL is back")
            assert controller.writer.written == 3 and await controller.queue.depth(host) == 0
            with psycopg.connect(pg.url) as conn:
                rows = conn.execute(
                    "SELECT action_id, status, payload FROM beach_manager.action_log "
                    "WHERE private_beach_id = %s AND host_session_id = %s ORDER BY action_id",
                    (tenant.private_beach_id, host)).fetchall()
            assert [(a, s) for a, s, _ in rows] == [("a-0", "ok"), ("a-1", "ok"), ("a-2", "ok")]
            assert json.loads(json.dumps(rows[0][2])) == {"bytes": "echo MARK-0\r"}
        finally:
            await mgr.stop()
