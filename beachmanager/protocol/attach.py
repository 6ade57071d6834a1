"""One attach attempt of a host session, as a state machine: inputs in, commands out.

This is the part of :class:`~beachmanager.transport.session.HostSession` that decides;
the session is the driver that does.  The machine says which phase comes next, what to
wait for, which timer to arm, what a timeout or a loss means in each step (the reason and
code the session reports), and whether a failure is permanent.  The driver executes the
commands against Road (treq, autobahn) and aiortc and feeds their results back as inputs.

Nothing here does I/O, reads a clock or the environment: time comes in as numbers inside
the inputs (:class:`Start`, :class:`OfferReadyReceived`, :class:`TimerFired`).

States are the steps of the phases of :data:`PHASES` (``attach``, ``offer``, ``answer``,
``ice``, ``dc_open``, ``handshake``, ``ready``; one phase may wait for several things),
then ``up`` (the transport is ready and watched for loss) and the terminal ``failed``,
``lost`` and ``stopped``::

    idle -Start-> attach.queued -SlotAcquired-> attach.road -AttachAnswered->
    attach.signaling -SignalingOpened-> attach.host -HostJoined-> offer.poll
    -OfferReceived-> offer.key -KeyDerived-> answer.peer -PeerCreated-> answer.build
    -AnswerBuilt-> answer.post -AnswerPosted-> ice -IceConnected-> dc_open.beach
    -ChannelOpened(beach)-> dc_open.handshake -ChannelOpened(handshake) | grace->
    handshake -HandshakeDone-> ready -OfferReadyReceived-> up -PeerLost|SignalingLost|
    heartbeat-> lost

    any waiting step -StepFailed|PeerLost|SignalingLost|timeout-> failed
    any live state -Stop-> stopped

A step whose wait is already satisfied is passed through on entry: the session key is
usually derived before the offer arrives, the handshake channel may open with "beach",
the Noise handshake may finish during ``dc_open``, and a host that runs no secure
transport for us skips ``handshake``.  Facts that arrive before the step that needs them
are noted (the :data:`NOTE` action) and used on entry.

:data:`TABLE` is total: it names an :class:`Action` for every (state, input type) pair,
and :meth:`AttachMachine.handle` answers every pair with a :class:`Result` (an ignored
input carries the reason).  A unit test walks all of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .crypto.policy import HANDSHAKE_CHANNEL_LABEL

#: The phases of one attempt, in order; every one is logged on entry and exit.
PHASES = ("attach", "offer", "answer", "ice", "dc_open", "handshake", "ready")
BEACH = "beach"
HANDSHAKE = HANDSHAKE_CHANNEL_LABEL
#: Seconds to wait, after "beach" opens, for the host's handshake channel before deciding
#: that the host runs no secure transport for us.
HANDSHAKE_GRACE = 2.0
#: The shortest heartbeat re-check.
MIN_HEARTBEAT_CHECK = 0.5


# -- settings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timeouts:
    """Seconds each step may wait (from :class:`~beachmanager.transport.session.AttachSettings`)."""

    phase_timeout: float = 10.0
    offer_timeout: float = 20.0
    ready_timeout: float = 10.0
    heartbeat_timeout: float = 45.0
    handshake_grace: float = HANDSHAKE_GRACE


# -- states --------------------------------------------------------------------------------
class State(enum.Enum):
    IDLE = "idle"
    QUEUED = "attach.queued"  # waiting for a slot of the attach gate
    ATTACHING = "attach.road"  # Road's attach request
    JOINING = "attach.signaling"  # the WebSocket join
    WAITING_HOST = "attach.host"  # the host in the room
    POLLING = "offer.poll"  # the offer mailbox
    KEYING = "offer.key"  # the session key (derived since attach.road)
    PEERING = "answer.peer"  # the peer connection is made
    ANSWERING = "answer.build"  # the aiortc answer (candidates gathered)
    POSTING = "answer.post"  # the answer posted to the mailbox
    CONNECTING = "ice"  # ICE + DTLS
    OPENING = "dc_open.beach"  # the host's "beach" channel
    GRACE = "dc_open.handshake"  # the host's handshake channel, if it runs Noise for us
    SECURING = "handshake"  # Noise XX responder + challenge frames
    ANNOUNCING = "ready"  # "__ready__" sent; waiting for "__offer_ready__"
    UP = "up"  # ready: watched for loss (heartbeat timer)
    FAILED = "failed"
    LOST = "lost"
    STOPPED = "stopped"

    @property
    def phase(self) -> str | None:
        """The phase this state belongs to (``up`` for a ready transport, None when over)."""
        return _PHASE_OF[self]


S = State
_PHASE_OF: dict[State, str | None] = {
    S.IDLE: None, S.QUEUED: "attach", S.ATTACHING: "attach", S.JOINING: "attach",
    S.WAITING_HOST: "attach", S.POLLING: "offer", S.KEYING: "offer", S.PEERING: "answer",
    S.ANSWERING: "answer", S.POSTING: "answer", S.CONNECTING: "ice", S.OPENING: "dc_open",
    S.GRACE: "dc_open", S.SECURING: "handshake", S.ANNOUNCING: "ready", S.UP: "up",
    S.FAILED: None, S.LOST: None, S.STOPPED: None,
}
#: States from which nothing more happens.
TERMINAL = frozenset({S.FAILED, S.LOST, S.STOPPED})
#: States in which the attempt works towards a transport (a loss here fails the phase).
NEGOTIATING = frozenset(s for s in State if s.phase in PHASES)


@dataclass(frozen=True)
class Wait:
    """What a state waits for: its timer's length (a :class:`Timeouts` field) and name."""

    timeout: str
    what: str


