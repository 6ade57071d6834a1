"""The console's routes (rows in ``api.route_table``, all ``pb:manager.debug``).

* ``GET /ui/`` -- the page;
* ``GET /ui/static/<name>`` -- its script and styles, read once from the package's
  ``static/`` folder (installed with the package: ``setup.cfg`` package_data);
* ``GET /ui/stream[?host=ID][&once=1]`` -- the live feed (:mod:`.hub`): ``view`` frames, and
  ``host`` frames with the detail of *host*; ``once=1`` ends the stream after the first ones.

Every answer forbids loading anything from another origin (``content-security-policy``).
"""

from __future__ import annotations

from importlib import resources

from ..deps import ApiDeps
from ..handlers import Handlers
from ..responses import error_body
from .hub import ConsoleBusy

#: The assets the page loads, with their content types; nothing else is served.
ASSETS = {"console.js": b"text/javascript; charset=utf-8", "console.css": b"text/css; charset=utf-8",
          "favicon.svg": b"image/svg+xml"}
PAGE = "index.html"
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_HOST_ID = 256


def static_file(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _secure(request, content_type: bytes) -> None:
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"content-security-policy", CSP)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"cache-control", b"no-store")


def _query(request, name: str) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"{name} is given more than once")
    return values[0].decode("utf-8", "strict")


def stream_args(request) -> tuple[str | None, bool]:
    """``(host, once)`` from the query; raises ValueError with a sentence on bad input."""
    try:
        host, once = _query(request, "host"), _query(request, "once")
    except UnicodeDecodeError:
        raise ValueError("the query is not UTF-8") from None
    if host is not None and (not 1 <= len(host) <= MAX_HOST_ID
                             or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in host)):
        raise ValueError(f"host must be a host session id of 1-{MAX_HOST_ID} printable characters")
    if once not in (None, "0", "1"):
        raise ValueError("once must be 0 or 1")
    return host, once == "1"


def install(on: Handlers, deps: ApiDeps) -> None:
    page = static_file(PAGE)
    assets = {name: (kind, static_file(name)) for name, kind in ASSETS.items()}

    @on("ui.page")
    def index(request):
        _secure(request, b"text/html; charset=utf-8")
        return page

    @on("ui.asset")
    def asset(request, name):
        found = assets.get(name)
        if found is None:
            return error_body(request, 404, "not_found", f"no console asset {name!r}",
                              "asset_not_found")
        _secure(request, found[0])
        return found[1]

    @on("ui.stream")
    def stream(request):
        hub = deps.console
        try:
            host, once = stream_args(request)
        except ValueError as e:
            return error_body(request, 400, "bad_request", str(e), "invalid_query")
        if hub is None:
            return error_body(request, 503, "service_unavailable", "the console is not running",
                              "console_unavailable")
        try:
            opened = hub.open(request, host=host, once=once)
        except ConsoleBusy as e:
            request.setHeader(b"retry-after", b"5")
            return error_body(request, 503, "service_unavailable", str(e), "console_busy")
        return opened.done
