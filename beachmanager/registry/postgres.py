"""The PostgreSQL registry: each call is one transaction, scoped to a tenant, retried on transient errors.

Transient means the connection was lost or refused, the pool had no connection in
time, or the server asked to retry (serialization failure, deadlock).  A retry
repeats the whole transaction with the same :class:`~beachmanager.registry.store.Op`,
and every write is idempotent on its natural id, so a retry after a commit whose
answer was lost changes nothing.  When the attempts are spent the call fails with
:class:`~beachmanager.registry.store.StoreUnavailable` (the API answers 503).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar, overload

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .._aio import as_deferred
from ..retry import backoff, retrying
from . import members_sql as msql
from . import repository as repo
from .join_codes import JoinCodeCipher
from .members import Beach, Member
from .store import (
    DEFAULT_LEASE_TTL_MS,
    MAX_ACTION_BATCH,
    REGISTER_REASON,
    ActionLogged,
    ActionRecord,
    AttachState,
    ControllerEvent,
    Lease,
    Op,
    RegisterResult,
    ReleaseOutcome,
    Session,
    SessionNotFound,
    SessionRegistration,
    StoreUnavailable,
    Tenant,
    action_groups,
)

T = TypeVar("T")

#: Attempts per call and the wait for a pooled connection on each: about ten seconds in all,
#: enough to ride out a database restart.
ATTEMPTS = 8
POOL_WAIT = 2.0


def transient(e: Exception) -> bool:
    import psycopg

    return isinstance(e, psycopg.OperationalError)


class PostgresStore:
    name = "postgres"

    def counters(self) -> dict[str, int]:
        return {"retries": self.retries, "unavailable": self.unavailable}
    log = Logger()

    def __init__(self, pool_owner: Any, cipher: JoinCodeCipher, clock: IReactorTime,
                 attempts: int = ATTEMPTS, delay: Callable[[int], float] | None = None,
                 pool_wait: float = POOL_WAIT):
        self.pool_owner = pool_owner  # has .pool (PostgresService)
        self.cipher = cipher
        self.clock = clock
        self.attempts = attempts
        self.delay = delay or backoff(0.05, 2.0)
        self.pool_wait = pool_wait
        self.retries = 0      # transient errors retried (for status and tests)
        self.unavailable = 0  # calls that gave up (answered 503)

    # -- plumbing ------------------------------------------------------------
    @overload
    def _tx(self, what: str, tenant: Tenant | None, fn: Callable[..., Awaitable[T]], *args: Any,
            pipelined: Literal[False] = ...) -> Deferred[T]: ...
    @overload
    def _tx(self, what: str, tenant: Tenant | None, fn: Callable[..., Awaitable[repo.Collect[T]]],
            *args: Any, pipelined: Literal[True]) -> Deferred[T]: ...
    def _tx(self, what: str, tenant: Tenant | None, fn: Callable[..., Awaitable[Any]], *args: Any,
            pipelined: bool = False) -> Deferred[Any]:
        """Run ``fn(conn, *args)`` in one tenant-scoped transaction, retried as a whole.

        ``pipelined``: ``fn`` only queues its statements and returns a coroutine function
        that reads their answers; BEGIN, the tenant setting, the statements and COMMIT go
        out together (psycopg pipeline mode) and the answers are read after the commit.
        Each wait for the database is a pass through the event loop, which is long when
        the manager is busy: this takes one pass where a plain transaction takes several."""
        async def attempt() -> Any:
            pool = self.pool_owner.pool
            if pool is None:
                raise StoreUnavailable("the database pool is not open")
            async with pool.connection(timeout=self.pool_wait) as conn:
                if pipelined:
                    async with conn.pipeline():
                        async with conn.transaction():
                            collect = await in_tx(conn)
                    return await collect()
                async with conn.transaction():
                    return await in_tx(conn)

        async def in_tx(conn) -> Any:
            if tenant is not None:
                await repo.enter_tenant(conn, tenant)
            return await fn(conn, *args)

        def on_retry(n: int, e: Exception, wait: float) -> None:
            self.retries += 1
            self.log.warn("registry {what}: transient database error ({error}); retry {attempt} in "
                          "{wait:.2f}s", what=what, error=_first_line(e), attempt=n, wait=wait)

        async def run() -> Any:
            try:
                return await retrying(lambda: as_deferred(attempt()), self.clock, should_retry=transient,
                                      delay=self.delay, attempts=self.attempts, on_retry=on_retry)
            except Exception as e:
                if transient(e):
                    self.unavailable += 1
                    raise StoreUnavailable(f"database unavailable during {what}: {_first_line(e)}") from e
                raise

        return ensureDeferred(run())

    # -- RegistryStore -------------------------------------------------------
    def register_session(self, tenant: Tenant, reg: SessionRegistration, op: Op, now_ms: int,
                         lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS) -> Deferred[RegisterResult]:
        async def run(conn) -> RegisterResult:
            session = await repo.upsert_registered(conn, self.cipher, tenant, reg, op, now_ms)
            hs = reg.host_session_id
            await repo.add_event(conn, tenant, hs, op, "registered", "registered", now_ms, reason=REGISTER_REASON)
            await repo.revoke_for_register(conn, tenant, hs, now_ms)
            lease = await repo.acquire_lease(conn, tenant, hs, tenant.account_id, REGISTER_REASON,
                                             lease_ttl_ms, op, now_ms)
            return RegisterResult(session, lease)

        return self._tx("register_session", tenant, run)

    def attach_session(self, tenant: Tenant, host_session_id: str, join_code: str, op: Op,
                       now_ms: int) -> Deferred[Session]:
        async def run(conn) -> Session:
            session = await repo.upsert_attached(conn, self.cipher, tenant, host_session_id, join_code, op, now_ms)
            await repo.add_event(conn, tenant, host_session_id, op, "registered", "registered", now_ms,
                                 reason="attach_by_code")
            return session

        return self._tx("attach_session", tenant, run)

    def set_attach_state(self, tenant: Tenant, host_session_id: str, state: AttachState,
                         now_ms: int) -> Deferred[bool]:
        return self._tx("set_attach_state", tenant, repo.set_attach_state, tenant, host_session_id, state, now_ms)

    def get_session(self, tenant: Tenant, host_session_id: str) -> Deferred[Session | None]:
        return self._tx("get_session", tenant, repo.get_session, tenant, host_session_id)

    def list_sessions(self, tenant: Tenant) -> Deferred[list[Session]]:
        return self._tx("list_sessions", tenant, repo.list_sessions, tenant)

    def session_beaches(self, host_session_id: str) -> Deferred[list[str]]:
        return self._tx("session_beaches", None, repo.session_beaches, host_session_id, pipelined=True)

    def join_code(self, tenant: Tenant, host_session_id: str) -> Deferred[str | None]:
        return self._tx("join_code", tenant, repo.join_code, self.cipher, tenant, host_session_id)

    def acquire_lease(self, tenant: Tenant, host_session_id: str, controller_account_id: str | None,
                      reason: str | None, ttl_ms: int, op: Op, now_ms: int) -> Deferred[Lease]:
        async def run(conn) -> Lease:
            if await repo.get_session(conn, tenant, host_session_id, lock=True) is None:
                raise SessionNotFound(host_session_id)
            return await repo.acquire_lease(conn, tenant, host_session_id, controller_account_id, reason,
                                            ttl_ms, op, now_ms)

        return self._tx("acquire_lease", tenant, run)

    def release_lease(self, tenant: Tenant, host_session_id: str, token: str, op: Op,
                      now_ms: int) -> Deferred[ReleaseOutcome]:
        return self._tx("release_lease", tenant, repo.release_lease, tenant, host_session_id, token, op, now_ms)

    def find_lease(self, tenant: Tenant, host_session_id: str, token: str) -> Deferred[Lease | None]:
        return self._tx("find_lease", tenant, repo.find_lease_later, tenant, host_session_id, token,
                        pipelined=True)

    def live_leases(self, tenant: Tenant, now_ms: int) -> Deferred[list[Lease]]:
        return self._tx("live_leases", tenant, repo.live_leases, tenant, now_ms)

    def controller_events(self, tenant: Tenant, host_session_id: str, event_type: str | None = None,
                          since_ms: int | None = None, limit: int = 200) -> Deferred[list[ControllerEvent]]:
        return self._tx("controller_events", tenant, repo.controller_events, tenant, host_session_id,
                        event_type, since_ms, limit)

    def record_action(self, tenant: Tenant, action: ActionRecord) -> Deferred[bool]:
        return self._tx("record_action", tenant, repo.record_action, tenant, action)

    def record_actions(self, tenant: Tenant, records: Sequence[ActionRecord]) -> Deferred[list[ActionLogged]]:
        records = list(records)
        if len(records) > MAX_ACTION_BATCH:
            return fail(ValueError(f"at most {MAX_ACTION_BATCH} action records per call, got {len(records)}"))
        return self._tx("record_actions", tenant, repo.record_actions, tenant, records, pipelined=True)

    def record_actions_by_beach(self, groups: Sequence[tuple[Tenant, Sequence[ActionRecord]]]
                                ) -> Deferred[list[list[ActionLogged]]]:
        try:
            listed = action_groups(groups)
        except ValueError as e:
            return fail(e)
        if not listed:
            return succeed([])
        return self._tx("record_actions_by_beach", None, repo.record_actions_by_beach, listed, pipelined=True)

    # -- membership ----------------------------------------------------------
    def create_beach(self, tenant: Tenant, name: str | None, now_ms: int) -> Deferred[Beach]:
        return self._tx("create_beach", tenant, msql.create_beach, tenant, name, now_ms)

    def get_beach(self, tenant: Tenant) -> Deferred[Beach | None]:
        return self._tx("get_beach", tenant, msql.get_beach, tenant)

    def member_role(self, tenant: Tenant) -> Deferred[str | None]:
        return self._tx("member_role", tenant, msql.member_role, tenant, pipelined=True)

    def list_members(self, tenant: Tenant) -> Deferred[list[Member]]:
        return self._tx("list_members", tenant, msql.list_members, tenant)

    def put_member(self, tenant: Tenant, account_id: str, role: str, status: str,
                   now_ms: int) -> Deferred[Member]:
        return self._tx("put_member", tenant, msql.put_member, tenant, account_id, role, status, now_ms)

    def remove_member(self, tenant: Tenant, account_id: str) -> Deferred[bool]:
        return self._tx("remove_member", tenant, msql.remove_member, tenant, account_id)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
