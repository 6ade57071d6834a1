"""Session routes (legacy paths and shapes): register, list, attach-by-code.

Attach-by-code verifies the code with Beach Road, records the session (join code
encrypted), then hands it to :class:`~beachmanager.assign.intake.HostIntake`: the host is
placed on its owner, and attached there; its ``attach_state`` follows the session stream
(``attaching``, then ``attached`` or ``attach_failed``).  Without a transport the session
stays ``pending_attach``.  The answer does not wait for the attach itself.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ..assign.model import AssignmentUnavailable, CapacityExhausted
from ..registry.store import (
    DEFAULT_LEASE_TTL_MS,
    AttachState,
    Lease,
    Op,
    Session,
    SessionRegistration,
)
from . import models as m
from .auth_guard import principal_of, tenant_of
from .deps import ApiDeps
from .errors import ApiError, json_handler
from .handlers import Handlers
from .road_verify import RoadError, RoadTimeout, RoadVerifier
from .schema import read_json
from .tenancy import now_ms

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


#: The compatibility hint a registering harness gets (the plan's "advertise
#: extensions.namespaces=["manager"] only"): this manager talks to it on the unified bus, in
#: namespace ``manager`` (docs/bus-controllers.md); no legacy fast path is offered.
TRANSPORT_HINTS = {"extensions": {"namespaces": ["manager"], "preferred": True}}


def install(on: Handlers, deps: ApiDeps) -> None:
    ctx = deps.ctx
    road = RoadVerifier(ctx.reactor, ctx.clock, ctx.config.road_url)
    store = deps.registry

    @on("sessions.register")
    @json_handler
    async def register(request):
        body = read_json(request, m.REGISTER_REQUEST)
        tenant = tenant_of(request)  # the body's private beach, checked by the guard
        reg = SessionRegistration(
            host_session_id=body["session_id"], harness_type=body.get("harness_type"),
            capabilities=tuple(body.get("capabilities") or ()), location_hint=body.get("location_hint"),
            metadata=body.get("metadata"), version=body.get("version"),
            transport_mode=body.get("transport_mode"), viewer_passcode=body.get("viewer_passcode"))
        try:
            result = await store.register_session(tenant, reg, Op.new(), now_ms(ctx.clock),
                                                  DEFAULT_LEASE_TTL_MS)
        finally:  # it may have joined a private beach and revoked other leases
            deps.session_beaches.forget(reg.host_session_id)
            deps.leases.forget_session(tenant, reg.host_session_id)
        return 200, {"harness_id": result.session.harness_id, "controller_token": result.lease.token,
                     "lease_ttl_ms": result.lease.expires_at_ms - result.lease.issued_at_ms,
                     "state_cache_url": None, "transport_hints": TRANSPORT_HINTS}

    @on("sessions.list")
    @json_handler
    async def list_sessions(request, private_beach_id):
        principal = principal_of(request)
        tenant = tenant_of(request)
        sessions = await store.list_sessions(tenant)
        leases: dict[str, Lease] = {}
        for lease in await store.live_leases(tenant, now_ms(ctx.clock)):  # newest expiry first
            leases.setdefault(lease.host_session_id, lease)
        show = principal.allows("pb:control.write")
        return 200, [summary(s, leases.get(s.host_session_id), show) for s in sessions]

    @on("sessions.attach_by_code")
    @json_handler
    async def attach_by_code(request, private_beach_id):
        tenant = tenant_of(request)
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
        try:
            session = await store.attach_session(tenant, session_id, code, Op.new(),
                                                 now_ms(ctx.clock))
        finally:
            deps.session_beaches.forget(session_id)
        if deps.intake is None:
            raise ApiError(503, "host intake is not running", "assignment_unavailable")
        try:
            placement = await deps.intake.place_and_attach(tenant, session_id, code)
        except CapacityExhausted as e:
            await store.set_attach_state(tenant, session_id, AttachState.FAILED, now_ms(ctx.clock))
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
