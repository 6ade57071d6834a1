"""The API on PostgreSQL as deployed: DATABASE_URL logs in as a member of the app role,
DATABASE_MIGRATE_URL is the owner; tenants stay apart through the HTTP API too."""

import base64
import os
import uuid

import psycopg
import pytest
import pytest_twisted

from beachmanager.registry.join_codes import parse_keys
from beachmanager.service import FatalStartupError
from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings
from tests.support.servers import (
    least_privilege_database,
    least_privilege_login,
    temporary_database,
)


@pytest.fixture
def urls():
    with least_privilege_database() as (owner_url, login_url):
        yield owner_url, login_url


def key():
    return parse_keys(base64.b64encode(os.urandom(32)).decode())  # (defaults() takes parsed values)


@pytest_twisted.ensureDeferred
async def test_api_on_postgres_with_a_login_role(urls, jwks, gate):
    owner_url, app_url = urls
    m = await start_manager(database_url=app_url, database_migrate_url=owner_url, join_code_key=key(),
                            beach_env="production", **auth_settings(jwks))
    try:
        assert m.root.readiness()[1]["registry"]["store"] == "postgres"
        a, b = gate.token(private_beach_id="pb-a"), gate.token(private_beach_id="pb-b")
        for token, pb in ((a, "pb-a"), (b, "pb-b")):
            r = await m.call("POST", "/sessions/register", token=token,
                             body={"session_id": f"host-{pb}", "private_beach_id": pb, "viewer_passcode": "VP-1"})
            assert r.status == 200, r.body
        r = await m.call("GET", "/private-beaches/pb-a/sessions", token=a)
        assert [s["session_id"] for s in r.body] == ["host-pb-a"]
        r = await m.call("GET", "/private-beaches/pb-b/sessions", token=a)
        assert (r.status, r.error_code) == (403, "wrong_private_beach")
        r = await m.call("POST", "/sessions/host-pb-b/controller/lease", token=a, body={})
        assert (r.status, r.error_code) == (404, "session_not_found")
        lease = await m.call("POST", "/sessions/host-pb-a/controller/lease", token=a, body={"reason": "ui"})
        assert lease.status == 200
        r = await m.call("DELETE", "/sessions/host-pb-a/controller/lease", token=a,
                         body={"controller_token": lease.body["controller_token"]})
        assert r.body == {"released": True}
        r = await m.call("DELETE", "/sessions/host-pb-a/controller/lease", token=a,
                         body={"controller_token": str(uuid.uuid4())})
        assert (r.status, r.error_code) == (409, "controller_mismatch")
        r = await m.call("GET", "/sessions/host-pb-a/controller-events", token=a)
        assert [e["event_type"] for e in r.body][:2] == ["lease_released", "lease_acquired"]
    finally:
        await m.stop()
    with psycopg.connect(owner_url) as conn:
        sealed = conn.execute("SELECT join_code_sealed FROM beach_manager.host_session").fetchall()
    assert len(sealed) == 2 and all(b"VP-1" not in bytes(s) for (s,) in sealed)


@pytest_twisted.ensureDeferred
async def test_production_refuses_a_superuser_or_a_table_owner_in_one_line(urls):
    owner_url, app_url = urls
    for settings in ({"database_url": owner_url}, {"database_url": owner_url, "database_migrate_url": owner_url}):
        with pytest.raises(FatalStartupError) as refused:
            await start_manager(join_code_key=key(), beach_env="production", **settings)
        line = str(refused.value)
        assert "\n" not in line and line.startswith("DATABASE_URL logs in as 'postgres', which is a superuser")
        assert "DATABASE_MIGRATE_URL" in line
    with pytest.raises(Exception, match="BEACH_MANAGER_JOIN_CODE_KEY is required"):
        await start_manager(database_url=app_url, database_migrate_url=owner_url, beach_env="production")
    # a login that owns a table (here one of the schema's) is refused too
    with least_privilege_login(owner_url) as owning_url:
        login = owning_url.split("//", 1)[1].split("@", 1)[0]
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE beach_manager.action_log OWNER TO {login}")
        try:
            with pytest.raises(FatalStartupError, match=r"owns 1 table\(s\) \(e\.g\. beach_manager\.action_log\)"):
                await start_manager(database_url=owning_url, database_migrate_url=owner_url,
                                    join_code_key=key(), beach_env="production")
        finally:
            with psycopg.connect(owner_url, autocommit=True) as conn:
                conn.execute("ALTER TABLE beach_manager.action_log OWNER TO postgres")
    # outside production the same login only warns, and a least-privilege one cannot migrate
    m = await start_manager(database_url=owner_url, join_code_key=key())
    await m.stop()
    with temporary_database() as fresh, least_privilege_login(fresh) as login_url:
        with pytest.raises(Exception, match="schema migrations need the schema owner"):
            await start_manager(database_url=login_url, join_code_key=key())
