"""Liveness, readiness, metrics and instance info: ``/healthz``, ``/readyz``, ``/metrics``, ``/debug/info``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .deps import ApiDeps
from .handlers import Handlers
from .responses import json_body, text_body


def install(on: Handlers, deps: ApiDeps) -> None:
    ctx = deps.ctx

    @on("health.healthz")
    def healthz(request):
        return text_body(request, "OK")

    @on("health.readyz")
    def readyz(request):
        ready, children = deps.readiness()
        if ready:
            return json_body(request, {"status": "ready", "children": children})
        not_ready = sorted(name for name, st in children.items() if not st["ready"])
        return json_body(request, {"status": "not_ready", "not_ready": not_ready,
                                   "children": children}, 503)

    @on("health.metrics")
    def metrics(request):
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(ctx.metrics.registry)

    @on("health.info")
    def debug_info(request):
        cfg = ctx.config
        return json_body(request, {
            "instance_id": cfg.instance_id,
            "impl": cfg.impl,
            "version": ctx.version,
            "uptime_seconds": round(ctx.uptime(), 3),
            "capacity": cfg.capacity,
            "stores": cfg.stores,
            "road_url": cfg.road_url,
        })
