"""The one table of HTTP routes: who may call each, and what it takes and gives.

Every route registered on the Klein app must have exactly one row here (a test walks
the router and fails otherwise); the auth guard enforces ``scope`` on every request
(a route missing from the table is refused) and ``/openapi.json`` is generated from
the rows.  ``scope=PUBLIC`` marks the three probe endpoints that need no token.

Klein's routes are made from these rows (``api.app.build_app``): a route module only names
its handlers (``@on("actions.submit")``).  Adding a route: add its row (method, werkzeug
path, endpoint, scope, summary, schemas, where it is answered) here and its handler in a
route module listed in ``api.app.ROUTE_MODULES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import action_models as am
from . import models as m

PUBLIC = None

#: Where a route naming a host is answered: ``ANYWHERE`` (shared stores: leases, events,
#: assignments, the action queue) or ``OWNER`` (state that lives with the host's transport:
#: another instance answers ``307`` to the owner, after the guard has checked the caller).
ANYWHERE = "anywhere"
OWNER = "owner"
HOST_PARAMS = ("session_id", "host_session_id")

#: Where a route finds the private beach it acts in (``beach``), checked by the guard with
#: :class:`~beachmanager.api.access.BeachAccess` against the route's ``role`` before the
#: handler runs: the ``private_beach_id`` in its path or its body, the beaches of the session
#: in its path, those of the host an operator route names (a host in no beach: scope only),
#: a beach the request creates (``NEW``: body ``id``), or none (``MANAGER``: the manager's
#: own routes).  Every guarded row must say which (a test keeps ``unscoped_routes`` empty).
PATH, BODY, SESSION, HOST, NEW, MANAGER = "path", "body", "session", "host", "new", "manager"
BEACH_SOURCES = (PATH, BODY, SESSION, HOST, NEW, MANAGER)
VIEWER, CONTRIBUTOR, ADMIN = "viewer", "contributor", "admin"

#: Scopes invented here (not in the legacy manager): API description and debug routes.
SCOPE_MANAGER_READ = "pb:manager.read"
SCOPE_MANAGER_DEBUG = "pb:manager.debug"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # werkzeug rule, e.g. /sessions/<session_id>/controller/lease
    endpoint: str  # the handler's name (``module.name``, registered with ``Handlers``)
    scope: str | None
    summary: str
    request: dict[str, Any] | None = None  # JSON body schema
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    response: dict[str, Any] | None = None  # success body schema (JSON)
    content_type: str = "application/json"
    errors: tuple[int, ...] = ()
    answered_by: str | None = None  # ANYWHERE or OWNER; required on routes naming a host
    beach: str | None = None  # one of BEACH_SOURCES; required on guarded routes
    role: str = VIEWER  # the least membership role that may call it (beach routes)
    status: int = 200  # the success status

    @property
    def public(self) -> bool:
        return self.scope is PUBLIC

    @property
    def path_params(self) -> list[str]:
        return [p.split(":")[-1] for p in re.findall(r"<([^>]+)>", self.path)]

    @property
    def host_param(self) -> str | None:
        return next((p for p in self.path_params if p in HOST_PARAMS), None)

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", self.path)


ROUTES: tuple[Route, ...] = (
    # -- probes (public) -------------------------------------------------------
    Route("GET", "/healthz", "health.healthz", PUBLIC, "Liveness: plain-text OK", content_type="text/plain"),
    Route("GET", "/readyz", "health.readyz", PUBLIC, "Readiness of every part (503 naming the parts not ready)",
          response={"type": "object"}, errors=(503,)),
    Route("GET", "/metrics", "health.metrics", PUBLIC, "Prometheus metrics", content_type="text/plain"),
    # -- manager ----------------------------------------------------------------
    Route("GET", "/debug/info", "health.info", SCOPE_MANAGER_DEBUG, "Instance id, impl, version, uptime, stores",
          response={"type": "object"}, beach=MANAGER),
    Route("GET", "/openapi.json", "openapi.document", SCOPE_MANAGER_READ, "This API description (OpenAPI 3.1)",
          response={"type": "object"}, beach=MANAGER),
    Route("GET", "/debug/transports", "debug.transports", SCOPE_MANAGER_DEBUG,
          "Every managed host's transport: status, phase, ids, heartbeat, byte counts",
          response={"type": "object"}, errors=(503,), beach=MANAGER),
    Route("GET", "/debug/transports/<host_session_id>", "debug.transport", SCOPE_MANAGER_DEBUG,
          "One host's transport with its phase timeline (never payloads)",
          response={"type": "object"}, errors=(400, 404), answered_by=OWNER, beach=HOST),
    Route("GET", "/debug/hosts/<host_session_id>/cache", "debug.host_cache", SCOPE_MANAGER_DEBUG,
          "One host's terminal mirror: text rows, viewport, cursor, sync state",
          response={"type": "object"}, errors=(400, 404), answered_by=OWNER, beach=HOST),
    Route("GET", "/debug/assignments", "debug.assignments", SCOPE_MANAGER_DEBUG,
          "Cluster membership, every host's owner (assigned_at, reason, reassigned_from, ready), "
          "this instance's hosts and the latest moves", query={
              "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
              "mine": {"type": "integer", "enum": [0, 1]}},
          response={"type": "object"}, errors=(400, 503), beach=MANAGER),
    Route("GET", "/debug/assignments/<host_session_id>", "debug.assignment", SCOPE_MANAGER_DEBUG,
          "One host's owner and that owner's endpoint", response={"type": "object"},
          errors=(400, 404, 503), answered_by=ANYWHERE, beach=HOST),
    # -- the operator console (api/ui) --------------------------------------------
    Route("GET", "/ui/", "ui.page", SCOPE_MANAGER_DEBUG,
          "The operator console: a live status page (HTML; no build step, nothing fetched "
          "from elsewhere)", content_type="text/html", beach=MANAGER),
    Route("GET", "/ui/static/<name>", "ui.asset", SCOPE_MANAGER_DEBUG,
          "The console's script, styles and icon (shipped in the package)",
          content_type="text/plain", errors=(404,), beach=MANAGER),
    Route("GET", "/ui/stream", "ui.stream", SCOPE_MANAGER_DEBUG,
          "The console's live feed (server-sent events: `view` frames; with ?host, `host` "
          "frames of that host's timeline and terminal; once=1 ends after the first)", query={
              "host": {"type": "string", "minLength": 1, "maxLength": 256},
              "once": {"type": "integer", "enum": [0, 1]}},
          content_type="text/event-stream", errors=(400, 503), beach=MANAGER),
    # -- private beaches and their members (api/beaches.py) -----------------------
    Route("POST", "/private-beaches", "beaches.create", "pb:beaches.write",
          "Create a private beach owned by the caller (a token bound to a beach creates that one)",
          request=m.BEACH_CREATE_REQUEST, response=m.BEACH, errors=(400, 409, 413, 415, 503),
          beach=NEW, status=201),
    Route("GET", "/private-beaches/<private_beach_id>/members", "beaches.members", "pb:beaches.read",
          "Members of a private beach (owner, roles, statuses)", response=m.MEMBER_LIST,
          errors=(400, 503), beach=PATH),
    Route("PUT", "/private-beaches/<private_beach_id>/members/<account_id>", "beaches.put_member",
          "pb:beaches.write", "Add a member or change its role or status (admin; owner for the "
          "owner role)", request=m.MEMBER_REQUEST, response=m.MEMBER,
          errors=(400, 409, 413, 415, 503), beach=PATH, role=ADMIN),
    Route("DELETE", "/private-beaches/<private_beach_id>/members/<account_id>",
          "beaches.remove_member", "pb:beaches.write", "Remove a member (admin; owner for an owner)",
          response=m.MEMBER_REMOVED, errors=(400, 404, 409, 503), beach=PATH, role=ADMIN),
    # -- sessions ---------------------------------------------------------------
    Route("POST", "/sessions/register", "sessions.register", "pb:sessions.register",
          "Register a host session (harness); revokes other leases and issues a registration lease",
          request=m.REGISTER_REQUEST, response=m.REGISTER_RESPONSE, errors=(400, 413, 415, 503),
          beach=BODY, role=CONTRIBUTOR),
    Route("GET", "/private-beaches/<private_beach_id>/sessions", "sessions.list", "pb:sessions.read",
          "Sessions of a private beach", response=m.SESSION_LIST, errors=(400, 503), beach=PATH),
    Route("POST", "/private-beaches/<private_beach_id>/sessions/attach-by-code", "sessions.attach_by_code", "pb:sessions.write",
          "Attach a host by its join code (verified with Beach Road), then hand it to the attach machinery",
          request=m.ATTACH_BY_CODE_REQUEST, response=m.ATTACH_BY_CODE_RESPONSE,
          errors=(400, 403, 413, 415, 502, 503, 504), beach=PATH, role=CONTRIBUTOR),
    # -- controller leases ------------------------------------------------------
    Route("POST", "/sessions/<session_id>/controller/lease", "leases.acquire", "pb:control.write",
          "Acquire or renew a controller lease (same token for the same account and reason)",
          request=m.LEASE_REQUEST, query=m.TENANT_QUERY, response=m.LEASE_RESPONSE,
          errors=(400, 404, 409, 413, 415, 503), answered_by=ANYWHERE, beach=SESSION,
          role=CONTRIBUTOR),
    Route("DELETE", "/sessions/<session_id>/controller/lease", "leases.release", "pb:control.write",
          "Release a controller lease (409 when the token names no lease of this session)",
          request=m.RELEASE_REQUEST, query=m.TENANT_QUERY, response=m.RELEASE_RESPONSE,
          errors=(400, 404, 409, 413, 415, 503), answered_by=ANYWHERE, beach=SESSION,
          role=CONTRIBUTOR),
    Route("GET", "/sessions/<session_id>/controller-events", "leases.events", "pb:sessions.read",
          "Controller events of a session, newest first",
          query={**m.EVENT_QUERY, **m.TENANT_QUERY}, response=m.CONTROLLER_EVENTS, errors=(400, 404, 409, 503), answered_by=ANYWHERE,
          beach=SESSION),
    # -- controller actions (api/actions.py) -------------------------------------
    Route("POST", "/sessions/<session_id>/actions", "actions.submit", "pb:control.write",
          "Queue actions for the host (needs an active lease; 429 with Retry-After at the queue bound or over the admission target)",
          request=am.ACTIONS_REQUEST, query=m.TENANT_QUERY, response=am.ACTIONS_RESPONSE,
          errors=(400, 404, 409, 413, 415, 429, 503), answered_by=ANYWHERE, beach=SESSION,
          role=CONTRIBUTOR),
    Route("GET", "/sessions/<session_id>/actions/<action_id>", "actions.get", "pb:control.read",
          "One action: queued, delivered, or acked with its status and latency",
          query=m.TENANT_QUERY, response=am.ACTION_STATUS, errors=(400, 404, 409, 503), answered_by=OWNER,
          beach=SESSION),
    Route("GET", "/sessions/<session_id>/state", "actions.state", "pb:control.read",
          "The host's latest state diff (null before the first)", query=m.TENANT_QUERY,
          response=am.STATE_RESPONSE, errors=(400, 404, 409, 503), answered_by=OWNER,
          beach=SESSION),
    Route("GET", "/sessions/<session_id>/health", "actions.health", "pb:control.read",
          "The host's latest health heartbeat (null before the first)", query=m.TENANT_QUERY,
          response=am.HEALTH_RESPONSE, errors=(400, 404, 409, 503), answered_by=OWNER,
          beach=SESSION),
)

_BY_KEY: dict[tuple[str, str], Route] = {(r.method, r.path): r for r in ROUTES}
assert len(_BY_KEY) == len(ROUTES), "duplicate row in the route table"


def unclassified_routes() -> list[tuple[str, str]]:
    """Rows naming a host without ``answered_by`` (a test keeps this empty, so a new host
    route is never answered by the wrong instance by accident)."""
    return [(r.method, r.path) for r in ROUTES if r.host_param and r.answered_by is None]


def unscoped_routes() -> list[tuple[str, str]]:
    """Guarded rows that do not say where their private beach comes from (a test keeps this
    empty, so no route skips the membership check by omission)."""
    return [(r.method, r.path) for r in ROUTES if not r.public and r.beach not in BEACH_SOURCES]


def lookup(method: str, path: str) -> Route | None:
    """The row for a request method (HEAD counts as GET) and a werkzeug rule string."""
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    return _BY_KEY.get((method, path))
