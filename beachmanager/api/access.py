"""Who may act in which private beach: the one membership check, for REST and the bus.

A principal acts in private beach *P* when

* its token is bound to *P* (a ``private_beach_id`` claim: Beach Gate vouched for it), or
* its token is bound to no beach and its account is *P*'s owner or holds an active
  membership whose role reaches what the action needs (``viewer`` < ``contributor`` <
  ``admin`` < ``owner``, see :mod:`beachmanager.registry.members`), or
* it is the development bypass.

The guard (:mod:`.auth_guard`) calls :class:`BeachAccess` for every row of the route table
that names a private beach (in its path, its body, or through the session in its path);
the agent gateway calls it for every bus message of a controller agent.  Refusals go
through the auth service: 403 ``not_a_member`` (no role in that beach),
``insufficient_role`` (a role too low for the action), ``wrong_private_beach`` (a token
bound to another beach naming this one), each counted in ``auth_failure_total{reason}``.

Roles are read from the registry (PostgreSQL or its twin) and kept :data:`ROLE_TTL` seconds,
at most :data:`ROLE_BOUND` (beach, account) pairs, answers of "no role" included (a flood
of non-members costs one lookup per pair and TTL).  A membership change made through this
instance drops its entry at once; one made through another instance is seen here at most
``ROLE_TTL`` seconds late.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from ..auth.principal import AuthFailure, Principal
from ..auth.service import AuthService
from ..registry.members import reaches
from ..registry.store import RegistryStore, Tenant
from ..registry.ttl_cache import TtlCache
from .schema import path_id
from .tenancy import SessionBeaches, TenancyError

ROLE_TTL = 2.0
ROLE_BOUND = 10_000
_NONE = ""  # a cached "no role"


class MemberRoles:
    """``member_role`` of the registry, kept briefly (see the module text)."""

    def __init__(self, store: RegistryStore, clock: IReactorTime, ttl: float = ROLE_TTL,
                 bound: int = ROLE_BOUND):
        self.store = store
        self.kept: TtlCache[str] = TtlCache(clock, ttl, bound)
        self._epoch = 0
        self.lookups = 0

    async def role(self, private_beach_id: str, account_id: str | None) -> str | None:
        if not account_id:
            return None
        key = (private_beach_id, account_id)
        found = self.kept.get(key)
        if found is not None:
            return found or None
        epoch = self._epoch
        self.lookups += 1
        role = await self.store.member_role(Tenant(private_beach_id, account_id))
        if epoch == self._epoch:  # not if a change happened meanwhile
            self.kept.put(key, role or _NONE)
        return role

    def forget(self, private_beach_id: str, account_id: str | None = None) -> None:
        """A membership (or, without *account_id*, any of the beach's) changed here."""
        self._epoch += 1
        if account_id is not None:
            self.kept.pop((private_beach_id, account_id))
        else:
            self.kept.discard_if(lambda k: isinstance(k, tuple) and k[0] == private_beach_id)


class BeachAccess:
    def __init__(self, auth: AuthService, beaches: SessionBeaches, roles: MemberRoles):
        self.auth = auth
        self.beaches = beaches
        self.roles = roles

    async def role_reaches(self, principal: Principal, private_beach_id: str, need: str) -> bool:
        if principal.authority == "bypass" or principal.private_beach_id == private_beach_id:
            return True
        if principal.private_beach_id is not None:
            return False
        return reaches(await self.roles.role(private_beach_id, principal.account_id), need)

    def _refuse(self, principal: Principal, reason: str, detail: str, route: str) -> AuthFailure:
        return self.auth.refuse(AuthFailure(reason, detail, kid=principal.kid,
                                            authority=principal.authority), route)

    async def _denied(self, principal: Principal, beaches: list[str], need: str,
                      route: str) -> AuthFailure:
        """The refusal for a principal that reaches *need* in none of *beaches*."""
        if principal.private_beach_id is not None:
            return self._refuse(principal, "wrong_private_beach",
                                "the token is bound to another private beach", route)
        for pb in beaches:
            if await self.roles.role(pb, principal.account_id):
                return self._refuse(principal, "insufficient_role", f"this needs the role "
                                    f"{need} (or higher) in the private beach", route)
        return self._refuse(principal, "not_a_member",
                            "the account is not a member of this private beach", route)

    async def in_beach(self, principal: Principal, private_beach_id: str, need: str,
                       route: str = "") -> Tenant:
        """The tenant of a route naming *private_beach_id* (its path or its body)."""
        path_id(private_beach_id, "private beach id")
        if not await self.role_reaches(principal, private_beach_id, need):
            raise await self._denied(principal, [private_beach_id], need, route)
        return Tenant(private_beach_id, principal.account_id)

    async def in_session(self, principal: Principal, session_id: str, wanted: str | None,
                         need: str, route: str = "") -> Tenant:
        """The tenant through which *principal* acts on *session_id* (REST and the bus).

        The session's private beaches are looked up; a token bound to one beach sees only
        sessions there (others are ``session_not_found``, as unknown sessions are); a session
        in several beaches where the principal may act needs *wanted*.
        """
        path_id(session_id, "session id")
        if wanted is not None:
            path_id(wanted, "private_beach_id")
        found = await self.beaches.lookup(session_id)
        visible = [pb for pb in found if principal.may_use_beach(pb) and wanted in (None, pb)]
        if not visible:
            raise TenancyError(404, "session_not_found", "no such session")
        allowed = [pb for pb in visible if await self.role_reaches(principal, pb, need)]
        if not allowed:
            raise await self._denied(principal, visible, need, route)
        if len(allowed) > 1:
            raise TenancyError(409, "ambiguous_session", "the session belongs to several private "
                               "beaches; name one with private_beach_id", private_beach_ids=allowed)
        return Tenant(allowed[0], principal.account_id)

    async def of_host(self, principal: Principal, host_session_id: str, need: str,
                      route: str = "") -> Tenant | None:
        """For operator routes about one host: a host in private beaches is shown only to
        principals that may act in one of them; a host in none (configured with ``--host``)
        only needs the route's scope."""
        path_id(host_session_id, "host session id")
        found = await self.beaches.lookup(host_session_id)
        if not found:
            return None
        for pb in found:
            if await self.role_reaches(principal, pb, need):
                return Tenant(pb, principal.account_id)
        raise await self._denied(principal, found, need, route)
