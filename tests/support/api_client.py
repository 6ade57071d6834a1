"""Run a whole manager (build_manager) on 127.0.0.1:0 and talk to its HTTP API with treq."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import treq
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred

from beachmanager import config
from beachmanager.manager import build_manager
from beachmanager.registry.store import Tenant
from beachmanager.telemetry.metrics import Metrics


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def error_code(self) -> str | None:
        return self.body.get("error_code") if isinstance(self.body, dict) else None


@dataclass
class Running:
    root: Any
    base: str
    metrics: Metrics

    @property
    def ctx(self):
        return self.root.ctx

    @property
    def parts(self):
        return self.root.parts

    def failures(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value("auth_failure_total", {"reason": reason}) or 0.0

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        hdrs = {k: [v] for k, v in (headers or {}).items()}
        if token is not None:
            hdrs["Authorization"] = [f"Bearer {token}"]
        kwargs: dict[str, Any] = {"headers": hdrs}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", ["application/json"])
        elif raw is not None:
            kwargs["data"] = raw
        response = await treq.request(method, self.base + path, **kwargs)
        text = await response.content()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return Reply(response.code, parsed, response.headers)

    async def stop(self) -> None:
        await self.root.stopService()


async def start_manager(publisher: Any = None, owners: dict[str, str] | None = None,
                        **overrides: Any) -> Running:
    """A whole manager on a free port; *publisher* replaces the controller's bus end;
    *owners*: ``{private beach: account}``, beaches created (in its registry) with that owner."""
    cfg = config.defaults(http_endpoint="tcp:0:interface=127.0.0.1", **overrides)
    metrics = Metrics(CollectorRegistry())
    fatal: list[int] = []
    root = build_manager(cfg, reactor, metrics=metrics, on_fatal=fatal.append, publisher=publisher)
    root.startService()
    try:
        await root.parts.http.whenReady()
        await root.parts.registry.whenReady()
        await root.parts.auth.whenReady()
    except BaseException:
        await root.stopService()
        raise
    for beach, account in (owners or {}).items():
        await root.parts.registry.store.create_beach(Tenant(beach, account), None, 0)
    host, port = root.parts.http.address()
    return Running(root, f"http://{host}:{port}", metrics)


def start(**overrides: Any):
    """A Deferred of :class:`Running` (for inlineCallbacks-style callers)."""
    return ensureDeferred(start_manager(**overrides))
