"""The zero-trust guard: every request to a non-public route is authenticated and scope-checked.

:func:`guarded_app` makes the Klein app; its ``execute_endpoint`` (the single point
every matched request passes) looks up the matched rule in
:mod:`~beachmanager.api.route_table`, authenticates the bearer token, checks the
route's scope and resolves the private beach the request acts in (the row's ``beach``:
path, body, the session's, the host's), checking membership there (:mod:`.access`), before
the handler runs, which reads it with :func:`tenant_of`; a read that the host's owner answers is redirected there
(:mod:`.routing`).  Routes missing from the table are refused.  Unmatched
paths and methods get JSON 404/405 answers.

Imported lazily (it imports Klein, which installs a reactor).
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from ..auth.principal import AuthFailure, Principal
from ..auth.service import AuthService
from ..ratelimit import RateLimited, RateLimits
from ..registry.store import Tenant
from . import route_table as rt
from .access import BeachAccess
from .errors import ApiError, error_response
from .responses import error_body
from .route_table import lookup
from .routing import OwnerRedirect
from .schema import query_arg, read_json
from .tenancy import TenancyError


def principal_of(request) -> Principal:
    """The authenticated caller of a guarded request (set by the guard before the handler runs)."""
    return request.beach_principal


def tenant_of(request) -> Tenant:
    """The tenant a guarded request acts in (rows with a private beach; set by the guard)."""
    tenant = request.beach_tenant
    if tenant is None:
        raise ApiError(500, "this route names no private beach", "internal_error")
    return tenant


class GuardedKlein(Klein):
    log = Logger()

    def __init__(self, auth: AuthService, access: BeachAccess, limits: RateLimits,
                 redirect: OwnerRedirect | None = None):
        super().__init__()
        self.auth = auth
        self.access = access
        self.limits = limits
        self.redirect = redirect

        @self.handle_errors(NotFound)
        def not_found(request, failure):
            return error_body(request, 404, "not_found", "no such route", "route_not_found")

        @self.handle_errors(MethodNotAllowed)
        def not_allowed(request, failure):
            allowed = failure.value.valid_methods or []
            request.setHeader(b"allow", ", ".join(sorted(allowed)).encode())
            return error_body(request, 405, "method_not_allowed", "this route does not take that method",
                              "method_not_allowed")

    def execute_endpoint(self, endpoint: str, request, *args: Any, **kwargs: Any):
        from klein.interfaces import IKleinRequest

        rule, _ = IKleinRequest(request).mapper.match(return_rule=True)
        method = request.method.decode("ascii", "replace")
        row = lookup(method, rule.rule)
        if row is not None and row.public:
            return super().execute_endpoint(endpoint, request, *args, **kwargs)
        route = f"{method} {rule.rule}"
        return ensureDeferred(self._guarded(row, route, endpoint, request, args, kwargs))

    async def _guarded(self, row, route: str, endpoint: str, request, args, kwargs):
        auth, limits = self.auth, self.limits
        address = client_address(request)
        try:
            limits.before_auth(address)
            try:
                principal = await auth.authenticate(request.getHeader(b"authorization"), route)
            except AuthFailure as e:
                if e.status == 401:  # a missing or bad token: the address's budget pays
                    limits.auth_failed(address)
                raise
            if row is None:  # even a wildcard token (or the dev bypass) may not call it
                self.log.error("route {route} is not in the route table: refused", route=route)
                raise auth.refuse(AuthFailure("missing_scope", "this route is not in the route table",
                                              kid=principal.kid, authority=principal.authority), route)
            auth.authorize(principal, row.scope, route)
            tenant = request.beach_tenant = await self._tenant(row, principal, request, kwargs, route)
            if row.method in WRITES:
                limits.write(principal, tenant.private_beach_id if tenant is not None else None)
        except RateLimited as e:
            request.setHeader(b"retry-after", str(e.retry_after).encode())
            return error_response(request, ApiError(429, str(e), "rate_limited", limit=e.limit,
                                                    retry_after_seconds=e.retry_after))
        except AuthFailure as e:
            return error_response(request, e)
        except TenancyError as e:
            message = e.message.replace("with private_beach_id", "with ?private_beach_id=")
            return error_response(request, ApiError(e.status, message, e.code, **e.extra))
        except Exception as e:  # fail closed
            return error_response(request, e)
        if principal.authority == "bypass":
            request.setHeader(b"x-beach-auth-bypass", b"1")
        if self.redirect is not None and row is not None:
            moved = await self.redirect.elsewhere(request, row, kwargs)
            if moved is not None:
                return moved
        request.beach_principal = principal
        result = super().execute_endpoint(endpoint, request, *args, **kwargs)
        if isinstance(result, Deferred):
            result = await result
        return result


    async def _tenant(self, row: rt.Route, principal: Principal, request, kwargs,
                      route: str) -> Tenant | None:
        """The private beach of the request, checked (see :mod:`.access`)."""
        access, source = self.access, row.beach
        if source == rt.PATH:
            return await access.in_beach(principal, kwargs["private_beach_id"], row.role, route)
        if source == rt.BODY:
            body = read_json(request, row.request or {"type": "object"})
            return await access.in_beach(principal, body["private_beach_id"], row.role, route)
        if source == rt.SESSION:
            return await access.in_session(principal, kwargs["session_id"],
                                           query_arg(request, "private_beach_id"), row.role, route)
        if source == rt.HOST:
            assert row.host_param is not None
            return await access.of_host(principal, kwargs[row.host_param], row.role, route)
        if source == rt.NEW:  # the handler creates it; a bound token creates its own only
            body = read_json(request, row.request or {"type": "object"})
            wanted = body.get("id") or principal.private_beach_id
            if wanted is not None:
                self.auth.check_beach(principal, wanted, route)
            return None
        if source == rt.MANAGER:
            return None
        raise self.auth.refuse(AuthFailure("missing_scope", "this route does not say which private "
                                           "beach it acts in", kid=principal.kid,
                                           authority=principal.authority), route)


def guarded_app(auth: AuthService, access: BeachAccess, limits: RateLimits,
                redirect: OwnerRedirect | None = None) -> GuardedKlein:
    return GuardedKlein(auth, access, limits, redirect)


#: The methods of the write paths (rate-limited per account and per private beach).
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def client_address(request) -> str:
    """The peer's address (the proxy's, behind one: its clients share a failure budget)."""
    peer = request.getClientAddress()
    return str(getattr(peer, "host", None) or "local")
