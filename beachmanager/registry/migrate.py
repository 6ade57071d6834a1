"""Schema migrations (yoyo-migrations, SQL files in ``migrations/``) and the service's database role.

Migrations run at start-up with the ``DATABASE_MIGRATE_URL`` user (else ``DATABASE_URL``'s),
which must be allowed to create schemas and roles (the owner); ``DATABASE_URL`` itself should be
a least-privilege login (:mod:`.roles`).  Every pooled connection then switches to
:data:`APP_ROLE`, which owns nothing, so row-level security applies to all the
service's queries.  yoyo is synchronous: :func:`migrate_in_thread` runs it in the
reactor's thread pool; its lock table keeps concurrent managers from racing.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .._aio import call_blocking

#: The role the service's queries run as (created by the first migration).
APP_ROLE = "beach_manager_app"
#: Where the tables live.
SCHEMA = "beach_manager"



#: Whether the login may migrate: a superuser, the schema's owner, or (no schema yet) one
#: that may create schemas in the database.
_MAY_MIGRATE = """
SELECT r.rolsuper
    OR EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = %(schema)s
               AND pg_has_role(current_user, n.nspowner, 'USAGE'))
    OR (NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s)
        AND has_database_privilege(current_database(), 'CREATE')), current_user
FROM pg_roles r WHERE r.rolname = current_user
"""


class MigrationRefused(RuntimeError):
    """The migrating login may not change the schema (a least-privilege DATABASE_URL)."""

    def __init__(self, cause: Exception | str):
        text = str(cause).strip()
        first = text.splitlines()[0] if text else type(cause).__name__
        super().__init__(f"schema migrations need the schema owner ({first}): give the owner's URL "
                         f"in DATABASE_MIGRATE_URL")


def migrations_path() -> str:
    return str(resources.files(__package__).joinpath("migrations"))


def yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme: ``postgresql+psycopg`` is psycopg 3."""
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql+psycopg").geturl()


def apply_migrations(url: str) -> list[str]:
    """Bring the database at *url* to the newest schema; the ids applied now (blocking)."""
    import psycopg
    from yoyo import get_backend, read_migrations

    with psycopg.connect(url, connect_timeout=10) as conn:  # fail fast, not on yoyo's lock
        row = conn.execute(_MAY_MIGRATE, {"schema": SCHEMA}).fetchone()
    if not (row and row[0]):
        raise MigrationRefused(f"{row[1] if row else 'the login'} neither owns schema {SCHEMA} "
                               f"nor may create it")
    try:
        backend = get_backend(yoyo_url(url))
    except psycopg.errors.InsufficientPrivilege as e:
        raise MigrationRefused(e) from None
    try:
        migrations = read_migrations(migrations_path())
        with backend.lock(timeout=60):
            todo = backend.to_apply(migrations)
            backend.apply_migrations(todo)
        return [m.id for m in todo]
    except psycopg.errors.InsufficientPrivilege as e:
        raise MigrationRefused(e) from None
    finally:
        backend.connection.close()


class SchemaMigrations:
    """Brings the schema at *url* (the owner's login) up to date, off the reactor thread."""

    log = Logger()

    def __init__(self, url: str):
        self.url = url

    def apply_in_thread(self) -> Deferred:
        return call_blocking(apply_migrations, self.url).addCallback(self._applied)

    def _applied(self, applied: list[str]) -> list[str]:
        if applied:
            self.log.info("applied schema migrations {migrations}", migrations=applied)
        else:
            self.log.info("schema is up to date")
        return applied


def migrate_in_thread(url: str) -> Deferred:
    return SchemaMigrations(url).apply_in_thread()


async def enter_app_role(conn) -> None:
    """Pool ``configure`` hook (asyncio): run every query of this connection as :data:`APP_ROLE`."""
    await conn.execute(f"SET ROLE {APP_ROLE}")
    await conn.commit()
