"""Which tenant a request acts in, and the shared bits route modules need from the context.

Which private beaches hold a session is looked up in the registry once, then kept for
:data:`SESSION_BEACHES_TTL` seconds (:class:`SessionBeaches`, one per manager, in ``ApiDeps``),
so ``/sessions/:id/...`` requests do not cost a database transaction each.  Sessions are
never deleted, so a kept answer can only *miss* a private beach that the session joined
meanwhile: a registration or attach through this instance drops it at once; one made
through another instance is seen here at most ``SESSION_BEACHES_TTL`` seconds late.
Unknown sessions are not kept (a session registered elsewhere is found at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime

from ..auth.principal import Principal
from ..registry.store import RegistryStore, Tenant
from ..registry.ttl_cache import TtlCache
from .errors import ApiError
from .schema import path_id, query_arg

if TYPE_CHECKING:
    from .deps import ApiDeps

#: Seconds a session's private beaches are kept (see the module text), and how many sessions.
SESSION_BEACHES_TTL = 2.0
SESSION_BEACHES_BOUND = 10_000


class SessionBeaches:
    """``session_beaches`` of the registry, kept briefly (see the module text)."""

    def __init__(self, store: RegistryStore, clock: IReactorTime, ttl: float = SESSION_BEACHES_TTL,
                 bound: int = SESSION_BEACHES_BOUND):
        self.store = store
        self.kept: TtlCache[list[str]] = TtlCache(clock, ttl, bound)
        self._epoch = 0
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call *listener(session_id)* when a session may have joined a private beach through
        this instance (the association tells its harness)."""
        self._listeners.append(listener)

    async def lookup(self, session_id: str) -> list[str]:
        found = self.kept.get(session_id)
        if found is not None:
            return list(found)
        epoch = self._epoch
        found = list(await self.store.session_beaches(session_id))
        if found and epoch == self._epoch:  # not if a registration happened meanwhile
            self.kept.put(session_id, found)
        return list(found)

    def forget(self, session_id: str) -> None:
        self._epoch += 1
        self.kept.pop(session_id)
        for listener in list(self._listeners):
            listener(session_id)


def now_ms(clock: IReactorTime) -> int:
    return int(clock.seconds() * 1000)


def beach_tenant(principal: Principal, private_beach_id: str) -> Tenant:
    """The tenant of a ``/private-beaches/<private_beach_id>/...`` route (the guard has checked
    that the token may use that private beach)."""
    return Tenant(path_id(private_beach_id, "private beach id"), principal.account_id)


class TenancyError(Exception):
    """The principal cannot act on the session (``status`` and ``code`` as the API answers)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


async def tenant_for(beaches: SessionBeaches, principal: Principal, session_id: str,
                     wanted: str | None = None) -> Tenant:
    """The tenant through which *principal* acts on *session_id* (REST and the bus alike).

    The session's private beach is looked up; a token bound to one private beach only
    sees sessions there; a session in several private beaches needs *wanted*.  Unknown (or
    invisible) sessions are ``session_not_found``.
    """
    path_id(session_id, "session id")
    if wanted is not None:
        path_id(wanted, "private_beach_id")
    found = await beaches.lookup(session_id)
    candidates = [pb for pb in found if principal.may_use_beach(pb) and wanted in (None, pb)]
    if not candidates:
        raise TenancyError(404, "session_not_found", "no such session")
    if len(candidates) > 1:
        raise TenancyError(409, "ambiguous_session", "the session belongs to several private "
                           "beaches; name one with private_beach_id", private_beach_ids=candidates)
    return Tenant(candidates[0], principal.account_id)


async def session_tenant(deps: ApiDeps, request, principal: Principal, session_id: str) -> Tenant:
    """The tenant of a ``/sessions/<session_id>/...`` route (:func:`tenant_for`, with
    ``?private_beach_id=`` naming the beach of a session in several)."""
    try:
        return await tenant_for(deps.session_beaches, principal, session_id,
                                query_arg(request, "private_beach_id"))
    except TenancyError as e:
        message = e.message.replace("with private_beach_id", "with ?private_beach_id=")
        raise ApiError(e.status, message, e.code, **e.extra) from None