#: The timer of each state that has one; its name is the state's value.
WAITS: dict[State, Wait] = {
    S.ATTACHING: Wait("phase_timeout", "Road's attach request"),
    S.JOINING: Wait("phase_timeout", "the signaling join"),
    S.WAITING_HOST: Wait("offer_timeout", "the host to join the room"),
    S.POLLING: Wait("offer_timeout", "an offer from the host"),
    S.KEYING: Wait("phase_timeout", "the session key"),
    S.ANSWERING: Wait("phase_timeout", "building the answer"),
    S.POSTING: Wait("phase_timeout", "posting the answer"),
    S.CONNECTING: Wait("phase_timeout", "ICE and DTLS"),
    S.OPENING: Wait("phase_timeout", "the 'beach' data channel"),
    S.GRACE: Wait("handshake_grace", "the handshake channel"),
    S.SECURING: Wait("phase_timeout", "the Noise handshake and challenge"),
    S.ANNOUNCING: Wait("ready_timeout", "__offer_ready__"),
    S.UP: Wait("heartbeat_timeout", "the host's heartbeat"),
}


# -- inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    at: float


@dataclass(frozen=True)
class SlotAcquired:
    pass


@dataclass(frozen=True)
class AttachAnswered:
    peer_session_id: str


@dataclass(frozen=True)
class SignalingOpened:
    my_id: str | None


@dataclass(frozen=True)
class HostJoined:
    peer_id: str


@dataclass(frozen=True)
class OfferReceived:
    handshake_id: str
    sealed: bool


@dataclass(frozen=True)
class KeyDerived:
    pass


@dataclass(frozen=True)
class KeyFailed:
    reason: str
    code: str = "session_key"
    permanent: bool = True


@dataclass(frozen=True)
class PeerCreated:
    pass


@dataclass(frozen=True)
class AnswerBuilt:
    sdp: str


@dataclass(frozen=True)
class AnswerPosted:
    tries: int


@dataclass(frozen=True)
class IceConnected:
    pass


@dataclass(frozen=True)
class ChannelOpened:
    label: str
    channels: frozenset[str] = frozenset()  # every channel open at that moment


@dataclass(frozen=True)
class HandshakeDone:
    pass


@dataclass(frozen=True)
class HandshakeFailed:
    reason: str


@dataclass(frozen=True)
class OfferReadyReceived:
    at: float


