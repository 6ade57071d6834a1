"""Assemble the HTTP API: one Klein app, route modules installed in order.

Klein is imported here, lazily: importing it installs the default reactor, so it
must never load before ``--reactor=beach-asyncio`` has done its work.
"""

from __future__ import annotations

from . import actions, assignments, beaches, debug_transports, health, leases, openapi, sessions
from .deps import ApiDeps
from .handlers import Handlers
from .route_table import ROUTES
from .ui import routes as ui

#: Route modules; each has ``install(on, deps)`` and names its handlers with ``@on(endpoint)``.
#: Their methods, paths, scopes and placement come from ``api.route_table``.
ROUTE_MODULES = [health, openapi, sessions, beaches, leases, debug_transports, actions, assignments,
                 ui]


def build_app(deps: ApiDeps):
    """The Klein app: one route per row of the route table, bound to its module's handler."""
    from .auth_guard import guarded_app  # imports Klein
    from .routing import OwnerRedirect

    on = Handlers()
    for module in ROUTE_MODULES:
        module.install(on, deps)
    missing = [r.endpoint for r in ROUTES if r.endpoint not in on]
    unrouted = sorted(set(on) - {r.endpoint for r in ROUTES})
    if missing or unrouted:
        raise RuntimeError(f"route table and handlers disagree: no handler for {missing}, "
                           f"no row for {unrouted}")
    app = guarded_app(deps.auth, deps.access, deps.limits, OwnerRedirect(deps.assign))
    for row in ROUTES:
        app.route(row.path, methods=[row.method], endpoint=row.endpoint)(on[row.endpoint])
    return app


def build_site(deps: ApiDeps):
    from twisted.web.http import Request
    from twisted.web.server import Site

    # JSON only: no form-body parsing, which would also parse every Content-Type header
    # with the email package (about 6% of the manager's profile at 500 single-action requests/s)
    site = Site(build_app(deps).resource(), parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.noisy = False
    access = deps.ctx.config.http_access_log
    if access != "all":
        write = site.log

        def log(request: Request) -> None:  # errors only, or nothing
            if access == "errors" and request.code >= 400:
                write(request)

        site.log = log  # type: ignore[method-assign]  # Site offers no hook for this
    return site
