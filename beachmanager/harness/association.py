"""The harness's end of the beach association handshake (:mod:`beachmanager.protocol.association`).

The host stays transport-only: everything beach-specific reaches the harness in the association
its active manager sends.  :class:`AssociationKeeper`

* accepts an association only when :class:`~beachmanager.protocol.association.AuthorityPin`
  does (signed by the pinned authority, naming this host), then tells the fence which manager
  is active at which epoch, over which peer;
* keeps the latest one (manager URL, private beach, bridge token, hints, standby ids);
* asks its active manager for a new bridge token at two thirds of the token's life
  (``association_renew``, carrying the current token), again every :data:`RETRY` seconds
  until a fresh association arrives;
* hands the bridge token to whoever talks to the manager on the harness's behalf (the agent).

Refusals are counted by reason and logged (never the token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ..protocol import association as pa
from ..protocol import fencing
from ..protocol.extensions import TOPIC_ASSOCIATION

#: Seconds between renewal requests while no fresh association has come.
RETRY = 5.0


class AssociationKeeper:
    log = Logger()

    def __init__(self, clock, fence: fencing.Fence, send_to: Callable[[str, str, bytes], bool], *,
                 authority: bytes | None = None, host_session_id: str | None = None,
                 on_association: Callable[[pa.Association], None] | None = None):
        self.clock = clock
        self.fence = fence
        self._send_to = send_to
        self.pin = pa.AuthorityPin(authority, host_session_id)
        self.current: pa.Association | None = None
        self._on_association = on_association or (lambda a: None)
        self._renew_call: Any = None
        self.renewals_asked = 0
        self.unparsable = 0

    @property
    def bridge_token(self) -> str | None:
        a = self.current
        return a.bridge_token if a is not None else None

    def handle(self, topic: str, payload: bytes, peer: str | None = None) -> None:
        """A message on the association topic: an association from a manager (a renewal
        request is the harness's own, never handled here)."""
        if peer is None or pa.kind_of(payload) == pa.RENEW:
            return  # our own renewal request (a local publish, or echoed)
        try:
            a = pa.read_association(payload)
        except pa.AssociationError as e:
            self.unparsable += 1
            self.log.warn("dropping an unparsable association: {error}", error=str(e))
            return
        verdict = self.pin.check(a)
        if verdict != pa.ACCEPTED:
            self.log.warn("refusing an association from {manager} ({verdict}; trusted authority "
                          "{key_id})", manager=a.manager_instance_id, verdict=verdict,
                          key_id=self.pin.key_id)
            return
        if a.epoch < self.fence.epoch:
            return  # a former owner's: fencing ignores it
        if self.fence.associate(a.manager_instance_id, a.epoch, peer):
            self.log.info("the active manager is {manager} at epoch {epoch} (private beach "
                          "{beach}, authority {key_id})", manager=a.manager_instance_id,
                          epoch=a.epoch, beach=a.private_beach_id, key_id=self.pin.key_id)
        self.current = a
        self._schedule_renewal()
        self._on_association(a)

    # -- renewal ----------------------------------------------------------------------------------
    def _schedule_renewal(self) -> None:
        self._cancel()
        a = self.current
        if a is None or a.bridge_token is None or a.bridge_token_expires_at_ms is None:
            return
        # the token's life as the manager stated it, counted from now (the two clocks differ)
        life = max(0.0, (a.bridge_token_expires_at_ms - a.issued_at_ms) / 1000)
        self._renew_call = self.clock.callLater(life * 2 / 3, self._renew)

    def _renew(self) -> None:
        self._renew_call = None
        token, peer = self.bridge_token, self.fence.peer
        if token is not None and peer is not None:
            self.renewals_asked += 1
            self._send_to(peer, TOPIC_ASSOCIATION, pa.renew_request(token))
        self._renew_call = self.clock.callLater(RETRY, self._renew)  # until a fresh one comes

    def _cancel(self) -> None:
        if self._renew_call is not None and self._renew_call.active():
            self._renew_call.cancel()
        self._renew_call = None

    def stop(self) -> None:
        self._cancel()

    def status(self) -> dict[str, Any]:
        a = self.current
        return {"authority": self.pin.key_id, "authority_configured": self.pin.configured,
                "verdicts": dict(self.pin.counts), "renewals_asked": self.renewals_asked,
                "association": a.describe() if a is not None else None}


__all__ = ["AssociationKeeper"]
