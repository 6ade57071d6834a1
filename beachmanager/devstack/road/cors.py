"""Permissive CORS for every dev Road route, as upstream Road (reference road §1.1).

:class:`CorsResource` wraps the whole HTTP app once, so no route handles CORS itself:

* an ``OPTIONS`` request on any path (a browser's preflight) answers ``204`` with
  ``Access-Control-Allow-Origin`` (the request's ``Origin``, or ``*``),
  ``-Allow-Methods``, ``-Allow-Headers`` (the requested headers, or a default list)
  and ``-Max-Age``; it never reaches a route;
* every other answer (404, 405, 413, 415, 500 ... included) carries
  ``Access-Control-Allow-Origin``: the header is set before the app renders.

Echoed values are bounded and must be printable ASCII; anything else falls back to the
defaults.  No credentials are allowed (upstream's permissive layer allows none).
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web.resource import IResource, Resource

ALLOW_METHODS = b"GET, POST, OPTIONS"
DEFAULT_ALLOW_HEADERS = b"content-type, authorization, x-account-id"
MAX_AGE_SECONDS = 600
#: Longest Origin or Access-Control-Request-Headers value echoed back.
MAX_ECHO_BYTES = 1024


def _echoable(value: bytes | None) -> bytes | None:
    """*value* when it is safe to send back as a header value, else None."""
    if not value or len(value) > MAX_ECHO_BYTES:
        return None
    if any(b < 0x20 or b > 0x7E for b in value):
        return None
    return value


class CorsResource(Resource):
    """Wraps *app* (the Klein resource): CORS headers on everything, preflights answered here."""

    log = Logger()
    isLeaf = True  # the wrapped app routes on the full path itself

    def __init__(self, app: IResource):
        super().__init__()
        self.app = app

    def render(self, request):
        origin = _echoable(request.getHeader(b"origin"))
        request.setHeader(b"access-control-allow-origin", origin or b"*")
        if origin is not None:
            request.setHeader(b"vary", b"origin")
        if request.method == b"OPTIONS":
            return self._preflight(request)
        return self.app.render(request)

    @staticmethod
    def _preflight(request) -> bytes:
        headers = _echoable(request.getHeader(b"access-control-request-headers"))
        request.setResponseCode(204)
        request.setHeader(b"access-control-allow-methods", ALLOW_METHODS)
        request.setHeader(b"access-control-allow-headers", headers or DEFAULT_ALLOW_HEADERS)
        request.setHeader(b"access-control-max-age", str(MAX_AGE_SECONDS).encode())
        return b""
