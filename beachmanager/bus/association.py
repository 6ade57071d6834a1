"""The manager's end of the beach association handshake (:mod:`beachmanager.protocol.association`).

:class:`AssociationPublisher` sends a host's harness one signed association whenever what it
says changes: the host's active session here becomes ready or is promoted, its ownership epoch
changes, the host is linked to a private beach (registration, attach-by-code), or its standby
instance changes.  Each carries a fresh bridge token.  It also hears the harness's renewal
requests (``association_renew`` on the same topic): a valid bridge token for that host, sent
over that host's own transport to the instance that owns it, is answered with a new
association; anything else is refused and counted (``association_total{outcome}``).

Topics: publishes ``beach.manager.association`` (``association``); consumes
``beach.manager.association`` (``association_renew``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .._aio import background
from ..auth.bridge import AssociationAuthority, BridgeClaims, BridgeTokenError
from ..protocol import association as pa
from ..protocol.extensions import NAMESPACE, TOPIC_ASSOCIATION
from ..telemetry.logs import fields
from ..transport.events import Role, SessionChange, SessionEvents
from .bus import BusMessage, HostBus

#: The legacy manager's handshake hints (seconds), passed on as they were.
STALE_SESSION_IDLE_SECS = 60
VIEWER_HEALTH_INTERVAL_SECS = 15

Send = Callable[[str, str, bytes], bool]


class AssociationPublisher:
    log = Logger()

    def __init__(self, clock: IReactorTime, authority: AssociationAuthority, *, instance_id: str,
                 manager_url: Callable[[], str | None], bridge_ttl: float,
                 idle_snapshot_interval_ms: int, events: SessionEvents,
                 beaches_of: Callable[[str], Awaitable[list[str]]],
                 epoch_of: Callable[[str], int | None],
                 code_hint_of: Callable[[str], str | None],
                 standby_of: Callable[[str], str | None], send: Send, metrics=None):
        """The host's epoch, join-code hint and the sending come from the hosts service;
        its standby from the assignment service; its private beaches from the registry."""
        self.clock = clock
        self.events = events
        self.authority = authority
        self.instance_id = instance_id
        self._manager_url = manager_url
        self.bridge_ttl = bridge_ttl
        self.idle_snapshot_interval_ms = idle_snapshot_interval_ms
        self._beaches_of = beaches_of
        self._epoch_of = epoch_of
        self._code_hint_of = code_hint_of
        self._send = send
        self._standby_of = standby_of
        self.metrics = metrics
        self.counts: dict[str, int] = {}
        self._unsubscribe = events.subscribe(self._session_changed)

    def _session_changed(self, change: SessionChange) -> None:
        if change.ready and change.role is Role.ACTIVE and (
                change.readiness_changed or change.role_changed):
            self.associate(change.host_session_id)

    def watch(self, bus: HostBus) -> None:
        """Hear renewal requests on one host's bus."""
        bus.subscribe(NAMESPACE, TOPIC_ASSOCIATION, self._message)

    # -- sending -----------------------------------------------------------------------------------
    def associate(self, host_session_id: str) -> None:
        """Send the host's harness a fresh association, if its active session here is ready
        and this instance holds it at an epoch (else nothing: readiness will)."""
        if self._epoch_of(host_session_id) is None or not self.events.is_ready(host_session_id):
            return
        background(ensureDeferred(self._associate(host_session_id)), "send an association",
                   self.log, host_session_id=host_session_id)

    async def _associate(self, host: str) -> None:
        beaches = sorted(await self._beaches_of(host))
        epoch = self._epoch_of(host)  # again: it may have changed while the beach was looked up
        if epoch is None:
            return
        beach = beaches[0] if beaches else None
        now = self.clock.seconds()
        token, expires_ms = self.authority.issue(host, beach, now, self.bridge_ttl,
                                                 self.instance_id)
        standby = self._standby_of(host)
        a = pa.Association(
            host_session_id=host, manager_instance_id=self.instance_id, epoch=epoch,
            manager_url=self._manager_url() or None, private_beach_id=beach,
            bridge_token=token, bridge_token_expires_at_ms=expires_ms,
            attach_code_hint=self._code_hint_of(host),
            idle_snapshot_interval_ms=self.idle_snapshot_interval_ms,
            stale_session_idle_secs=STALE_SESSION_IDLE_SECS,
            viewer_health_interval_secs=VIEWER_HEALTH_INTERVAL_SECS,
            standby=(standby,) if standby else (), issued_at_ms=int(now * 1000),
        ).signed(self.authority.authority, self.authority.sign)
        if self._send(host, TOPIC_ASSOCIATION, a.to_json()):
            self._count("sent")
        else:
            self._count("not_sent")
            self.log.warn("could not send {host_session_id} its association (epoch {epoch}); the "
                          "next action carries the epoch", epoch=epoch,
                          **fields(host_session_id=host))

    # -- renewals ------------------------------------------------------------------------------------
    def _message(self, m: BusMessage) -> None:
        if pa.kind_of(m.payload) != pa.RENEW:
            return  # an association echoed by a host, or noise: not ours to answer
        host = m.host_session_id
        try:
            self.check_bridge_token(pa.read_renew_request(m.payload), host)
        except pa.AssociationError as e:
            self._refused(host, "bad_message", str(e))
            return
        except BridgeTokenError as e:
            self._refused(host, e.code, e.message)
            return
        if self._epoch_of(host) is None:
            self._count("not_owner")  # a standby session heard it: the owner answers
            return
        self._count("renewed")
        self.associate(host)

    def _refused(self, host: str, code: str, why: str) -> None:
        self._count(code)
        self.log.warn("refusing an association renewal from {host_session_id}: {why}", why=why,
                      **fields(host_session_id=host))

    def check_bridge_token(self, token: str, host_session_id: str) -> BridgeClaims:
        """The claims of *token* presented over *host_session_id*'s own transport."""
        return self.authority.check(token, host_session_id, self.clock.seconds())

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.metrics is not None:
            self.metrics.association_total.labels(outcome=_metric_outcome(outcome)).inc()

    def status(self) -> dict[str, Any]:
        return {"authority": self.authority.authority.key_id,
                "ephemeral_key": self.authority.ephemeral, "counts": dict(self.counts)}


_OUTCOMES = frozenset({"sent", "not_sent", "renewed", "not_owner", "bad_message",
                       "invalid_bridge_token", "bridge_token_expired"})


def _metric_outcome(outcome: str) -> str:
    return outcome if outcome in _OUTCOMES else "refused"


__all__ = ["AssociationPublisher"]
