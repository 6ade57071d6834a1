"""Which private beaches hold a session, kept briefly; the tenancy refusal (the check itself
is :mod:`.access`).

Which private beaches hold a session is looked up in the registry once, then kept for
:data:`SESSION_BEACHES_TTL` seconds (:class:`SessionBeaches`, one per manager, in ``ApiDeps``),
so ``/sessions/:id/...`` requests do not cost a database transaction each.  Sessions are
never deleted, so a kept answer can only *miss* a private beach that the session joined
meanwhile: a registration or attach through this instance drops it at once; one made
through another instance is seen here at most ``SESSION_BEACHES_TTL`` seconds late.
Unknown sessions are not kept (a session registered elsewhere is found at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from ..registry.store import RegistryStore
from ..registry.ttl_cache import TtlCache

#: Seconds a session's private beaches are kept (see the module text), and how many sessions.
SESSION_BEACHES_TTL = 2.0
SESSION_BEACHES_BOUND = 10_000


class SessionBeaches:
    """``session_beaches`` of the registry, kept briefly (see the module text)."""

    def __init__(self, store: RegistryStore, clock: IReactorTime, ttl: float = SESSION_BEACHES_TTL,
                 bound: int = SESSION_BEACHES_BOUND):
        self.store = store
        self.kept: TtlCache[list[str]] = TtlCache(clock, ttl, bound)
        self._epoch = 0
        self._listeners: list[Callable[[str], None]] = []

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call *listener(session_id)* when a session may have joined a private beach through
        this instance (the association tells its harness)."""
        self._listeners.append(listener)

    async def lookup(self, session_id: str) -> list[str]:
        found = self.kept.get(session_id)
        if found is not None:
            return list(found)
        epoch = self._epoch
        found = list(await self.store.session_beaches(session_id))
        if found and epoch == self._epoch:  # not if a registration happened meanwhile
            self.kept.put(session_id, found)
        return list(found)

    def forget(self, session_id: str) -> None:
        self._epoch += 1
        self.kept.pop(session_id)
        for listener in list(self._listeners):
            listener(session_id)


def now_ms(clock: IReactorTime) -> int:
    return int(clock.seconds() * 1000)


class TenancyError(Exception):
    """The principal cannot act on the session (``status`` and ``code`` as the API answers)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
