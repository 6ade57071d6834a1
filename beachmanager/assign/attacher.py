"""The assignment service's hands on the transport: starts and stops host sessions.

Attaching needs the host's join code.  It comes from the configured targets
(``--host``/``--hosts-file``, known to every instance), from :meth:`HostsAttacher.remember`
(attach-by-code placed the host with its code: kept only until that attach starts, and at
most :data:`MAX_REMEMBERED` of them), or from the registry (attach-by-code stored it
encrypted; any instance can read it back), in that order.  Nothing here keeps a code after
the session has it.

:meth:`HostsAttacher.attach` fires once the session runs; readiness is published by the
session itself on the session stream, and a session retries its own attach.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger

from ..transport.events import Role, SessionEvents, SessionState
from .model import AssignmentError

if TYPE_CHECKING:
    from ..protocol.liveness import Pong
    from ..registry.store import RegistryStore
    from ..transport.hosts import HostManager
    from ..transport.targets import HostTarget

#: Join codes handed over by attach-by-code and not yet used (oldest dropped first).
MAX_REMEMBERED = 1024
#: States in which a session still works towards (or holds) a transport.
LIVE_STATES = frozenset({SessionState.IDLE, SessionState.ATTACHING, SessionState.READY,
                         SessionState.BACKOFF})


class NoJoinCode(AssignmentError):
    """No join code is known for a host this instance was asked to attach."""


class HostsAttacher:
    log = Logger()

    def __init__(self, hosts: HostManager, events: SessionEvents,
                 registry_store: RegistryStore | None = None,
                 targets: Iterable[HostTarget] = ()):
        self.hosts = hosts
        self.events = events
        self.registry_store = registry_store
        self._targets = {t.host_session_id: t for t in targets}  # the configuration's own
        self._remembered: OrderedDict[str, str] = OrderedDict()

    def remember(self, host_session_id: str, join_code: str) -> None:
        self._remembered[host_session_id] = join_code
        self._remembered.move_to_end(host_session_id)
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)

    def attach(self, host_session_id: str, epoch: int = 0) -> Deferred[None]:
        return ensureDeferred(self._attach(host_session_id, epoch))

    async def _attach(self, host_session_id: str, epoch: int) -> None:
        if self.events.state(host_session_id) in LIVE_STATES:
            self._remembered.pop(host_session_id, None)
            # managed already: keep that session; a warm standby becomes the active one
            self.hosts.promote(host_session_id)
        else:
            self.hosts.attach(host_session_id, await self._code(host_session_id))
        self.hosts.set_epoch(host_session_id, epoch)  # (told to the harness once ready)

    def standby(self, host_session_id: str) -> Deferred[None]:
        """Open a standby session to a host another instance owns (hot failover)."""
        async def start() -> None:
            if self.events.managed(host_session_id):
                return
            self.hosts.attach(host_session_id, await self._code(host_session_id), Role.STANDBY)

        return ensureDeferred(start())

    def standing_by(self) -> set[str]:
        return self.hosts.standbys()

    def on_owner_silent(self, listener: Callable[[str, str, int, int | None], None]) -> None:
        def heard(host: str, pong: Pong) -> None:
            if pong.active is not None:
                listener(host, pong.active, pong.epoch, pong.active_silent_ms)

        self.hosts.liveness.on_owner_silent(heard)

    def on_next_delivery(self, host_session_id: str, fn: Callable[[], None]) -> None:
        self.hosts.publisher.on_next_delivery(host_session_id, fn)

    async def _code(self, host_session_id: str) -> str:
        code = self._code_of(host_session_id) or await self._code_from_registry(host_session_id)
        if not code:
            raise NoJoinCode(f"no join code is known for host {host_session_id} (not configured, "
                             f"not registered by code)")
        return code

    def _code_of(self, host_session_id: str) -> str | None:
        target = self._targets.get(host_session_id)
        if target is not None:
            return target.join_code
        return self._remembered.pop(host_session_id, None)

    async def _code_from_registry(self, host_session_id: str) -> str | None:
        store = self.registry_store
        if store is None:
            return None
        from ..registry.store import Tenant

        for beach in await store.session_beaches(host_session_id):
            code = await store.join_code(Tenant(beach), host_session_id)
            if code:
                return code
        return None

    def detach(self, host_session_id: str) -> Deferred[None]:
        self._remembered.pop(host_session_id, None)
        return self.hosts.detach(host_session_id) if self.hosts is not None else succeed(None)

    def attached(self) -> set[str]:
        """Hosts the transport manages now as their active session, whoever asked for them
        (standby sessions are not attachments: they never deliver)."""
        out = set()
        for host in self.events.hosts():
            change = self.events.latest(host)
            if change is not None and change.role is Role.ACTIVE:
                out.add(host)
        return out
