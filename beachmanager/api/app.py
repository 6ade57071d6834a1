"""Assemble the HTTP API: one Klein app, route modules installed in order.

Klein is imported here, lazily: importing it installs the default reactor, so it
must never load before ``--reactor=beach-asyncio`` has done its work.
"""

from __future__ import annotations

from . import actions, assignments, debug_transports, health, leases, openapi, sessions
from .deps import ApiDeps

#: Route modules; each has ``install(app, deps)``.  Every route needs a row in
#: ``api.route_table`` (scope or PUBLIC); the guard refuses routes without one.
ROUTE_MODULES = [health, openapi, sessions, leases, debug_transports, actions, assignments]


def build_app(deps: ApiDeps):
    from .auth_guard import guarded_app  # imports Klein
    from .routing import OwnerRedirect

    app = guarded_app(deps.auth, OwnerRedirect(deps.assign))
    for module in ROUTE_MODULES:
        module.install(app, deps)
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
