"""Hosts that ask to be managed (attach-by-code, the devstack's hosts): placed, then attached.

:meth:`HostIntake.place_and_attach` places the host on its rendezvous owner (with the
assignment service; alone, this instance owns everything), and starts its session here
when this instance is the owner; any other instance only records the placement (the owner
reads the join code back from the registry).  It raises
:class:`~beachmanager.assign.model.CapacityExhausted` when every instance is full: the
host is refused, never queued.

The registry's ``attach_state`` of such a host follows its session: ``attaching`` when the
session starts, then ``attached`` on the first READY or ``attach_failed`` when its join
code is refused, taken from the session stream (no second readiness flag).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .._aio import background
from ..registry.store import AttachState, RegistryStore, Tenant
from ..telemetry.logs import fields
from ..transport.events import SessionChange, SessionEvents, SessionState

if TYPE_CHECKING:
    from ..transport.hosts import HostManager
    from .service import AssignmentService

#: Hosts whose attach state is still to be recorded (oldest forgotten first).
MAX_TRACKED = 10_000


class HostIntake:
    log = Logger()

    def __init__(self, instance_id: str, clock: IReactorTime, store: RegistryStore,
                 events: SessionEvents, hosts: HostManager | None,
                 assign: AssignmentService | None = None):
        self.instance_id = instance_id
        self.clock = clock
        self.store = store
        self.events = events
        self.hosts = hosts
        self.assign = assign
        self._tracked: OrderedDict[str, Tenant] = OrderedDict()
        self._unsubscribe = events.subscribe(self._session_changed)

    async def place_and_attach(self, tenant: Tenant, host_session_id: str,
                               join_code: str) -> dict[str, Any]:
        """Place the host, attach it here if this instance owns it; what happened, for the answer."""
        if self.assign is not None:
            decision = await self.assign.place(host_session_id, join_code)
            placement = {"manager_instance_id": decision.owner, "status": decision.status}
            if decision.owner != self.instance_id:
                self.log.info("{host_session_id} is owned by {owner}; it attaches the host",
                              owner=decision.owner,
                              **fields(host_session_id=host_session_id,
                                       manager_instance_id=self.instance_id))
                return {**placement, "attaching_here": False}
        else:
            placement = {"manager_instance_id": self.instance_id, "status": "single_instance"}
        return {**placement, "attaching_here": await self._attach_here(tenant, host_session_id,
                                                                       join_code)}

    async def _attach_here(self, tenant: Tenant, host_session_id: str, join_code: str) -> bool:
        """Start the host's session; False when there is no transport (the session stays pending)."""
        if self.hosts is None:
            return False
        await self.store.set_attach_state(tenant, host_session_id, AttachState.ATTACHING,
                                          self._now_ms())
        self._track(host_session_id, tenant)
        self.hosts.attach(host_session_id, join_code)
        if self.events.is_ready(host_session_id):  # managed and up already
            self._record(host_session_id, AttachState.ATTACHED)
        return True

    def _track(self, host_session_id: str, tenant: Tenant) -> None:
        self._tracked[host_session_id] = tenant
        self._tracked.move_to_end(host_session_id)
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)

    def _session_changed(self, change: SessionChange) -> None:
        if change.host_session_id not in self._tracked:
            return
        if change.ready:
            self._record(change.host_session_id, AttachState.ATTACHED)
        elif change.new is SessionState.REJECTED:
            self.log.warn("attach of {host_session_id} failed: {error}",
                          error=change.reason or "the join code was refused",
                          **fields(host_session_id=change.host_session_id,
                                   manager_instance_id=self.instance_id))
            self._record(change.host_session_id, AttachState.FAILED)
        elif change.removed:
            self._tracked.pop(change.host_session_id, None)

    def _record(self, host_session_id: str, state: AttachState) -> None:
        tenant = self._tracked.pop(host_session_id, None)
        if tenant is None:
            return
        d = ensureDeferred(self.store.set_attach_state(tenant, host_session_id, state,
                                                       self._now_ms()))
        background(d, "record attach state", self.log, host_session_id=host_session_id)

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def close(self) -> None:
        self._unsubscribe()
        self._tracked.clear()
