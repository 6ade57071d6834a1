"""One attach attempt of a host session: its ids, what it awaits, and what it holds.

An attempt goes through the phases of :data:`PHASES` in order (reference
``road-signaling-and-webrtc-join.md`` §6); the session runs one step per phase and
tears the attempt down as a whole when it fails or its transport is lost.  Resources
that exist only from a given phase on are read through accessors that say which phase
should have made them, instead of ``None`` checks at every use.
"""

from __future__ import annotations

import itertools
import secrets
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from ..protocol import crypto
    from .link import HostLink
    from .peer import AnswerPeer
    from .road import SignalingSession

#: The phases of one attempt, in order; every one is logged on entry and exit.
PHASES = ("attach", "offer", "answer", "ice", "dc_open", "handshake", "ready")

_transport_ids = itertools.count(1)
T = TypeVar("T")


class Attempt:
    """Ids, pending waits and resources of one attempt."""

    def __init__(self, number: int, started: float):
        self.number = number
        self.started = started
        self.correlation_id = secrets.token_hex(6)
        self.transport_id = f"t{next(_transport_ids)}"
        # ids, as they become known
        self.peer_session_id: str | None = None
        self.handshake_id: str | None = None
        self.host_peer_id: str | None = None
        # resources (torn down with the attempt)
        self.signaling: SignalingSession | None = None
        self.peer: AnswerPeer | None = None
        self.link: HostLink | None = None
        self.handshake: crypto.SecureHandshake | None = None
        self.slot: DeferredSemaphore | None = None  # the attach gate, held while negotiating
        self.watchdog: IDelayedCall | None = None
        # the offer opened in "offer", answered in "answer"
        self.psk: bytes | None = None
        self.offer_sdp: str | None = None
        self.secure = False  # Beach's secure transport runs on this attempt
        # waits
        self.handshake_d: Deferred[Any] = Deferred()
        self.offer_ready_d: Deferred[None] = Deferred()
        self.lost_d: Deferred[tuple[str, str]] = Deferred()
        self.key_d: Deferred[bytes] | None = None
        self.peer_lost: Deferred[Any] | None = None
        self.waiting: Deferred[Any] | None = None  # what the attempt awaits now (cancelled on loss)
        self.lost_reason: tuple[str, str] | None = None
        self.last_inbound = 0.0

    # -- accessors: a None here is a bug in the phase order, said plainly ---------------------
    @property
    def road_peer(self) -> str:
        return _need(self.peer_session_id, "peer session id", "attach")

    @property
    def host_peer(self) -> str:
        return _need(self.host_peer_id, "host peer id", "attach")

    @property
    def room(self) -> SignalingSession:
        return _need(self.signaling, "signaling session", "attach")

    @property
    def my_peer(self) -> str:
        return _need(self.room.my_id, "own peer id", "attach")

    @property
    def pc(self) -> AnswerPeer:
        return _need(self.peer, "peer connection", "answer")

    @property
    def channel(self) -> HostLink:
        return _need(self.link, "beach channel link", "answer")

    @property
    def key(self) -> bytes:
        return _need(self.psk, "handshake key", "offer")


def _need(value: T | None, what: str, phase: str) -> T:
    if value is None:
        raise RuntimeError(f"the attempt has no {what} yet (made in phase {phase!r})")
    return value


__all__ = ["PHASES", "Attempt"]