@dataclass(frozen=True)
class TimerFired:
    name: str
    silent: float = 0.0  # seconds since the host was last heard (read by the heartbeat)


@dataclass(frozen=True)
class LivenessConfirmed:
    """The host answers the bus heartbeat (:mod:`.liveness`): from now on the ready transport
    is lost after *timeout* seconds of silence, not after ``heartbeat_timeout``."""

    timeout: float


@dataclass(frozen=True)
class StepFailed:
    """What the current step waited for failed (Road refused, aiortc failed, a bug...)."""

    reason: str
    code: str = "failed"
    permanent: bool = False


@dataclass(frozen=True)
class PeerLost:
    reason: str
    code: str = "peer_lost"


@dataclass(frozen=True)
class SignalingLost:
    reason: str
    code: str = "ws_lost"


@dataclass(frozen=True)
class Stop:
    pass


Input = (Start | SlotAcquired | AttachAnswered | SignalingOpened | HostJoined | OfferReceived
         | KeyDerived | KeyFailed | PeerCreated | AnswerBuilt | AnswerPosted | IceConnected
         | ChannelOpened | HandshakeDone | HandshakeFailed | OfferReadyReceived | TimerFired
         | LivenessConfirmed | StepFailed | PeerLost | SignalingLost | Stop)
INPUTS: tuple[type[Any], ...] = (
    Start, SlotAcquired, AttachAnswered, SignalingOpened, HostJoined, OfferReceived, KeyDerived,
    KeyFailed, PeerCreated, AnswerBuilt, AnswerPosted, IceConnected, ChannelOpened,
    HandshakeDone, HandshakeFailed, OfferReadyReceived, TimerFired, LivenessConfirmed, StepFailed,
    PeerLost, SignalingLost, Stop)


# -- commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhaseStarted:
    phase: str


@dataclass(frozen=True)
class PhaseDone:
    phase: str
    detail: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class AcquireSlot:
    pass


@dataclass(frozen=True)
class ReleaseSlot:
    pass


@dataclass(frozen=True)
class DeriveKey:
    """Start deriving the session key (slow: Argon2id); answer with KeyDerived/KeyFailed."""


@dataclass(frozen=True)
class PostAttach:
    pass


@dataclass(frozen=True)
class OpenSignaling:
    pass


@dataclass(frozen=True)
class WaitHost:
    pass


@dataclass(frozen=True)
class PollOffer:
    pass


@dataclass(frozen=True)
class OpenOffer:
    """The offer and the session key are in: derive the handshake key, open the offer."""


@dataclass(frozen=True)
class CreatePeer:
    pass


@dataclass(frozen=True)
class BuildAnswer:
    pass


@dataclass(frozen=True)
class PostAnswer:
    sdp: str


@dataclass(frozen=True)
class WaitIce:
    pass


@dataclass(frozen=True)
class WaitChannel:
    label: str


@dataclass(frozen=True)
class CancelWait:
    """Stop waiting for the channel *label* (its outcome, if any, is not an input any more)."""

    label: str


