"""Requests about a host that another manager instance owns: redirected or forwarded.

:class:`OwnerRouting` wraps the API's resource.  For a request whose route names a host
(see :data:`FORWARD`, :data:`REDIRECT`, :data:`LOCAL`):

* the host is held here, unowned, or its owner is not live: answered here, as usual;
* ``FORWARD`` (controller actions): carried over the owner's Redis inbox stream
  (:mod:`beachmanager.assign.relay`) and answered with the owner's answer, so a
  controller may send actions to any instance.  The owner authenticates the request;
* ``REDIRECT`` (reads of state that lives with the transport): after this instance has
  checked the token and its scope, ``307`` with ``Location`` on the owner and a JSON body
  naming it (``error_code`` ``owned_elsewhere``);
* ``LOCAL`` routes read shared stores (leases, events, assignments): answered anywhere.

Requests replayed by the relay carry ``x-beach-forwarded-by`` and are always answered
locally, so nothing is forwarded twice.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..assign.relay import FORWARDED_BY, REQUEST_HEADERS, SERVED_BY, RelayTimeout
from ..context import ManagerContext
from .errors import error_response
from .responses import error_body, json_body
from .route_table import ROUTES

log = Logger(namespace="beachmanager.api.routing")

HOST_PARAMS = ("session_id", "host_session_id")
FORWARD = frozenset({("POST", "/sessions/<session_id>/actions")})
REDIRECT = frozenset({
    ("GET", "/sessions/<session_id>/actions/<action_id>"),
    ("GET", "/sessions/<session_id>/state"),
    ("GET", "/sessions/<session_id>/health"),
    ("GET", "/debug/transports/<host_session_id>"),
    ("GET", "/debug/hosts/<host_session_id>/cache"),
})
LOCAL = frozenset({
    ("POST", "/sessions/<session_id>/controller/lease"),
    ("DELETE", "/sessions/<session_id>/controller/lease"),
    ("GET", "/sessions/<session_id>/controller-events"),
    ("GET", "/debug/assignments/<host_session_id>"),
})
MAX_FORWARD_BODY = 2 * 1024 * 1024


def _compile(rule: str) -> re.Pattern[str]:
    parts = re.split(r"(<[^>]+>)", rule)
    out = []
    for part in parts:
        if part.startswith("<"):
            out.append(f"(?P<{part[1:-1].split(':')[-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


#: (method, compiled rule, rule, kind) for every routed row.
_TABLE = [(m, _compile(rule), rule, "forward" if (m, rule) in FORWARD else "redirect")
          for m, rule in sorted(FORWARD | REDIRECT)]


def match(method: str, path: str) -> tuple[str, str, str] | None:
    """(kind, rule, host_session_id) for a request that may be routed elsewhere, else None."""
    method = "GET" if method == "HEAD" else method
    for m, pattern, rule, kind in _TABLE:
        if m != method:
            continue
        found = pattern.match(path)
        if found:
            host = next(found.group(p) for p in HOST_PARAMS if p in found.groupdict())
            return kind, rule, host
    return None


def unclassified_routes() -> list[tuple[str, str]]:
    """Rows of the route table that name a host but are in none of the three sets (a test
    keeps this empty, so a new host route is never routed by accident)."""
    known = FORWARD | REDIRECT | LOCAL
    return [(r.method, r.path) for r in ROUTES
            if any(p in HOST_PARAMS for p in r.path_params) and (r.method, r.path) not in known]


class OwnerRouting(Resource):
    isLeaf = True

    def __init__(self, inner: Resource, ctx: ManagerContext):
        super().__init__()
        self.inner = inner
        self.ctx = ctx

    def render(self, request):
        found = self._candidate(request)
        if found is None:
            return self.inner.render(request)
        d = ensureDeferred(self._route(request, *found))
        d.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _candidate(self, request) -> tuple[str, str, str] | None:
        if request.getHeader(FORWARDED_BY) is not None:
            return None
        svc = self.ctx.parts.get("assign")
        if svc is None or svc.store is None or svc.store.name == "memory":
            return None  # one instance: every host is here or nowhere
        path = request.path.decode("utf-8", "replace")
        found = match(request.method.decode("ascii", "replace"), path)
        if found is None or svc.owns(found[2]):
            return None
        return found

    async def _route(self, request, kind: str, rule: str, host: str) -> None:
        svc = self.ctx.parts["assign"]
        try:
            row = await svc.lookup(host)
            owner = row.owner if row is not None else None
            endpoint = await svc.endpoint_of(owner) if owner and owner != svc.instance_id else None
        except Exception as e:
            log.warn("routing: owner lookup for {host_session_id} failed ({error}); answering here",
                     host_session_id=host, error=str(e) or type(e).__name__)
            owner, endpoint = None, None
        if not owner or owner == svc.instance_id or endpoint is None:
            return self._local(request)
        if kind == "forward" and svc.relay is not None:
            return await self._forward(request, svc, owner, host)
        return await self._redirect(request, rule, owner, endpoint, host)

    def _local(self, request) -> None:
        result = self.inner.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
            request.finish()

    async def _forward(self, request, svc, owner: str, host: str) -> None:
        body = request.content.read(MAX_FORWARD_BODY + 1) if request.content is not None else b""
        if len(body) > MAX_FORWARD_BODY:
            return self._finish(request, error_body(request, 413, "payload_too_large",
                                                    "request body too large", "body_too_large"))
        headers = {}
        for name in REQUEST_HEADERS:
            value = request.getHeader(name.encode())
            if value is not None:
                headers[name] = value.decode("latin-1")
        path = request.uri.decode("utf-8", "replace")
        try:
            answer = await svc.relay.forward(owner, request.method.decode(), path, headers, body)
        except RelayTimeout as e:
            request.setHeader(b"retry-after", b"1")
            return self._finish(request, error_body(request, 504, "upstream_timeout", str(e),
                                                    "forward_timeout", manager_instance_id=owner))
        request.setResponseCode(answer.status)
        for name, value in answer.headers.items():
            request.setHeader(name.encode(), value.encode())
        log.debug("routing: {method} {path} served by {owner}", method=request.method, path=path,
                  owner=owner, host_session_id=host)
        self._finish(request, answer.body)

    async def _redirect(self, request, rule: str, owner: str, endpoint: str, host: str) -> None:
        method = request.method.decode("ascii", "replace")
        route = f"{'GET' if method == 'HEAD' else method} {rule}"
        auth = self.ctx.parts.get("auth")
        row = next((r for r in ROUTES if (r.method, r.path) == (route.split(" ", 1)[0], rule)), None)
        try:
            if auth is None or row is None:
                raise RuntimeError("no auth part: refusing")
            principal = await auth.authenticate(request.getHeader(b"authorization"), route)
            auth.authorize(principal, row.scope, route)
        except Exception as e:
            return self._finish(request, error_response(request, e))
        location = endpoint + request.uri.decode("utf-8", "replace")
        request.setHeader(b"location", location.encode())
        request.setHeader(SERVED_BY, owner.encode())
        body: dict[str, Any] = {
            "error": "temporary_redirect", "error_code": "owned_elsewhere",
            "message": f"host {host} is managed by {owner}; repeat the request there",
            "host_session_id": host, "manager_instance_id": owner, "endpoint": endpoint,
            "location": location}
        self._finish(request, json_body(request, body, 307))

    @staticmethod
    def _finish(request, data: bytes) -> None:
        if not request.finished and not getattr(request, "_disconnected", False):
            request.write(data)
            request.finish()

    def _failed(self, failure, request) -> None:
        log.failure("routing failed for {path}", failure=failure, path=request.path)
        self._finish(request, error_body(request, 500, "internal_error", "internal error",
                                         "internal_error"))


def wrap(resource: Resource, ctx: ManagerContext) -> Resource:
    """The API resource behind :class:`OwnerRouting`."""
    return OwnerRouting(resource, ctx)
