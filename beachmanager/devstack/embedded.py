"""The devstack inside the manager process, for ``make run`` and demos (never production).

``--dev-road PORT`` starts a Road-compatible server on ``127.0.0.1:PORT`` and points the
manager at it; ``--dev-hosts N`` starts N Beach hosts (real PTYs running
``--dev-host-command``) against that Road, records them in private beach
:data:`DEV_PRIVATE_BEACH` and hands them to the attach machinery exactly as
attach-by-code does.  Once they are attached it logs how to drive them.

Stop order (reverse of addition): the manager's transports close first, then the dev
hosts, then the dev Road.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from ..config import Config
from ..service import ReadyService

DEV_PRIVATE_BEACH = "dev"
#: Seconds the dev hosts are given to attach before the demo says which did not.
ATTACH_WAIT = 30.0


def add_dev_road(ctx, root) -> None:
    """The Road part: first child of the tree, so it is the last to stop."""
    from .road.service import RoadService

    road = RoadService(ctx.reactor, f"tcp:{ctx.config.dev_road}:interface=127.0.0.1", clock=ctx.clock)
    road.setServiceParent(root)
    ctx.parts["dev-road"] = road


class DevHosts(ReadyService):
    """Starts the dev hosts once the manager can take them, registers and attaches them."""

    log = Logger()
    critical = False  # the manager itself is fine without its demo hosts

    def __init__(self, ctx, count: int, command: tuple[str, ...]):
        super().__init__("dev-hosts", ctx.clock)
        self.ctx = ctx
        self.count = count
        self.command = command
        self.started: list[Any] = []
        self.attached: list[str] = []

    def start(self) -> Deferred:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        from ..api.sessions import place_and_attach
        from ..api.tenancy import now_ms, registry
        from ..registry.store import Op, Tenant
        from .host.host import start_hosts

        parts = self.ctx.parts
        for name in ("dev-road", "registry", "hosts", "assign"):
            if name in parts:
                await parts[name].whenReady()
        env = {"PS1": "$ ", "TERM": "xterm", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": os.environ.get("HOME", "/")}
        self.started = await start_hosts(self.ctx.config.road_url, self.count, self.ctx.reactor,
                                         command=self.command, env=env)
        tenant, store = Tenant(DEV_PRIVATE_BEACH), registry(self.ctx)
        for host in self.started:
            await store.attach_session(tenant, host.session_id, host.join_code, Op.new(),
                                       now_ms(self.ctx))
            await place_and_attach(self.ctx, tenant, host.session_id, host.join_code)
        await self._wait_attached()

    async def _wait_attached(self) -> None:
        from twisted.internet.defer import DeferredList

        hosts = self.ctx.parts["hosts"]
        waits = []
        for host in self.started:
            machine = hosts.get(host.session_id)
            if machine is not None:
                waits.append(machine.when_ready().addTimeout(ATTACH_WAIT, self.clock))
        results = await DeferredList(waits, consumeErrors=True)
        self.attached = [h.session_id for h, (ok, _) in zip(self.started, results, strict=False) if ok]
        self.log.info(
            "devstack: {attached} of {count} dev host(s) attached in private beach "
            "'{beach}': {ids}", attached=len(self.attached), count=len(self.started),
            beach=DEV_PRIVATE_BEACH, ids=", ".join(h.session_id for h in self.started))
        if self.attached:
            self.log.info(demo_hint(self.ctx.config, self.attached[0]))

    def stop(self) -> Deferred:
        async def _stop() -> None:
            for host in reversed(self.started):
                await host.stop()
            self.started = []

        return ensureDeferred(_stop())

    def status(self) -> dict[str, Any]:
        return {**super().status(), "hosts": [h.session_id for h in self.started],
                "attached": len(self.attached)}


def demo_hint(config: Config, session_id: str) -> str:
    """Where to look and how to send an action, escaped for a twisted.logger format string."""
    base = http_base(config)
    lines = [
        "try it:",
        f"  .venv/bin/python scripts/send_action.py --url {base} 'echo hello from the manager'",
        f"  curl -s {base}/debug/transports",
        f"  curl -s {base}/debug/hosts/{session_id}/cache",
    ]
    return "\n".join(lines).replace("{", "{{").replace("}", "}}")


def http_base(config: Config) -> str:
    """A URL for the HTTP endpoint (``tcp:PORT[:interface=ADDR]``), for humans."""
    parts = dict(p.split("=", 1) for p in config.http_endpoint.split(":")[2:] if "=" in p)
    port = config.http_endpoint.split(":")[1]
    iface = parts.get("interface", "127.0.0.1")
    return f"http://{'127.0.0.1' if iface in ('0.0.0.0', '::') else iface}:{port}"


def add_dev_hosts(ctx, root) -> None:
    hosts = DevHosts(ctx, ctx.config.dev_hosts, tuple(ctx.config.dev_host_command.split()))
    hosts.setServiceParent(root)
    ctx.parts["dev-hosts"] = hosts