@dataclass(frozen=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class SendReady:
    pass


@dataclass(frozen=True)
class InsecureFallback:
    """The host opened no handshake channel within *grace*: continue WITHOUT secure transport."""

    label: str
    grace: float


@dataclass(frozen=True)
class Succeeded:
    rtc_ready_seconds: float


@dataclass(frozen=True)
class Failed:
    phase: str
    reason: str
    code: str
    permanent: bool = False


@dataclass(frozen=True)
class Lost:
    reason: str
    code: str


Command = (PhaseStarted | PhaseDone | AcquireSlot | ReleaseSlot | DeriveKey | PostAttach
           | OpenSignaling | WaitHost | PollOffer | OpenOffer | CreatePeer | BuildAnswer
           | PostAnswer | WaitIce | WaitChannel | CancelWait | StartTimer | CancelTimer | SendReady
           | InsecureFallback | Succeeded | Failed | Lost)


@dataclass(frozen=True)
class Result:
    """The commands an input caused, in order; *ignored* says why an input changed nothing."""

    commands: tuple[Command, ...] = ()
    ignored: str | None = None


# -- the table -----------------------------------------------------------------------------
class Action(enum.Enum):
    START = "start"  # begin the attempt
    ADVANCE = "advance"  # what this state waits for: take its values and move on
    NOTE = "note"  # a fact a later step needs: keep it
    FAIL = "fail"  # the attempt fails in this state's phase
    LOSE = "lose"  # the ready transport is gone
    TIMER = "timer"  # a timer fired (a stale one is ignored)
    WATCH = "watch"  # the host answers heartbeats: watch the ready transport closely
    STOP = "stop"  # the session is stopping
    IGNORE = "ignore"  # nothing to do; the reason is in :data:`IGNORED`


#: The input each waiting state advances on.
ADVANCES: dict[State, type[Any]] = {
    S.QUEUED: SlotAcquired, S.ATTACHING: AttachAnswered, S.JOINING: SignalingOpened,
    S.WAITING_HOST: HostJoined, S.POLLING: OfferReceived, S.KEYING: KeyDerived,
    S.PEERING: PeerCreated, S.ANSWERING: AnswerBuilt, S.POSTING: AnswerPosted,
    S.CONNECTING: IceConnected, S.OPENING: ChannelOpened, S.GRACE: ChannelOpened,
    S.SECURING: HandshakeDone, S.ANNOUNCING: OfferReadyReceived,
}
_ORDER = list(State)
#: Facts remembered when they come early, with the state that consumes them.
_NOTED: dict[type[Any], State] = {
    KeyDerived: S.KEYING, KeyFailed: S.KEYING, HandshakeDone: S.SECURING,
    HandshakeFailed: S.SECURING, OfferReadyReceived: S.ANNOUNCING,
}


def _rule(state: State, kind: type[Any]) -> tuple[Action, str | None]:
    """The table's entry for one pair (built once into :data:`TABLE`)."""
    if state in TERMINAL:
        return Action.IGNORE, f"the attempt is over ({state.value})"
    if kind is Stop:
        return Action.STOP, None
    if state is S.IDLE:
        if kind is Start:
            return Action.START, None
        return Action.IGNORE, "the attempt has not started"
    if kind is Start:
        return Action.IGNORE, "the attempt has already started"
    if kind is TimerFired:
        if state in WAITS:
            return Action.TIMER, None
        return Action.IGNORE, f"{state.value} runs no timer"
    if kind in (PeerLost, SignalingLost):
        return (Action.LOSE, None) if state is S.UP else (Action.FAIL, None)
    if kind is LivenessConfirmed:
        if state is S.UP:
            return Action.WATCH, None
        return Action.IGNORE, "only a ready transport is watched"
    if kind is StepFailed:
        if state is S.UP:
            return Action.IGNORE, "the transport is up: only a loss ends it"
        return Action.FAIL, None
    if ADVANCES.get(state) is kind:
        return Action.ADVANCE, None
    consumer = _NOTED.get(kind)
    if consumer is not None:
        if consumer is state:  # KeyFailed in offer.key, HandshakeFailed in handshake
            return Action.FAIL, None
        if _ORDER.index(state) < _ORDER.index(consumer):
            return Action.NOTE, None
        return Action.IGNORE, f"{kind.__name__} is no longer needed in {state.value}"
    return Action.IGNORE, f"{state.value} does not wait for {kind.__name__}"


#: state -> input type -> action, for every state and every input type.
TABLE: dict[State, dict[type[Any], Action]] = {
    state: {kind: _rule(state, kind)[0] for kind in INPUTS} for state in State}
#: Why an ignored pair is ignored.
IGNORED: dict[tuple[State, type[Any]], str] = {
    (state, kind): why for state in State for kind in INPUTS
    for action, why in [_rule(state, kind)] if action is Action.IGNORE and why is not None}


# -- the machine -----------------------------------------------------------------------------
class AttachMachine:
    """The decisions of one attempt.  ``handle(input)`` returns what to do next.

    *secure_expected*: our side runs Beach's secure transport for this join code (then the
    handshake channel gets a grace period after "beach").  *can_handshake*: a Noise
    responder exists for this attempt (a join code is present), so a host that opens the
    handshake channel gets the secure transport even when we did not expect it.
    """

    def __init__(self, timeouts: Timeouts, *, secure_expected: bool, can_handshake: bool):
        self.timeouts = timeouts
        self.secure_expected = secure_expected
        self.can_handshake = can_handshake
        self.state = S.IDLE
        self.started = 0.0
        # values from the inputs, as they come
        self.peer_session_id: str | None = None
        self.my_id: str | None = None
        self.host_peer_id: str | None = None
        self.handshake_id: str | None = None
        self.sealed = False
        self.answer_sdp: str | None = None
        self.post_tries = 0
        self.channels: frozenset[str] = frozenset()
        self.secure = False  # Beach's secure transport runs on this attempt
        self.rtc_ready_seconds: float | None = None
        self.outcome: Failed | Lost | None = None
        self.timer: str | None = None  # the name of the running timer
        self.liveness_timeout: float | None = None  # set once the host answers heartbeats
        # facts noted before the step that needs them
        self._noted: dict[type[Any], Input] = {}

    @property
    def phase(self) -> str | None:
        return self.state.phase

    @property
    def over(self) -> bool:
        return self.state in TERMINAL

    def handle(self, event: Input) -> Result:
        action = TABLE[self.state][type(event)]
        if action is Action.IGNORE:
            return Result(ignored=IGNORED[(self.state, type(event))])
        out: list[Command] = []
        ignored = getattr(self, "_" + action.value)(event, out)
        return Result(tuple(out), ignored)

    # -- actions: each appends commands to *out*; a str return is an ignore reason ----------
    def _start(self, event: Start, out: list[Command]) -> None:
        self.started = event.at
        self._go(S.QUEUED, out)

    def _stop(self, event: Stop, out: list[Command]) -> None:
        self._leave(out)
        self.state = S.STOPPED

    def _watch(self, event: LivenessConfirmed, out: list[Command]) -> None:
        if self.liveness_timeout is not None and event.timeout >= self.liveness_timeout:
            return
        self.liveness_timeout = event.timeout
        self._leave(out)
        self._arm(out, event.timeout)

    def _note(self, event: Input, out: list[Command]) -> None:
        kind = type(event)
        if kind is HandshakeDone and HandshakeFailed in self._noted:
            return  # the first outcome of the handshake stands
        if kind is HandshakeFailed and HandshakeDone in self._noted:
            return
        self._noted.setdefault(kind, event)

    def _fail(self, event: StepFailed | PeerLost | SignalingLost | KeyFailed | HandshakeFailed,
              out: list[Command]) -> None:
        permanent = isinstance(event, StepFailed | KeyFailed) and event.permanent
        code = event.code if not isinstance(event, HandshakeFailed) else "handshake_failed"
        reason = (event.reason if not isinstance(event, HandshakeFailed)
                  else f"secure handshake failed: {event.reason}")
        self._end_failed(reason, code, permanent, out)

    def _lose(self, event: PeerLost | SignalingLost, out: list[Command]) -> None:
        self._end_lost(event.reason, event.code, out)

    def _timer(self, event: TimerFired, out: list[Command]) -> str | None:
        state = self.state
        if event.name != self.timer:
            return f"stale timer {event.name!r} in {state.value}"
        self.timer = None  # it fired: nothing to cancel
        seconds = self._seconds(state)
        if state is S.GRACE:  # no handshake channel: the host runs no Noise for us
            out.append(CancelWait(HANDSHAKE))
            self.secure = False
            self._go(S.SECURING, out)
        elif state is S.ANNOUNCING:
            self._end_failed(
                f"the host negotiated but sent no __offer_ready__ within {seconds:.0f}s (an "
                f"upstream host serves only its first peer: is another manager or viewer "
                f"attached?)", "no_offer_ready", False, out)
        elif state is S.UP:
            watched = self.liveness_timeout is not None
            if event.silent >= seconds:
                if watched:
                    self._end_lost(f"nothing from the host for {event.silent:.1f}s (it stopped "
                                   f"answering bus heartbeats)", "liveness_timeout", out)
                else:
                    self._end_lost(f"nothing from the host for {event.silent:.0f}s (heartbeats "
                                   f"stopped)", "heartbeat_timeout", out)
            else:
                floor = min(MIN_HEARTBEAT_CHECK, seconds / 4)
                self._arm(out, max(floor, seconds - event.silent))
        else:
            self._end_failed(f"timed out after {seconds:.1f}s waiting for {WAITS[state].what}",
                             "timeout", False, out)
        return None

    def _advance(self, event: Input, out: list[Command]) -> str | None:
        state = self.state
        if isinstance(event, AttachAnswered):
            self.peer_session_id = event.peer_session_id
            self._go(S.JOINING, out)
        elif isinstance(event, SignalingOpened):
            self.my_id = event.my_id
            self._go(S.WAITING_HOST, out)
        elif isinstance(event, HostJoined):
            self.host_peer_id = event.peer_id
            self._go(S.POLLING, out)
        elif isinstance(event, OfferReceived):
            self.handshake_id = event.handshake_id
            self.sealed = event.sealed
            self._go(S.KEYING, out)
        elif isinstance(event, KeyDerived):
            self._keyed(out)
        elif isinstance(event, AnswerBuilt):
            self.answer_sdp = event.sdp
            self._go(S.POSTING, out)
        elif isinstance(event, AnswerPosted):
            self.post_tries = event.tries
            self._go(S.CONNECTING, out)
        elif isinstance(event, ChannelOpened):
            wanted = BEACH if state is S.OPENING else HANDSHAKE
            if event.label != wanted:
                return f"{state.value} waits for {wanted!r}, not {event.label!r}"
            self.channels = self.channels | event.channels | {event.label}
            if state is S.OPENING:
                self._go(S.GRACE, out)
            else:
                self.secure = self.can_handshake
                self._go(S.SECURING, out)
        elif isinstance(event, HandshakeDone):
            self._go(S.ANNOUNCING, out)
        elif isinstance(event, OfferReadyReceived):
            self._ready(event.at, out)
        else:  # SlotAcquired, PeerCreated, IceConnected: nothing to keep
            self._go(_NEXT[state], out)
        return None

    # -- moving -----------------------------------------------------------------------------
    def _seconds(self, state: State) -> float:
        if state is S.UP and self.liveness_timeout is not None:
            return self.liveness_timeout
        return float(getattr(self.timeouts, WAITS[state].timeout))

    def _arm(self, out: list[Command], seconds: float) -> None:
        self.timer = self.state.value
        out.append(StartTimer(self.timer, seconds))

    def _leave(self, out: list[Command]) -> None:
        """Cancel the running timer, if any."""
        if self.timer is not None:
            out.append(CancelTimer(self.timer))
            self.timer = None

    def _go(self, new: State, out: list[Command]) -> None:
        """Leave the current state for *new* and run *new*'s entry."""
        old = self.state
        self._leave(out)
        if old.phase != new.phase:
            if old.phase == "dc_open" and self.secure_expected and not self.secure:
                out.append(InsecureFallback(HANDSHAKE, self.timeouts.handshake_grace))
            if old.phase in PHASES:
                out.append(PhaseDone(old.phase or "", self._detail(old.phase or "")))
            if new.phase in PHASES:
                out.append(PhaseStarted(new.phase or ""))
        self.state = new
        self._enter(new, out)

    def _wait(self, out: list[Command], *commands: Command) -> None:
        self._arm(out, self._seconds(self.state))
        out.extend(commands)

    def _enter(self, state: State, out: list[Command]) -> None:
        if state is S.QUEUED:
            out.append(AcquireSlot())
        elif state is S.ATTACHING:
            out.append(DeriveKey())  # Argon2id, while we talk to Road
            self._wait(out, PostAttach())
        elif state is S.JOINING:
            self._wait(out, OpenSignaling())
        elif state is S.WAITING_HOST:
            self._wait(out, WaitHost())
        elif state is S.POLLING:
            self._wait(out, PollOffer())
        elif state is S.KEYING:
            failed = self._noted.get(KeyFailed)
            if isinstance(failed, KeyFailed):
                self._end_failed(failed.reason, failed.code, failed.permanent, out)
            elif KeyDerived in self._noted:
                self._keyed(out)
            else:
                self._wait(out)
        elif state is S.PEERING:
            out.append(CreatePeer())
        elif state is S.ANSWERING:
            self._wait(out, BuildAnswer())
        elif state is S.POSTING:
            self._wait(out, PostAnswer(self.answer_sdp or ""))
        elif state is S.CONNECTING:
            self._wait(out, WaitIce())
        elif state is S.OPENING:
            self._wait(out, WaitChannel(BEACH))
        elif state is S.GRACE:
            if HANDSHAKE in self.channels:  # opened with "beach": the host runs Noise for us
                self.secure = self.can_handshake
                self._go(S.SECURING, out)
            elif self.secure_expected:
                self._wait(out, WaitChannel(HANDSHAKE))
            else:
                self.secure = False
                self._go(S.SECURING, out)
        elif state is S.SECURING:
            failed = self._noted.get(HandshakeFailed)
            if not self.secure or HandshakeDone in self._noted:
                self._go(S.ANNOUNCING, out)
            elif isinstance(failed, HandshakeFailed):
                self._fail(failed, out)
            else:
                self._wait(out)
        elif state is S.ANNOUNCING:
            out.append(SendReady())
            early = self._noted.get(OfferReadyReceived)
            if isinstance(early, OfferReadyReceived):
                self._ready(early.at, out)
            else:
                self._wait(out)

    def _keyed(self, out: list[Command]) -> None:
        self._leave(out)
        out.append(OpenOffer())
        self._go(S.PEERING, out)

    def _ready(self, at: float, out: list[Command]) -> None:
        self.rtc_ready_seconds = at - self.started
        self._go(S.UP, out)
        out.append(ReleaseSlot())
        out.append(Succeeded(self.rtc_ready_seconds))
        self._arm(out, self.timeouts.heartbeat_timeout)

    def _detail(self, phase: str) -> tuple[tuple[str, Any], ...]:
        if phase == "attach":
            return (("my_peer_id", self.my_id),)
        if phase == "offer":
            return (("handshake_id", self.handshake_id), ("sealed", self.sealed))
        if phase == "answer":
            return (("post_tries", self.post_tries),)
        if phase == "dc_open":
            return (("channels", tuple(sorted(self.channels))),)
        if phase == "handshake":
            return (("secure", self.secure),)
        if phase == "ready":
            return (("rtc_ready_seconds", round(self.rtc_ready_seconds or 0.0, 4)),)
        return ()

    def _end_failed(self, reason: str, code: str, permanent: bool, out: list[Command]) -> None:
        phase = self.state.phase or "attach"
        self._leave(out)
        self.state = S.FAILED
        self.outcome = Failed(phase, reason, code, permanent)
        out.append(self.outcome)

    def _end_lost(self, reason: str, code: str, out: list[Command]) -> None:
        self._leave(out)
        self.state = S.LOST
        self.outcome = Lost(reason, code)
        out.append(self.outcome)


#: The next state for advances that carry nothing.
_NEXT: dict[State, State] = {S.QUEUED: S.ATTACHING, S.PEERING: S.ANSWERING,
                             S.CONNECTING: S.OPENING}


__all__ = [
    "ADVANCES", "BEACH", "HANDSHAKE", "HANDSHAKE_GRACE", "IGNORED", "INPUTS", "NEGOTIATING",
    "PHASES", "TABLE", "TERMINAL", "WAITS", "Action", "AttachMachine", "Command", "Input",
    "Result", "State", "Timeouts",
]
