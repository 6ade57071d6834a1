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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger

from ..config import Config
from ..service import ReadyService
from ..transport.events import SessionEvents, ready_of

if TYPE_CHECKING:
    from ..assign.intake import HostIntake
    from ..context import ManagerContext
    from ..registry.store import RegistryStore
    from .road.service import RoadService

DEV_PRIVATE_BEACH = "dev"
#: Seconds the dev hosts are given to attach before the demo says which did not.
ATTACH_WAIT = 30.0


def dev_road(ctx: ManagerContext) -> RoadService:
    """The Road part (the composition adds it first, so it is the last to stop)."""
    from .road.service import RoadService

    return RoadService(ctx.reactor, f"tcp:{ctx.config.dev_road}:interface=127.0.0.1", clock=ctx.clock)


class DevHosts(ReadyService):
    """Starts the dev hosts once the manager can take them, registers and attaches them."""

    log = Logger()
    critical = False  # the manager itself is fine without its demo hosts

    def __init__(self, ctx: ManagerContext, count: int, command: tuple[str, ...], *,
                 store: RegistryStore, intake: HostIntake, events: SessionEvents,
                 authority: bytes | None = None, depends_on: Iterable[ReadyService] = ()):
        """*authority*: the manager's association key, which the dev hosts' harnesses trust."""
        super().__init__("dev-hosts", ctx.clock)
        self.ctx = ctx
        self.count = count
        self.command = command
        self.store = store
        self.intake = intake
        self.events = events
        self.authority = authority
        self.depends_on = tuple(depends_on)
        self.started: list[Any] = []
        self.attached: list[str] = []

    def start(self) -> Deferred:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        from ..registry.store import Op, Tenant
        from .host.host import start_hosts

        for part in self.depends_on:
            await part.whenReady()
        env = {"PS1": "$ ", "TERM": "xterm", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": os.environ.get("HOME", "/")}
        self.started = await start_hosts(self.ctx.config.road_url, self.count, self.ctx.reactor,
                                         command=self.command, env=env,
                                         manager_authority=self.authority)
        tenant = Tenant(DEV_PRIVATE_BEACH)
        for host in self.started:
            await self.store.attach_session(tenant, host.session_id, host.join_code, Op.new(),
                                            int(self.clock.seconds() * 1000))
            await self.intake.place_and_attach(tenant, host.session_id, host.join_code)
        await self._wait_attached()

    async def _wait_attached(self) -> None:
        waits = [self.events.wait_for(ready_of(h.session_id)).addTimeout(ATTACH_WAIT, self.clock)
                 for h in self.started]
        results = await DeferredList(waits, consumeErrors=True)
        self.attached = [h.session_id for h, (ok, _) in zip(self.started, results, strict=True) if ok]
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

