"""Controller action routes (legacy paths and shapes).

* ``POST /sessions/:id/actions`` ``{controller_token, actions: [ActionCommand]}``, answered
  by any instance: a host managed elsewhere gets the actions through its shared queue
  stream (its owner delivers them; with one instance, every host is here).  400 on an
  empty or invalid list; 409 ``missing_lease`` / ``lease_expired`` / ``lease_revoked`` /
  ``controller_mismatch`` when the token holds no active lease; 409
  ``child_not_attached`` / ``child_offline`` from the host's transport (not while this
  instance owns the host in the assignment store and its session is starting: a takeover's
  actions wait in the host's stream for the new owner); 429
  ``too_many_requests`` with ``Retry-After`` at the queue bound, and 429 ``overloaded``
  (before anything is queued) when this instance is over its admission target
  (``controller/admission.py``); 503 when the queue's
  store does not answer.  The answer names the accepted ids.
* ``GET /sessions/:id/actions/:action_id``: queued, delivered, or acked with status and
  latency; 404 ``action_not_found``.
* ``GET /sessions/:id/state`` / ``GET /sessions/:id/health``: the latest StateDiff /
  HealthHeartbeat of the host, or ``null``.
"""

from __future__ import annotations

from ..assign.model import AssignmentUnavailable
from ..controller.commands import CommandError, parse_command, whole_times
from ..controller.leases import LeaseError
from ..controller.queue import QueueFull, QueueUnavailable
from ..controller.service import ControllerService, Overloaded
from ..controller.session_link import NOT_ATTACHED, OFFLINE
from . import action_models as am
from .auth_guard import tenant_of
from .deps import ApiDeps
from .errors import ApiError, json_handler
from .handlers import Handlers
from .routing import OWNED_BY
from .schema import read_json

MAX_BODY = 2 * 1024 * 1024
#: The host is this instance's in the assignment store and its session is starting.
ASSIGNED = "assigned"


def controller_of(deps: ApiDeps) -> ControllerService:
    controller = deps.controller
    if controller is None or controller.engine is None:
        raise ApiError(503, "the controller is not running yet", "controller_unavailable")
    return controller


async def transport_state(deps: ApiDeps, controller: ControllerService, host: str,
                          request) -> str:
    """This instance's view when it manages the host; else the owner's, from the shared
    assignment store (its ready flag mirrors the owner's session stream), and the answer
    names the owner (``x-beach-owned-by``)."""
    state = controller.transport_state(host)
    svc = deps.assign
    if state != NOT_ATTACHED or svc is None or svc.single_instance:
        return state
    try:
        row = await svc.lookup(host)
    except AssignmentUnavailable as e:
        raise ApiError(503, f"host placement is unavailable: {e}", "assignment_unavailable") from None
    if row is None:
        return NOT_ATTACHED
    if row.owner == svc.instance_id:
        # ours in the store, our session not active yet (a takeover or hand-over under way,
        # a reconcile tick away): accepted; it waits in the host's stream for our lane
        return ASSIGNED
    request.setHeader(OWNED_BY, row.owner.encode())
    return "ready" if row.ready else OFFLINE


def install(on: Handlers, deps: ApiDeps) -> None:
    @on("actions.submit")
    @json_handler
    async def submit(request, session_id):
        tenant = tenant_of(request)
        body = read_json(request, am.ACTIONS_REQUEST_SHALLOW, max_bytes=MAX_BODY)
        raw = body["actions"]
        if not raw:
            raise ApiError(400, "actions must hold at least one action", "empty_actions")
        controller = controller_of(deps)
        try:  # before parsing, the lease look-up or a queue write: shed load cheaply
            controller.admit(session_id, len(raw))
        except Overloaded as e:
            retry = e.refusal.retry_after_seconds
            request.setHeader(b"retry-after", str(retry).encode())
            raise ApiError(429, f"this manager is over its admission target ({e}); retry after "
                           f"{retry}s", "overloaded", backlog=e.refusal.backlog,
                           limit=e.refusal.limit) from None
        try:
            commands = [parse_command(whole_times(a), i) for i, a in enumerate(raw)]
        except CommandError as e:
            raise ApiError(400, str(e), "invalid_action") from None
        ids = [c["id"] for c in commands]
        if len(set(ids)) != len(ids):
            raise ApiError(400, "an action id appears twice in the request", "duplicate_action_id")
        token = body["controller_token"]
        try:
            await deps.leases.check(tenant, session_id, token)
        except LeaseError as e:
            raise ApiError(409, e.message, e.code) from None
        state = await transport_state(deps, controller, session_id, request)
        if state == NOT_ATTACHED:
            raise ApiError(409, "the host is not attached to this manager", "child_not_attached")
        if state == OFFLINE:
            raise ApiError(409, "the host's transport is down; retry when it is back", "child_offline")
        try:
            done = await controller.submit(session_id, commands, controller_token=token,
                                           beach=tenant.private_beach_id)
        except QueueFull as e:
            request.setHeader(b"retry-after", str(e.retry_after_seconds).encode())
            raise ApiError(429, f"the host's action queue is full ({e.depth} of {e.bound}); retry "
                           f"after {e.retry_after_seconds}s", "too_many_requests",
                           queue_depth=e.depth, queue_bound=e.bound) from None
        except QueueUnavailable as e:
            request.setHeader(b"retry-after", b"1")
            raise ApiError(503, f"the action queue is unavailable ({e}); retry the request",
                           "queue_unavailable") from None
        return 200, {"accepted": True, "action_ids": done.action_ids, "enqueued": done.enqueued,
                     "duplicates": done.duplicates, "queue_depth": done.queue_depth}

    @on("actions.get")
    @json_handler
    async def get_action(request, session_id, action_id):
        tenant_of(request)  # the guard checked the caller's membership
        if not action_id or len(action_id) > 128:
            raise ApiError(400, "action id must have 1 to 128 characters", "invalid_id")
        view = await controller_of(deps).describe(session_id, action_id)
        if view is None:
            raise ApiError(404, "no such action on this session", "action_not_found")
        return 200, view

    @on("actions.state")
    @json_handler
    async def get_state(request, session_id):
        tenant_of(request)  # the guard checked the caller's membership
        return 200, await controller_of(deps).snapshot(session_id, "state")

    @on("actions.health")
    @json_handler
    async def get_health(request, session_id):
        tenant_of(request)  # the guard checked the caller's membership
        return 200, await controller_of(deps).snapshot(session_id, "health")
