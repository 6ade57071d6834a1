"""Assemble the HTTP API: one Klein app, route modules installed in order.

Klein is imported here, lazily: importing it installs the default reactor, so it
must never load before ``--reactor=beach-asyncio`` has done its work.
"""

from __future__ import annotations

from ..context import ManagerContext
from . import actions, assignments, debug_transports, health, leases, openapi, sessions

#: Route modules; each has ``install(app, ctx)``.  Every route needs a row in
#: ``api.route_table`` (scope or PUBLIC); the guard refuses routes without one.
ROUTE_MODULES = [health, openapi, sessions, leases, debug_transports, actions, assignments]


def build_app(ctx: ManagerContext):
    from .auth_guard import guarded_app  # imports Klein

    app = guarded_app(ctx)
    for module in ROUTE_MODULES:
        module.install(app, ctx)
    return app


def build_site(ctx: ManagerContext):
    from twisted.web.server import Site

    from .routing import wrap  # hosts owned by another instance: redirect or forward

    # JSON only: no form-body parsing, which would also parse every Content-Type header
    # with the email package (about 6% of the manager's profile at 500 single-action requests/s)
    site = Site(wrap(build_app(ctx).resource(), ctx), parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.noisy = False
    access = getattr(ctx.config, "http_access_log", "all")
    if access != "all":
        write = site.log

        def log(request) -> None:  # errors only, or nothing
            if access == "errors" and request.code >= 400:
                write(request)

        site.log = log
    return site
