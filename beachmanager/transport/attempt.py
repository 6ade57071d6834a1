"""One attach attempt of a host session: its ids, its machine, what it runs, what it holds.

An attempt goes through the phases of :data:`PHASES` in order (reference
``road-signaling-and-webrtc-join.md`` §6) as its
:class:`~beachmanager.protocol.attach.AttachMachine` decides; the session executes the
machine's commands (the Deferreds and timers they start are kept here) and tears the
attempt down as a whole when it fails or its transport is lost.  Resources
that exist only from a given phase on are read through accessors that say which phase
should have made them, instead of ``None`` checks at every use.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore

from ..protocol.attach import PHASES, AttachMachine, Failed, Input, Lost

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from ..protocol import crypto
    from ..protocol import signaling as sig
    from .link import HostLink
    from .peer import AnswerPeer
    from .road import SignalingSession

_transport_ids = itertools.count(1)
T = TypeVar("T")


class Attempt:
    """Ids, pending waits and resources of one attempt."""

    def __init__(self, number: int, started: float, machine: AttachMachine):
        self.number = number
        self.machine = machine
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
        # the offer opened in "offer", answered in "answer"
        self.offer: sig.WebRtcSdpPayload | None = None
        self.session_key: bytes | None = None
        self.psk: bytes | None = None
        self.offer_sdp: str | None = None
        # what the machine's commands started (cancelled at teardown)
        self.inflight: set[Deferred[Any]] = set()
        self.timers: dict[str, IDelayedCall] = {}
        self.channel_waits: dict[str, Deferred[Any]] = {}
        self.abandoned: set[Deferred[Any]] = set()  # cancelled on the machine's word: not fed
        self.peer_lost: Deferred[Any] | None = None
        # feeding the machine: inputs that arrive while a command runs wait their turn
        self.inbox: deque[Input] = deque()
        self.feeding = False
        self.closed = False  # torn down: commands are no longer executed
        self.handshake_settled = False
        #: Fires with the machine's outcome (Failed or Lost).
        self.done: Deferred[Failed | Lost] = Deferred()
        self.last_inbound = 0.0

    @property
    def secure(self) -> bool:
        """Beach's secure transport runs on this attempt."""
        return self.machine.secure

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
