"""The registry part of the manager: picks the store and reports its readiness.

``ctx.parts["registry"]`` is a :class:`RegistryService`; its ``store`` follows
:class:`~beachmanager.registry.store.RegistryStore`.  With ``DATABASE_URL`` it is the
PostgreSQL store (ready once the pool is, and once the database confirms that the
service's role is subject to row-level security); otherwise the in-memory twin.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from .._aio import as_deferred
from ..service import FatalStartupError, ReadyService
from .join_codes import JoinCodeCipher, JoinCodeKeys
from .memory import MemoryStore
from .migrate import APP_ROLE
from .roles import LOGIN_QUERY, login_problems, refusal


class RegistryService(ReadyService):
    log = Logger()

    def __init__(self, store, clock, postgres=None, problem: str | None = None, warning: str | None = None,
                 production: bool = False):
        super().__init__("registry", clock)
        self.store = store
        self.postgres = postgres
        self.production = production
        self.problem = problem  # a configuration error that must stop the process at start
        self.warning = warning  # said loudly at start

    def start(self) -> Deferred | None:
        if self.problem:
            raise FatalStartupError(self.problem)
        if self.warning:
            self.log.warn("{warning}", warning=self.warning)
        if self.postgres is None:
            return None
        return ensureDeferred(self._astart())

    async def _astart(self) -> None:
        await self.postgres.whenReady()
        role, superuser, bypass, session_user, session_super = await as_deferred(_role_of(self.postgres.pool))
        if role != APP_ROLE or superuser or bypass:
            raise FatalStartupError(
                f"registry queries run as {role!r} (superuser={superuser}, bypassrls={bypass}); "
                f"they must run as {APP_ROLE!r} so that row-level security applies")
        name, problems = login_problems(await as_deferred(_login_of(self.postgres.pool)))
        if problems:
            line = refusal(name, problems)
            if self.production:
                raise FatalStartupError(line)
            self.log.warn("{advice} (refused when BEACH_ENV=production)", advice=line)
        self.log.info("registry on PostgreSQL: session user {session_user}, queries as {role} "
                      "(row-level security applies)", session_user=session_user, role=role)

    def status(self) -> dict:
        return {**super().status(), "store": self.store.name, **self.store.counters()}


async def _role_of(pool) -> tuple[str, bool, bool, str, bool]:
    """(current role, its superuser and bypassrls flags, session user, its superuser flag)."""
    async with pool.connection(timeout=5) as conn:
        cur = await conn.execute(
            "SELECT c.rolname, c.rolsuper, c.rolbypassrls, s.rolname, s.rolsuper "
            "FROM pg_roles c, pg_roles s WHERE c.rolname = current_user AND s.rolname = session_user")
        return await cur.fetchone()


async def _login_of(pool) -> tuple:
    """The session's login, as :data:`~beachmanager.registry.roles.LOGIN_QUERY` describes it."""
    async with pool.connection(timeout=5) as conn:
        cur = await conn.execute(LOGIN_QUERY, {"app": APP_ROLE})
        return await cur.fetchone()


def build_registry(config, clock, postgres=None) -> RegistryService:
    """The registry for *config*: PostgreSQL when *postgres* (the pool service) is given.

    Without ``BEACH_MANAGER_JOIN_CODE_KEY`` a random key is used: fine in memory; with a
    database, join codes stored by an earlier process cannot be read back (so this is
    refused when ``BEACH_ENV=production``).
    """
    keys, problem, warning = config.join_code_key, None, None
    if keys is None:
        keys = JoinCodeKeys.generate()
        if postgres is not None:
            if config.beach_env == "production":
                problem = ("BEACH_MANAGER_JOIN_CODE_KEY is required with DATABASE_URL when "
                           "BEACH_ENV=production (join codes are stored encrypted with it)")
            else:
                warning = ("BEACH_MANAGER_JOIN_CODE_KEY is unset: join codes are encrypted with a key "
                           "that dies with this process; hosts attached by code must be attached again "
                           "after a restart")
    if postgres is None:
        return RegistryService(MemoryStore(JoinCodeCipher(keys)), clock, problem=problem, warning=warning)
    from .postgres import PostgresStore

    return RegistryService(PostgresStore(postgres, JoinCodeCipher(keys), clock), clock, postgres,
                           problem=problem, warning=warning, production=config.beach_env == "production")
