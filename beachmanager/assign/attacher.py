"""The assignment service's hands on the transport: ``ctx.parts["hosts"]`` (HostManager).

Attaching needs the host's join code.  It comes from the configured targets
(``--host``/``--hosts-file``, known to every instance), from :meth:`remember` (a caller
that placed the host with its code), or from the registry (attach-by-code stored it
encrypted; any instance can read it back), in that order.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger

from .model import AssignmentError


class NoJoinCode(AssignmentError):
    """No join code is known for a host this instance was asked to attach."""


class HostsAttacher:
    log = Logger()

    def __init__(self, hosts, registry_store=None, targets: Iterable = ()):
        self.hosts = hosts
        self.registry_store = registry_store
        self._codes: dict[str, str] = {t.host_session_id: t.join_code for t in targets}

    def bind(self, service) -> None:
        """Report the transport's readiness changes to *service* (``host_ready``)."""
        listen = getattr(self.hosts, "on_transport_change", None)
        if listen is not None:
            listen(service.host_ready)

    def remember(self, host_session_id: str, join_code: str) -> None:
        self._codes[host_session_id] = join_code

    def attach(self, host_session_id: str) -> Deferred:
        return ensureDeferred(self._attach(host_session_id))

    async def _attach(self, host_session_id: str) -> None:
        existing = self.hosts.get(host_session_id)
        if existing is not None and existing.status_name not in ("rejected", "stopped"):
            await existing.when_ready()  # attached already (e.g. by attach-by-code): keep it
            return
        code = self._codes.get(host_session_id) or await self._code_from_registry(host_session_id)
        if not code:
            raise NoJoinCode(f"no join code is known for host {host_session_id} (not configured, "
                             f"not registered by code)")
        machine = self.hosts.attach(host_session_id, code)
        await machine.when_ready()

    async def _code_from_registry(self, host_session_id: str) -> str | None:
        store = self.registry_store
        if store is None:
            return None
        from ..registry.store import Tenant

        for beach in await store.session_beaches(host_session_id):
            code = await store.join_code(Tenant(beach), host_session_id)
            if code:
                self._codes[host_session_id] = code
                return code
        return None

    def detach(self, host_session_id: str) -> Deferred:
        return self.hosts.detach(host_session_id) if self.hosts is not None else succeed(None)

    def attached(self) -> set[str]:
        """Hosts the transport holds now, whoever asked for them."""
        return set(getattr(self.hosts, "machines", {}))

    def transport_state(self, host_session_id: str) -> dict | None:
        get = getattr(self.hosts, "transport_state", None)
        return get(host_session_id) if get is not None else None
