"""Session routes (legacy paths and shapes): register, list, attach-by-code.

Attach-by-code verifies the code with Beach Road, records the session (join code
encrypted), then hands it to the attach machinery, ``ctx.parts["hosts"].attach(
host_session_id, join_code)``, when that part exists: the session is ``attaching``,
then ``attached`` once the machine's ``when_ready()`` fires, or ``attach_failed``.
Without it the session stays ``pending_attach``.  The answer does not wait for the
attach itself.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from .._aio import background
from ..assign.model import AssignmentUnavailable, CapacityExhausted
from ..context import ManagerContext
from ..registry.store import (
    DEFAULT_LEASE_TTL_MS,
    AttachState,
    Lease,
    Op,
    Session,
    SessionRegistration,
    Tenant,
)
from . import models as m
from .auth_guard import principal_of
from .errors import ApiError, json_handler
from .leases import leases_of
from .road_verify import RoadError, RoadTimeout, RoadVerifier
from .schema import read_json
from .tenancy import beach_tenant, beaches_of, now_ms, registry

log = Logger(namespace="beachmanager.api.sessions")


def summary(session: Session, lease: Lease | None, show_token: bool) -> dict[str, Any]:
    """The legacy SessionSummary (plus attach_method/attach_state)."""
    return {
        "session_id": session.host_session_id, "private_beach_id": session.private_beach_id,
        "harness_type": session.harness_type, "capabilities": list(session.capabilities),
        "location_hint": session.location_hint, "metadata": session.metadata, "version": session.version,
        "harness_id": session.harness_id,
        "controller_token": lease.token if lease is not None and show_token else None,
        "controller_expires_at_ms": lease.expires_at_ms if lease is not None else None,
        "pending_actions": 0, "pending_unacked": 0, "last_health": None,
        "attach_method": session.attach_method, "attach_state": session.attach_state,
    }


async def place_and_attach(ctx: ManagerContext, tenant: Tenant, host_session_id: str,
                           join_code: str) -> dict[str, Any]:
    """Place the host on its owning instance, then attach it here if this instance owns it.

    With several instances (``parts["assign"]``) the rendezvous owner attaches the host; any
    other instance only records the placement (the owner reads the join code from the
    registry).  Raises :class:`CapacityExhausted` when every instance is full: the host is
    refused, never queued.  Returns what happened, for the answer.
    """
    assign = ctx.parts.get("assign")
    if assign is not None:
        decision = await assign.place(host_session_id, join_code)
        placement = {"manager_instance_id": decision.owner, "status": decision.status}
        if decision.owner != ctx.config.instance_id:
            log.info("{host_session_id} is owned by {owner}; it attaches the host",
                     host_session_id=host_session_id, owner=decision.owner)
            return {**placement, "attaching_here": False}
    else:
        placement = {"manager_instance_id": ctx.config.instance_id, "status": "single_instance"}
    return {**placement, "attaching_here": await hand_to_hosts(ctx, tenant, host_session_id, join_code)}


async def hand_to_hosts(ctx: ManagerContext, tenant: Tenant, host_session_id: str, join_code: str) -> bool:
    """Start the attach if the attach machinery exists; False when the session stays pending."""
    hosts = ctx.parts.get("hosts")
    attach = getattr(hosts, "attach", None)
    if attach is None:
        return False
    store = registry(ctx)

    def state(new: AttachState):
        return lambda _: store.set_attach_state(tenant, host_session_id, new, now_ms(ctx))

    def failed(failure):
        log.warn("attach of {host_session_id} failed: {error}", host_session_id=host_session_id,
                 error=failure.getErrorMessage())
        return state(AttachState.FAILED)(None)

    await store.set_attach_state(tenant, host_session_id, AttachState.ATTACHING, now_ms(ctx))
    d = maybeDeferred(attach, host_session_id, join_code)
    # HostManager.attach returns the host's attach machine; its when_ready() fires once the
    # transport is up.  A plain Deferred result is waited on as is.
    d.addCallback(lambda machine: machine.when_ready() if hasattr(machine, "when_ready") else machine)
    d.addCallbacks(state(AttachState.ATTACHED), failed)
    background(d, "attach after attach-by-code", log, host_session_id=host_session_id)
    return True


def install(app, ctx: ManagerContext) -> None:
    road = RoadVerifier(ctx.reactor, ctx.clock, ctx.config.road_url)

    @app.route("/sessions/register", methods=["POST"], endpoint="sessions.register")
    @json_handler
    async def register(request):
        principal = principal_of(request)
        body = read_json(request, m.REGISTER_REQUEST)
        pb = body["private_beach_id"]
        ctx.parts["auth"].check_beach(principal, pb, "POST /sessions/register")
        reg = SessionRegistration(
            host_session_id=body["session_id"], harness_type=body.get("harness_type"),
            capabilities=tuple(body.get("capabilities") or ()), location_hint=body.get("location_hint"),
            metadata=body.get("metadata"), version=body.get("version"),
            transport_mode=body.get("transport_mode"), viewer_passcode=body.get("viewer_passcode"))
        tenant = Tenant(pb, principal.account_id)
        try:
            result = await registry(ctx).register_session(tenant, reg, Op.new(), now_ms(ctx),
                                                          DEFAULT_LEASE_TTL_MS)
        finally:  # it may have joined a private beach and revoked other leases
            beaches_of(ctx).forget(reg.host_session_id)
            leases_of(ctx).forget_session(tenant, reg.host_session_id)
        return 200, {"harness_id": result.session.harness_id, "controller_token": result.lease.token,
                     "lease_ttl_ms": result.lease.expires_at_ms - result.lease.issued_at_ms,
                     "state_cache_url": None, "transport_hints": {}}

    @app.route("/private-beaches/<private_beach_id>/sessions", methods=["GET"], endpoint="sessions.list")
    @json_handler
    async def list_sessions(request, private_beach_id):
        principal = principal_of(request)
        tenant = beach_tenant(principal, private_beach_id)
        store = registry(ctx)
        sessions = await store.list_sessions(tenant)
        leases: dict[str, Lease] = {}
        for lease in await store.live_leases(tenant, now_ms(ctx)):  # newest expiry first
            leases.setdefault(lease.host_session_id, lease)
        show = principal.allows("pb:control.write")
        return 200, [summary(s, leases.get(s.host_session_id), show) for s in sessions]

    @app.route("/private-beaches/<private_beach_id>/sessions/attach-by-code", methods=["POST"],
               endpoint="sessions.attach_by_code")
    @json_handler
    async def attach_by_code(request, private_beach_id):
        principal = principal_of(request)
        tenant = beach_tenant(principal, private_beach_id)
        body = read_json(request, m.ATTACH_BY_CODE_REQUEST)
        session_id, code = body["session_id"], body["code"]
        try:
            verification = await road.verify(session_id, code)
        except RoadTimeout as e:
            raise ApiError(504, str(e), "road_timeout") from None
        except RoadError as e:
            raise ApiError(502, str(e), "road_error") from None
        if not verification.verified:
            log.info("attach-by-code refused for {host_session_id}: Road did not verify the code",
                     host_session_id=session_id)
            raise ApiError(403, "Beach Road did not verify this join code for this session",
                           "invalid_join_code")
        store = registry(ctx)
        try:
            session = await store.attach_session(tenant, session_id, code, Op.new(), now_ms(ctx))
        finally:
            beaches_of(ctx).forget(session_id)
        try:
            placement = await place_and_attach(ctx, tenant, session_id, code)
        except CapacityExhausted as e:
            await store.set_attach_state(tenant, session_id, AttachState.FAILED, now_ms(ctx))
            raise ApiError(503, str(e), "capacity_exhausted", headers={b"retry-after": b"30"},
                           host_session_id=session_id, live_instances=e.members,
                           serving_instances=e.serving) from None
        except AssignmentUnavailable as e:
            raise ApiError(503, f"host placement is unavailable: {e}", "assignment_unavailable",
                           headers={b"retry-after": b"5"}) from None
        if placement["attaching_here"]:
            session = await store.get_session(tenant, session_id) or session
        log.info("attached {host_session_id} to private beach {private_beach_id} by code ({state}, "
                 "owner {owner})", host_session_id=session_id, private_beach_id=tenant.private_beach_id,
                 state=session.attach_state, owner=placement["manager_instance_id"])
        return 200, {"ok": True, "attach_method": "code", "session": summary(session, None, False),
                     "assignment": placement}
