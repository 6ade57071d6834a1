"""Where every host is, as the assignment service sees it (summaries only, never join codes).

* ``GET /debug/assignments`` -- this instance (state, capacity, owned), every member of the
  cluster (endpoint, capacity, load, state, heartbeat age, live), every owned host (owner,
  assigned_at, reason, reassigned_from, ready; plus this instance's local view of the hosts it
  holds) and the latest moves.  ``?limit=N`` caps the host list (default 1000, at most
  10000); ``?mine=1`` lists only this instance's hosts.
* ``GET /debug/assignments/<host_session_id>`` -- one host's owner (404 when unowned).

:func:`capacity_refusal` is the 503 answer other routes give when placement is refused.
"""

from __future__ import annotations

from ..assign.model import AssignmentUnavailable, CapacityExhausted
from ..assign.service import AssignmentService
from ..assign.standby import standby_of
from .deps import ApiDeps
from .errors import ApiError, json_handler
from .handlers import Handlers
from .responses import error_body

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
RECENT_MOVES = 50


def assign_of(deps: ApiDeps) -> AssignmentService:
    svc = deps.assign
    if svc is None or svc.store is None:
        raise ApiError(503, "the assignment service is not running yet", "assignment_unavailable")
    return svc


def capacity_refusal(request, e: CapacityExhausted) -> bytes:
    """503: every serving instance is full; the host was refused, not queued."""
    request.setHeader(b"retry-after", b"30")
    return error_body(request, 503, "service_unavailable", str(e), "capacity_exhausted",
                      host_session_id=e.host_session_id, live_instances=e.members,
                      serving_instances=e.serving)


def _query_int(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name.encode(), [None])[0]
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number", "invalid_query") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}", "invalid_query")
    return value


async def cluster_view(svc: AssignmentService, limit: int = DEFAULT_LIMIT, mine: bool = False,
                       read: int = MAX_LIMIT + 1) -> dict:
    """The body of ``GET /debug/assignments`` (also the operator console's cluster part):
    *read* ownership rows are read, *limit* listed.  Raises AssignmentUnavailable."""
    members = await svc.members()
    rows = await svc.ownerships(read)
    moves = await svc.recent_moves(RECENT_MOVES)
    if mine:
        rows = [r for r in rows if r.owner == svc.instance_id]
    by_id = {m.id: m for m in members}
    hosts = []
    for r in rows[:limit]:
        item = r.as_json()
        if svc.standbys is not None:  # hot failover: who keeps this host's standby session
            item["standby"] = standby_of(r.host_session_id, r.owner, by_id)
        local = svc.slot_view(r.host_session_id)
        if local is not None:
            item["local"] = local
        hosts.append(item)
    me = svc.membership
    return {
        "instance_id": svc.instance_id,
        "state": me.state if me else None,
        "capacity": svc.capacity,
        "owned": len(svc.owned_hosts()),
        "handing_over": svc.handing_over(),
        "standby_for": sorted(svc.standby_wanted),  # (hot failover: --standby)
        "store": svc.store.name if svc.store is not None else None,
        "members": [m.as_json() for m in members],
        "hosts": hosts,
        "hosts_total": len(rows),
        "truncated": len(rows) > limit,
        "recent_moves": [m.as_json() for m in moves],
        "recent_failovers": list(svc.failovers.recent),
    }


def install(on: Handlers, deps: ApiDeps) -> None:
    @on("debug.assignments")
    @json_handler
    async def assignments(request):
        svc = assign_of(deps)
        limit = _query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        mine = _query_int(request, "mine", 0, 0, 1)
        try:
            return 200, await cluster_view(svc, limit, bool(mine))
        except AssignmentUnavailable as e:
            raise ApiError(503, str(e), "assignment_unavailable") from None

    @on("debug.assignment")
    @json_handler
    async def assignment(request, host_session_id):
        svc = assign_of(deps)
        try:
            row = await svc.lookup(host_session_id)
        except AssignmentUnavailable as e:
            raise ApiError(503, str(e), "assignment_unavailable") from None
        except ValueError as e:
            raise ApiError(400, str(e), "invalid_id") from None
        if row is None:
            raise ApiError(404, f"no instance owns host {host_session_id}", "host_not_assigned")
        item = row.as_json()
        item["endpoint"] = await svc.endpoint_of(row.owner)
        local = svc.slot_view(host_session_id)
        if local is not None:
            item["local"] = local
        return 200, item
