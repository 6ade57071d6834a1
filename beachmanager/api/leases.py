"""Controller lease routes (legacy paths and shapes): acquire/renew, release, events."""

from __future__ import annotations

from ..controller.leases import LeaseError
from . import models as m
from .auth_guard import tenant_of
from .deps import ApiDeps
from .errors import ApiError, json_handler
from .handlers import Handlers
from .schema import query_arg, query_int, read_json, validate


def install(on: Handlers, deps: ApiDeps) -> None:
    @on("leases.acquire")
    @json_handler
    async def acquire(request, session_id):
        tenant = tenant_of(request)
        body = read_json(request, m.LEASE_REQUEST)
        lease = await deps.leases.acquire(tenant, session_id, body.get("requesting_account_id"),
                                             body.get("reason"), body.get("ttl_ms"))
        return 200, {"controller_token": lease.token, "expires_at_ms": lease.expires_at_ms}

    @on("leases.release")
    @json_handler
    async def release(request, session_id):
        tenant = tenant_of(request)
        body = read_json(request, m.RELEASE_REQUEST)
        try:
            await deps.leases.release(tenant, session_id, body["controller_token"])
        except LeaseError as e:
            raise ApiError(409, e.message, e.code) from None
        return 200, {"released": True}

    @on("leases.events")
    @json_handler
    async def events(request, session_id):
        tenant = tenant_of(request)
        event_type = query_arg(request, "event_type")
        if event_type is not None:
            validate(m.EVENT_QUERY["event_type"], event_type, "query parameter event_type")
        since_ms = query_int(request, "since_ms", None, 0, m.MAX_TIME_MS)
        limit = query_int(request, "limit", 200, 1, 1000)
        found = await deps.registry.controller_events(tenant, session_id, event_type, since_ms, limit)
        return 200, [e.as_json() for e in found]
