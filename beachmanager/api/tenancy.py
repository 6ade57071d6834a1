"""Which tenant a request acts in, and the shared bits route modules need from the context."""

from __future__ import annotations

from ..auth.principal import Principal
from ..context import ManagerContext
from ..registry.store import Tenant
from .errors import ApiError
from .schema import path_id, query_arg


def registry(ctx: ManagerContext):
    return ctx.parts["registry"].store


def now_ms(ctx: ManagerContext) -> int:
    return int(ctx.clock.seconds() * 1000)


def beach_tenant(principal: Principal, private_beach_id: str) -> Tenant:
    """The tenant of a ``/private-beaches/<private_beach_id>/...`` route (the guard has checked
    that the token may use that private beach)."""
    return Tenant(path_id(private_beach_id, "private beach id"), principal.account_id)


async def session_tenant(ctx: ManagerContext, request, principal: Principal, session_id: str) -> Tenant:
    """The tenant of a ``/sessions/<session_id>/...`` route.

    The session's private beach is looked up; a token bound to one private beach only
    sees sessions there; a session in several private beaches needs
    ``?private_beach_id=``.  Unknown (or invisible) sessions are 404.
    """
    path_id(session_id, "session id")
    wanted = query_arg(request, "private_beach_id")
    if wanted is not None:
        path_id(wanted, "private_beach_id")
    beaches = await registry(ctx).session_beaches(session_id)
    candidates = [pb for pb in beaches if principal.may_use_beach(pb) and wanted in (None, pb)]
    if not candidates:
        raise ApiError(404, "no such session", "session_not_found")
    if len(candidates) > 1:
        raise ApiError(409, "the session belongs to several private beaches; name one with "
                       "?private_beach_id=", "ambiguous_session", private_beach_ids=candidates)
    return Tenant(candidates[0], principal.account_id)
