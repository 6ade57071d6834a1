"""The API on PostgreSQL as deployed: DATABASE_URL logs in as a member of the app role,
DATABASE_MIGRATE_URL is the owner; tenants stay apart through the HTTP API too."""

import base64
import os
import uuid

import psycopg
import pytest
import pytest_twisted

from beachmanager.registry.join_codes import parse_keys
from beachmanager.registry.migrate import APP_ROLE, apply_migrations
from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings
from tests.support.servers import temporary_database


@pytest.fixture
def urls():
    with temporary_database() as owner_url:
        apply_migrations(owner_url)  # the role exists before the login role joins it
        name = "beach_svc_" + uuid.uuid4().hex[:10]
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER IN ROLE {APP_ROLE}")
        try:
            yield owner_url, owner_url.replace("postgres@", f"{name}@", 1)
        finally:
            with psycopg.connect(owner_url, autocommit=True) as conn:
                conn.execute(f"DROP ROLE {name}")


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
async def test_production_refuses_a_superuser_session_and_a_missing_key(urls):
    owner_url, _ = urls
    with pytest.raises(Exception, match="superuser"):
        await start_manager(database_url=owner_url, join_code_key=key(), beach_env="production")
    with pytest.raises(Exception, match="BEACH_MANAGER_JOIN_CODE_KEY is required"):
        await start_manager(database_url=owner_url, beach_env="production")
