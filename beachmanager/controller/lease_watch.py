"""Preemption: pending actions whose controller lease is gone are finished ``preempted``.

The engine asks :meth:`LeaseWatch.check` (synchronously) before delivering an action;
it answers from what the last look-up said.  Every ``interval`` seconds the watch
looks up again, through the lease module and bypassing its cache (``fresh``), every
(host, token) that still has actions waiting; a lease that was released, revoked (e.g. by a re-registration) or expired
without renewal makes the engine preempt that token's undelivered actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..registry.store import Tenant

if TYPE_CHECKING:
    from .delivery import DeliveryEngine
    from .queue import QueuedAction

MAX_TRACKED = 50_000


class LeaseWatch:
    log = Logger()

    def __init__(self, leases, clock: IReactorTime, interval: float = 1.0):
        self.leases = leases
        self.clock = clock
        self.engine: DeliveryEngine | None = None
        self.interval = interval
        self.verdicts: dict[tuple[str, str], bool] = {}
        self._loop = LoopingCall(self._refresh)
        self._loop.clock = clock
        self._busy = False

    def start(self, engine: DeliveryEngine) -> None:
        self.engine = engine
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def granted(self, host: str, token: str) -> None:
        """The REST route just saw *token* hold a live lease on *host*."""
        if len(self.verdicts) >= MAX_TRACKED:
            self.verdicts.clear()
        self.verdicts[(host, token)] = True

    def check(self, host: str, action) -> bool | None:
        if not action.controller_token:
            return None
        return self.verdicts.get((host, action.controller_token))

    def _refresh(self) -> None:
        if self._busy or self.engine is None:
            return
        self._busy = True
        d = ensureDeferred(self._refresh_all())
        d.addErrback(lambda f: self.log.failure("lease refresh failed", failure=f))
        d.addBoth(lambda _: setattr(self, "_busy", False))

    async def _refresh_all(self) -> None:
        from .leases import LeaseError

        engine = self.engine
        if engine is None:
            raise RuntimeError("the lease watch is not running (no delivery engine)")
        wanted: dict[tuple[str, str], str] = {}
        for host, lane in list(engine.lanes.items()):
            for t in lane.waiting.values():
                a = t.action
                if t.attempts == 0 and a.controller_token and a.beach:
                    wanted[(host, a.controller_token)] = a.beach
        for key in [k for k in self.verdicts if k not in wanted]:
            del self.verdicts[key]
        for (host, token), beach in wanted.items():
            try:
                await self.leases.check(Tenant(beach), host, token, fresh=True)
            except LeaseError as e:
                self.verdicts[(host, token)] = False

                def keep(a: QueuedAction, t: str = token) -> bool:
                    return a.controller_token != t

                engine.preempt(host, keep, f"{e.code}: {e.message}")
            except Exception as e:  # store unavailable: keep the last verdict, try again later
                self.log.debug("lease look-up failed: {error}", error=str(e))
            else:
                self.verdicts[(host, token)] = True
