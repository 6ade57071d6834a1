"""Private beaches and their members: create a beach (the caller owns it), list, add, change
and remove members.  The guard has checked the caller's role in the beach (``admin`` for
changes); here the rules that need the member in question: only an owner hands out or takes
away the owner role, and the beach's own owner (``owner_account_id``) stays owner."""

from __future__ import annotations

import uuid

from ..auth.principal import AuthFailure
from ..registry.members import ACTIVE, OWNER, BeachExists
from ..registry.store import Tenant
from . import models as m
from .auth_guard import principal_of, tenant_of
from .deps import ApiDeps
from .errors import ApiError, json_handler
from .handlers import Handlers
from .schema import read_json, validate
from .tenancy import now_ms


def _account(account_id: str) -> str:
    validate(m.ACCOUNT_PATH, account_id, "account id")
    return account_id


def install(on: Handlers, deps: ApiDeps) -> None:
    ctx, store, roles = deps.ctx, deps.registry, deps.access.roles

    async def caller_role(tenant: Tenant, principal) -> str | None:
        if principal.authority == "bypass" or principal.private_beach_id == tenant.private_beach_id:
            return OWNER  # a token bound to the beach (or the dev bypass) speaks for it
        return await roles.role(tenant.private_beach_id, principal.account_id)

    @on("beaches.create")
    @json_handler
    async def create(request):
        principal = principal_of(request)
        body = read_json(request, m.BEACH_CREATE_REQUEST)
        beach_id = body.get("id") or principal.private_beach_id or str(uuid.uuid4())
        if not principal.account_id:
            raise ApiError(400, "the token names no account to own the beach", "missing_account")
        tenant = Tenant(beach_id, principal.account_id)
        try:
            beach = await store.create_beach(tenant, body.get("name"), now_ms(ctx.clock))
        except BeachExists:
            raise ApiError(409, "a private beach with this id exists", "private_beach_exists") from None
        finally:
            roles.forget(beach_id, principal.account_id)
        return 201, beach.as_json()

    @on("beaches.members")
    @json_handler
    async def members(request, private_beach_id):
        tenant = tenant_of(request)
        beach = await store.get_beach(tenant)
        found = await store.list_members(tenant)
        return 200, {"private_beach_id": tenant.private_beach_id,
                     "owner_account_id": beach.owner_account_id if beach else None,
                     "members": [x.as_json() for x in found]}

    async def guard_owner(tenant: Tenant, principal, account_id: str, role: str | None) -> None:
        """Only an owner hands out or changes the owner role; the beach's owner stays owner."""
        beach = await store.get_beach(tenant)
        if beach is not None and beach.owner_account_id == account_id:
            raise ApiError(409, "the private beach's owner cannot be changed or removed here",
                           "owner_required")
        current = await store.member_role(Tenant(tenant.private_beach_id, account_id))
        if OWNER in (role, current) and await caller_role(tenant, principal) != OWNER:
            raise deps.auth.refuse(AuthFailure(
                "insufficient_role", "only an owner may grant or change the owner role",
                kid=principal.kid, authority=principal.authority), "members of a private beach")

    @on("beaches.put_member")
    @json_handler
    async def put_member(request, private_beach_id, account_id):
        principal, tenant = principal_of(request), tenant_of(request)
        account_id = _account(account_id)
        body = read_json(request, m.MEMBER_REQUEST)
        await guard_owner(tenant, principal, account_id, body["role"])
        try:
            member = await store.put_member(tenant, account_id, body["role"],
                                            body.get("status") or ACTIVE, now_ms(ctx.clock))
        finally:
            roles.forget(tenant.private_beach_id, account_id)
        return 200, member.as_json()

    @on("beaches.remove_member")
    @json_handler
    async def remove_member(request, private_beach_id, account_id):
        principal, tenant = principal_of(request), tenant_of(request)
        account_id = _account(account_id)
        await guard_owner(tenant, principal, account_id, None)
        try:
            removed = await store.remove_member(tenant, account_id)
        finally:
            roles.forget(tenant.private_beach_id, account_id)
        if not removed:
            raise ApiError(404, "no such member of this private beach", "member_not_found")
        return 200, {"removed": True}
