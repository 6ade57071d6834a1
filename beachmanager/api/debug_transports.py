"""Debug views of the host transports and terminal mirrors (never payloads or join codes).

* ``GET /debug/transports`` -- every managed host: status, phase, ids, heartbeat, byte counts;
* ``GET /debug/transports/<host_session_id>`` -- the same for one host, plus the phase timeline,
  signaling state and mirror summary;
* ``GET /debug/hosts/<host_session_id>/cache`` -- the mirror: text rows, viewport, cursor, sync.
"""

from __future__ import annotations

from .deps import ApiDeps
from .handlers import Handlers
from .responses import error_body, json_body

MAX_ROWS = 2000


def install(on: Handlers, deps: ApiDeps) -> None:
    @on("debug.transports")
    def transports(request):
        hosts = deps.hosts
        if hosts is None:
            return error_body(request, 503, "service_unavailable", "the hosts service is not running")
        items = [hosts.transport_state(h) for h in list(hosts.machines)]
        return json_body(request, {"counts": hosts.counts(), "transports": items})

    @on("debug.transport")
    def transport(request, host_session_id):
        hosts = deps.hosts
        state = hosts.transport_state(host_session_id, detail=True) if hosts is not None else None
        if state is None:
            return error_body(request, 404, "not_found", f"no managed host {host_session_id}",
                              "host_not_managed")
        return json_body(request, state)

    @on("debug.host_cache")
    def cache(request, host_session_id):
        hosts = deps.hosts
        mirror = hosts.mirror(host_session_id) if hosts is not None else None
        if mirror is None:
            return error_body(request, 404, "not_found", f"no managed host {host_session_id}",
                              "host_not_managed")
        rows = mirror.text_rows()
        return json_body(request, {
            "host_session_id": host_session_id,
            "summary": mirror.summary(),
            "viewport": mirror.viewport(),
            "rows": rows[-MAX_ROWS:],
            "rows_truncated": max(0, len(rows) - MAX_ROWS),
        })
