"""One host session: join one host as a Beach client and keep the transport healthy.

The coarse state (idle, attaching, ready, backoff, rejected, stopped) follows the table in
:mod:`beachmanager.protocol.session`; every change is published once on the session stream
(:class:`~beachmanager.transport.events.SessionEvents`), and ``ready`` only after the bus
sender is attached, so a subscriber may publish at once.

Phases of one attempt (reference ``road-signaling-and-webrtc-join.md`` §6)::

    attach     POST /peer-sessions/attach; WebSocket join (label beach-manager); find the host
    offer      poll the offer mailbox; open the sealed offer (Argon2id session key, HKDF)
    answer     aiortc answer (candidates gathered here), sealed, posted to the mailbox
    ice        the peer connection reaches "connected" (ICE + DTLS)
    dc_open    the host's "beach" channel is open, and "beach-secure-handshake" when the host
               runs secure transport for us (its channel decides; 2 s grace after "beach")
    handshake  Noise XX responder + challenge frames; "beach" is encrypted from here
    ready      "__ready__" sent; the host answers "__offer_ready__" (an upstream host that
               already serves another peer never does: reported as such)

What happens next in an attempt is decided by its
:class:`~beachmanager.protocol.attach.AttachMachine` (sans-I/O: the phase order, the waits
and their timers, what a timeout or a loss means, whether a failure is permanent); this
class is the driver: it feeds the machine the results of Road (treq, autobahn) and aiortc,
data-channel traffic and timer expiries, and executes its commands (``_do_<Command>``).
Failures of a step are translated into the machine's inputs in one place
(:meth:`HostSession._step_failed`); asyncio's cancellation is already Twisted's there
(:mod:`beachmanager._aio`).

At most ``gate`` attempts (``--attach-concurrency``) negotiate at once across all hosts;
the others wait in the ``attach`` phase, and their RTC-ready time includes the wait.

Every phase is logged on entry (``attach_phase=pending``) and exit (``attach_phase=ok``) with
the plan's fields and a per-attempt correlation id; a failure names its phase and the ids
and counts ``attach_failure_total{phase}``.  Once ready, the attempt watches for loss: the
data channel or peer connection closing or failing (ICE consent, a few seconds), the
signaling socket closing or going deaf (eviction), the host leaving the room, host
silence past ``heartbeat_timeout``, or a ``Shutdown`` frame.

Any failure or loss is a full redo (new WebSocket, offer, keys) after a capped exponential
backoff with jitter; the failure count resets only after a transport stayed up for
``stable_after`` seconds, so a host that connects and drops at once cannot cause a storm.
A rejected join code is permanent: the machine stops and says so.
"""

from __future__ import annotations

import hmac
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, fail, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import _aio
from ..bus.bus import HostBus
from ..cache.mirror import TerminalMirror
from ..protocol import attach as am
from ..protocol import crypto, frames
from ..protocol import signaling as sig
from ..protocol.association import attach_code_hint
from ..protocol.attach import BEACH, HANDSHAKE, HANDSHAKE_GRACE
from ..protocol.crypto.policy import join_code_present
from ..protocol.session import FINAL, SessionEvent, SessionState, next_state
from ..retry import backoff
from ..telemetry.logs import fields
from . import negotiation
from .attempt import Attempt
from .errors import AttachError, RoadError, TransportLost
from .events import Role, SessionChange, SessionEvents
from .ice import IceSettings
from .link import OFFER_READY, READY, HostLink
from .peer import AnswerPeer, PeerClosed, PeerError
from .road import LABEL, RoadHttp, SignalingSession

TIMELINE = 64
#: After an offer hint: this many quick polls, this far apart (the offer POST follows the hint).
QUICK_POLLS = 5
QUICK_POLL = 0.02
#: Seconds a peer connection may take to close before it is abandoned.
CLOSE_TIMEOUT = 5.0


@dataclass
class AttachSettings:
    road_url: str
    ice: IceSettings = field(default_factory=IceSettings)
    poll_interval: float = 0.25
    phase_timeout: float = 10.0
    offer_timeout: float = 20.0
    ready_timeout: float = 10.0
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    heartbeat_timeout: float = 45.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 30.0
    overrides: crypto.InsecureOverrides = field(default_factory=crypto.InsecureOverrides)
    manager_instance_id: str | None = None
    #: Shared by every machine: at most this many attempts negotiate at once (the rest queue),
    #: so attaching hundreds of hosts does not flood Road, the hosts or this process.
    gate: DeferredSemaphore | None = None


class HostSession:
    """One managed host: attach, keep alive, redo on failure, expose mirror, bus and state."""

    log = Logger()

    def __init__(self, host_session_id: str, join_code: str, settings: AttachSettings, *,
                 reactor, clock, road: RoadHttp, keys, metrics, bus: HostBus,
                 events: SessionEvents, role: Role = Role.ACTIVE,
                 mirror: TerminalMirror | None = None, jitter: Callable[[], float] | None = None):
        self.host_session_id = host_session_id
        self.events = events
        self.role = role
        self._join_code = join_code
        self.settings = settings
        self.reactor = reactor
        self.clock = clock
        self.road = road
        self.keys = keys
        self.metrics = metrics
        self.bus = bus
        self.mirror = mirror or TerminalMirror(clock.seconds)
        self.secure = crypto.secure_transport_active(join_code, LABEL, settings.overrides)
        self.sealed = crypto.signaling_sealed(join_code, settings.overrides)
        self._delay = (backoff(settings.backoff_initial, settings.backoff_max, jitter=jitter)
                       if jitter is not None else
                       backoff(settings.backoff_initial, settings.backoff_max))
        self.state = SessionState.IDLE
        self.phase: str | None = None
        self.attempts = 0
        self.failures = 0  # consecutive, for the backoff
        self.reconnects = 0
        self.ready_at: float | None = None
        self.last_error: dict[str, Any] | None = None
        self.timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE)
        self.current: Attempt | None = None
        self._loop_d: Deferred | None = None
        self._step_d: Deferred | None = None
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._loop_d is None:
            self.events.publish(self.host_session_id, self.state, role=self.role)
            self._loop_d = _aio.background(Deferred.fromCoroutine(self._run()),
                                           "attach loop", self.log, **self._fields())

    def stop(self) -> Deferred:
        """Leave gracefully: close channels, the peer connection and the WebSocket."""
        self._stopping = True
        if self._step_d is not None:
            self._step_d.cancel()
        d, self._loop_d = self._loop_d, None
        self.bus.detach()
        self._apply(SessionEvent.STOP, "detached", removed=True)
        return d if d is not None else succeed(None)

    def attach_code_hint(self) -> str | None:
        """What a harness may be shown of the join code (never the code)."""
        return attach_code_hint(self._join_code)

    def uses_join_code(self, join_code: str) -> bool:
        return hmac.compare_digest(self._join_code.encode(), join_code.encode())

    def when_ready(self) -> Deferred[HostSession]:
        """Fires with this session when its transport is (next) ready, from the session
        stream; fails if it never can be (rejected or detached).  Cancellable."""
        if self.state is SessionState.READY:
            return succeed(self)
        if self.state in FINAL:
            return fail(self._final_error())
        host = self.host_session_id

        def settled(c: SessionChange) -> bool:
            return c.host_session_id == host and (c.ready or c.new in FINAL)

        def outcome(c: SessionChange) -> HostSession:
            if not c.ready:
                raise self._final_error()
            return self

        return self.events.wait_for(settled, current=False).addCallback(outcome)

    def set_role(self, role: Role, reason: str) -> None:
        """Become the active session (a promoted standby: its transport is already up) or a
        standby (an active one stepping down); published at once on the stream."""
        if role is self.role:
            return
        self.role = role
        a = self.current
        self.events.publish(self.host_session_id, self.state, role=role, reason=reason,
                            transport_id=a.transport_id if a else None)
        self.log.info("{host_session_id} is now the {role} session ({reason})", role=role.value,
                      reason=reason, **self._fields())

    @property
    def is_up(self) -> bool:
        """Whether the current transport is ready (the session answers bus traffic)."""
        a = self.current
        return (self.state is SessionState.READY and a is not None and not a.closed
                and a.machine.state is am.State.UP)

    def watch_liveness(self, timeout: float) -> None:
        """The host answers the bus heartbeat: lose the transport after *timeout* seconds of
        silence from now on (:mod:`.liveness`); repeated calls change nothing."""
        a = self.current
        if a is not None and not a.closed and a.machine.state is am.State.UP and (
                a.machine.liveness_timeout is None or timeout < a.machine.liveness_timeout):
            self._feed(a, am.LivenessConfirmed(timeout))

    def _final_error(self) -> AttachError:
        err = self.last_error or {}
        if self.state is SessionState.STOPPED:
            return AttachError("attach", "the host was detached", permanent=True, code="stopped")
        return AttachError(err.get("phase", "attach"), err.get("reason", self.state.value),
                           permanent=True, code=err.get("code", self.state.value))

    def _apply(self, event: SessionEvent, reason: str | None = None, *,
               removed: bool = False) -> None:
        """Take *event* through the lifecycle table and publish the new state (once)."""
        new = next_state(self.state, event)  # a stopped session ignores its attempt winding down
        self.state = new
        a = self.current
        self.events.publish(self.host_session_id, new, role=self.role, reason=reason,
                            transport_id=a.transport_id if a else None, removed=removed)

    async def _run(self) -> None:
        while not self._stopping:
            attempt = self._new_attempt()
            self.attempts += 1
            self.current = attempt
            if attempt.number > 1:
                self.reconnects += 1
                self.metrics.transport_reconnect_total.inc()
                self._event("reconnect", "pending", attempt, reason=(self.last_error or {}).get("reason"))
            permanent = False
            self._step_d = Deferred.fromCoroutine(self._attempt(attempt))
            try:
                await self._step_d
            except CancelledError:
                pass
            except AttachError as e:
                permanent = e.permanent
                self._attach_failed(attempt, e)
                self.bus.detach()
                self._apply(SessionEvent.REFUSED if permanent else SessionEvent.FAILED,
                            "internal error" if e.code == "internal" else e.reason)
            except TransportLost as e:
                self._lost(attempt, e)
                self.bus.detach()  # first: nobody may publish into a transport that is gone
                self._apply(SessionEvent.LOST, e.reason)
            except Exception as e:  # a bug: log it, count it, go on
                self.log.failure("attach attempt crashed", **self._fields(attempt))
                self._attach_failed(attempt, AttachError(self.phase or "attach",
                                                         f"internal error: {e!r}", code="internal"))
                self.bus.detach()
                self._apply(SessionEvent.FAILED, "internal error")
            finally:
                self._step_d = None
                await self._teardown(attempt)
            if self._stopping:
                break
            if permanent:
                return
            delay = self._delay(self.failures)
            self.failures += 1
            self.log.info("retrying {host_session_id} in {delay:.2f}s (failure {failures})",
                          delay=delay, failures=self.failures, **self._fields(attempt))
            self._step_d = deferLater(self.clock, delay)
            try:
                await self._step_d
            except CancelledError:
                break
            finally:
                self._step_d = None

    # -- one attempt: the machine decides, this driver does ----------------------------------
    def _new_attempt(self) -> Attempt:
        s = self.settings
        timeouts = am.Timeouts(phase_timeout=s.phase_timeout, offer_timeout=s.offer_timeout,
                               ready_timeout=s.ready_timeout,
                               heartbeat_timeout=s.heartbeat_timeout,
                               handshake_grace=HANDSHAKE_GRACE)
        machine = am.AttachMachine(timeouts, secure_expected=self.secure,
                                   can_handshake=join_code_present(self._join_code))
        return Attempt(self.attempts + 1, self.clock.seconds(), machine)

    async def _attempt(self, a: Attempt) -> None:
        self._apply(SessionEvent.ATTEMPT)
        self._feed(a, am.Start(a.started))
        end = await a.done
        if isinstance(end, am.Failed):
            raise AttachError(end.phase, end.reason, permanent=end.permanent, code=end.code)
        raise TransportLost(end.reason, end.code)

    def _feed(self, a: Attempt, event: am.Input) -> None:
        """Hand *event* to the attempt's machine and execute what it says, in order.  An input
        that arrives while a command runs (a Deferred that fired at once) waits its turn."""
        a.inbox.append(event)
        if a.feeding:
            return
        a.feeding = True
        try:
            while a.inbox:
                for command in a.machine.handle(a.inbox.popleft()).commands:
                    if not a.closed:
                        self._execute(a, command)
        finally:
            a.feeding = False
        outcome = a.machine.outcome
        if outcome is not None and not a.done.called:
            a.done.callback(outcome)

    def _execute(self, a: Attempt, command: am.Command) -> None:
        kind = type(command)
        try:
            EXECUTORS[kind](self, a, command)
        except Exception:
            self._step_failed(a, Failure(), kind.__name__)

    def _track(self, a: Attempt, d: Deferred, what: str, result: Callable[[Any], am.Input],
               late: Callable[[Any], None] | None = None,
               failed: Callable[[Failure], am.Input | None] | None = None) -> None:
        """Feed the outcome of *d* to the machine: *result(value)* on success, a translated
        failure otherwise.  A value that arrives after the attempt ended goes to *late*."""
        a.inflight.add(d)

        def ok(value: Any) -> None:
            a.inflight.discard(d)
            if a.machine.over or a.closed:
                if late is not None:
                    late(value)
                return
            try:
                event = result(value)
            except Exception:
                self._step_failed(a, Failure(), what)
                return
            self._feed(a, event)

        def bad(f: Failure) -> None:
            a.inflight.discard(d)
            if d in a.abandoned:
                a.abandoned.discard(d)
                return
            event = failed(f) if failed is not None else None
            if event is not None and not a.machine.over:
                self._feed(a, event)
            elif event is None:
                self._step_failed(a, f, what)

        d.addCallbacks(ok, bad)

    def _step_failed(self, a: Attempt, f: Failure, what: str) -> None:
        """The one translation of a failed step into the machine's StepFailed."""
        if a.machine.over:
            return  # we cancelled it (teardown, stop), or it lost a race with the end
        e = f.value
        if isinstance(e, CancelledError):
            event = am.StepFailed(f"{what} was cancelled", "cancelled")
        elif isinstance(e, AttachError):
            event = am.StepFailed(e.reason, e.code, e.permanent)
        elif isinstance(e, RoadError):
            event = am.StepFailed(str(e), "road_error")
        elif isinstance(e, PeerError):
            event = am.StepFailed(str(e), "peer")
        else:  # a bug: log it, count it, go on
            self.log.failure("attach attempt crashed", failure=f, **self._fields(a))
            event = am.StepFailed(f"internal error: {e!r}", "internal")
        self._feed(a, event)

    # -- the commands ----------------------------------------------------------------------------
    def _do_PhaseStarted(self, a: Attempt, c: am.PhaseStarted) -> None:
        self._enter(c.phase, a)

    def _do_PhaseDone(self, a: Attempt, c: am.PhaseDone) -> None:
        self._exit(c.phase, a, **{k: list(v) if isinstance(v, tuple) else v for k, v in c.detail})

    def _do_AcquireSlot(self, a: Attempt, c: am.AcquireSlot) -> None:
        gate = self.settings.gate
        if gate is None:
            self._feed(a, am.SlotAcquired())
            return

        def acquired(_: Any) -> am.Input:
            a.slot = gate
            return am.SlotAcquired()

        self._track(a, gate.acquire(), "the attach gate", acquired, late=lambda _: gate.release())

    def _do_ReleaseSlot(self, a: Attempt, c: am.ReleaseSlot) -> None:
        self._release_slot(a)

    def _do_DeriveKey(self, a: Attempt, c: am.DeriveKey) -> None:
        def derived(key: bytes) -> am.Input:
            a.session_key = key
            return am.KeyDerived()

        def failed(f: Failure) -> am.Input | None:
            e = f.value
            if isinstance(e, AttachError):
                return am.KeyFailed(e.reason, e.code, e.permanent)
            return None  # cancelled or a bug: the usual translation

        self._track(a, self._session_key(), "the session key", derived, failed=failed)

    def _do_PostAttach(self, a: Attempt, c: am.PostAttach) -> None:
        def answered(psid: str) -> am.Input:
            a.peer_session_id = psid
            return am.AttachAnswered(psid)

        d = Deferred.fromCoroutine(self.road.attach(self.host_session_id, self._join_code, _uuid()))
        self._track(a, d, "Road's attach request", answered)

    def _do_OpenSignaling(self, a: Attempt, c: am.OpenSignaling) -> None:
        s = self.settings
        a.signaling = room = SignalingSession(
            reactor=self.reactor, clock=self.clock, road_url=s.road_url,
            host_session_id=self.host_session_id, join_code=self._join_code,
            peer_session_id=a.road_peer, ping_interval=s.ping_interval,
            pong_timeout=s.pong_timeout, log_fields=self._fields(a),
            metadata={"manager_instance_id": s.manager_instance_id} if s.manager_instance_id else None)

        def opened(_: Any) -> am.Input:
            room.lost.addCallback(lambda reason: self._feed(
                a, am.SignalingLost(f"signaling: {reason}", room.lost_code or "ws_lost")))
            return am.SignalingOpened(room.my_id)

        self._track(a, Deferred.fromCoroutine(room.open()), "the signaling join", opened)

    def _do_WaitHost(self, a: Attempt, c: am.WaitHost) -> None:
        def joined(peer_id: str) -> am.Input:
            a.host_peer_id = peer_id
            return am.HostJoined(peer_id)

        self._track(a, Deferred.fromCoroutine(a.room.wait_host()), "the host", joined)

    def _do_PollOffer(self, a: Attempt, c: am.PollOffer) -> None:
        def received(offer: sig.WebRtcSdpPayload) -> am.Input:
            a.offer, a.handshake_id = offer, offer.handshake_id
            return am.OfferReceived(offer.handshake_id, offer.sealed is not None)

        self._track(a, Deferred.fromCoroutine(self._poll_offer(a)), "the offer", received)

    def _do_OpenOffer(self, a: Attempt, c: am.OpenOffer) -> None:
        offer = _need(a.offer, "offer")
        a.psk = crypto.derive_handshake_key(_need(a.session_key, "session key"), offer.handshake_id)
        a.offer_sdp = negotiation.open_offer(offer, a.psk)

    def _do_CreatePeer(self, a: Attempt, c: am.CreatePeer) -> None:
        def late(peer: AnswerPeer) -> None:
            _aio.background(_aio.as_deferred(peer.close()), "close a late peer connection", self.log)

        self._track(a, _aio.as_deferred(_make_peer(self, a)), "the peer connection",
                    lambda peer: self._peer_made(a, peer), late=late)

    def _peer_made(self, a: Attempt, peer: AnswerPeer) -> am.Input:
        """The peer connection exists: watch it, wrap "beach", ready the Noise responder,
        apply the host's candidates (buffered and later ones)."""
        psk, room = a.key, a.room
        handshake_id = a.handshake_id or ""
        a.peer = peer
        a.peer_lost = _aio.as_deferred(peer.wait_lost())
        a.peer_lost.addCallbacks(lambda reason: self._feed(a, am.PeerLost(reason, "peer_lost")),
                                 lambda f: None)
        a.link = HostLink(lambda data: peer.send(BEACH, data), self.clock.seconds,
                          on_text=lambda text: self._on_text(a, text),
                          on_frame=lambda frame: self._on_frame(a, frame),
                          buffered=lambda: peer.buffered_amount(BEACH))
        if a.machine.can_handshake:
            # Ready even when we do not expect Noise: the host's handshake channel decides.
            a.handshake = crypto.SecureHandshake(crypto.Role.RESPONDER, psk, handshake_id,
                                                 a.my_peer, a.host_peer)
        for cand in room.take_candidates(handshake_id, lambda c: self._remote_candidate(a, psk, c)):
            self._remote_candidate(a, psk, cand)
        return am.PeerCreated()

    def _do_BuildAnswer(self, a: Attempt, c: am.BuildAnswer) -> None:
        self._track(a, _aio.as_deferred(a.pc.answer(a.offer_sdp or "")), "building the answer",
                    am.AnswerBuilt)

    def _do_PostAnswer(self, a: Attempt, c: am.PostAnswer) -> None:
        payload = negotiation.answer_payload(a.key, a.handshake_id or "", a.my_peer, a.host_peer,
                                             c.sdp, self.sealed)
        self._track(a, Deferred.fromCoroutine(self.road.post_answer(a.road_peer, payload)),
                    "posting the answer", am.AnswerPosted)

    def _do_WaitIce(self, a: Attempt, c: am.WaitIce) -> None:
        self._track(a, _aio.as_deferred(a.pc.wait_connected()), "ICE and DTLS",
                    lambda _: am.IceConnected())

    def _do_WaitChannel(self, a: Attempt, c: am.WaitChannel) -> None:
        peer = a.pc
        a.channel_waits[c.label] = d = _aio.as_deferred(peer.wait_channel(c.label))
        self._track(a, d, f"the {c.label!r} channel",
                    lambda _: am.ChannelOpened(c.label, frozenset(peer.channels)))

    def _do_CancelWait(self, a: Attempt, c: am.CancelWait) -> None:
        d = a.channel_waits.pop(c.label, None)
        if d is not None and not d.called:
            a.abandoned.add(d)
            d.cancel()

    def _do_StartTimer(self, a: Attempt, c: am.StartTimer) -> None:
        self._do_CancelTimer(a, am.CancelTimer(c.name))
        a.timers[c.name] = self.clock.callLater(c.seconds, self._timer_fired, a, c.name)

    def _timer_fired(self, a: Attempt, name: str) -> None:
        a.timers.pop(name, None)
        self._feed(a, am.TimerFired(name, silent=self.clock.seconds() - a.last_inbound))

    def _do_CancelTimer(self, a: Attempt, c: am.CancelTimer) -> None:
        call = a.timers.pop(c.name, None)
        if call is not None and call.active():
            call.cancel()

    def _do_SendReady(self, a: Attempt, c: am.SendReady) -> None:
        a.channel.send_text(READY)

    def _do_InsecureFallback(self, a: Attempt, c: am.InsecureFallback) -> None:
        self.log.warn("the host opened no {label!r} channel within {grace}s: continuing "
                      "WITHOUT Beach's secure transport (DTLS only); is the host's "
                      "BEACH_INSECURE_TRANSPORT set?", label=c.label, grace=c.grace,
                      **self._fields(a))

    def _do_Succeeded(self, a: Attempt, c: am.Succeeded) -> None:
        self.metrics.transport_rtc_ready_seconds.observe(c.rtc_ready_seconds)
        self._became_ready(a)

    def _do_Failed(self, a: Attempt, c: am.Failed) -> None:
        pass  # the attempt's outcome: _feed hands it to _attempt

    def _do_Lost(self, a: Attempt, c: am.Lost) -> None:
        pass  # likewise

    def _session_key(self) -> Deferred:
        """The session key; a busy key cache is waited out, other errors become AttachError."""
        async def get() -> bytes:
            while True:
                try:
                    return await self.keys.get(self._join_code, self.host_session_id)
                except crypto.CryptoError as e:
                    raise AttachError("offer", f"cannot derive the session key: {e}",
                                      permanent=True, code="session_key") from None
                except RuntimeError as e:  # SessionKeyBusy: too many derivations queued
                    self.log.debug("session key cache busy ({error}); waiting", error=str(e))
                    await deferLater(self.clock, 0.1)

        return Deferred.fromCoroutine(get())

    async def _poll_offer(self, a: Attempt) -> sig.WebRtcSdpPayload:
        """Poll every ``poll_interval``; when the host starts trickling candidates for a new
        handshake (it posts its offer right then), poll at once and briefly faster."""
        quick = 0
        while True:
            try:
                offer = await self.road.poll_offer(a.road_peer, a.my_peer)
            except RoadError as e:
                raise AttachError("offer", str(e), code="road_error") from None
            if offer is not None:
                if offer.from_peer == a.host_peer_id and offer.type == "offer":
                    return offer
                self.log.info("discarding an offer from {from_peer} (the host is {host_peer})",
                              from_peer=offer.from_peer, host_peer=a.host_peer_id, **self._fields(a))
                continue
            if quick:
                quick -= 1
                await deferLater(self.clock, QUICK_POLL)
                continue
            if await self._sleep_or_hint(a, self.settings.poll_interval):
                quick = QUICK_POLLS

    async def _sleep_or_hint(self, a: Attempt, seconds: float) -> bool:
        """Sleep *seconds*, or less if an offer hint arrives; True when woken by the hint."""
        woke: Deferred[bool] = Deferred()

        def wake(hinted: bool) -> None:
            if not woke.called:
                woke.callback(hinted)

        hint = a.room.next_offer_hint()
        call = self.clock.callLater(seconds, wake, False)
        hint.addCallback(lambda _: wake(True))
        try:
            return await woke
        finally:
            if call.active():
                call.cancel()
            if not hint.called:
                hint.cancel()
            hint.addErrback(lambda f: None)

    def _remote_candidate(self, a: Attempt, psk: bytes, cand: sig.IceCandidateSignal) -> None:
        try:
            ice = negotiation.open_candidate(psk, cand, a.host_peer, a.my_peer)
        except negotiation.NegotiationError as e:
            self.log.warn("dropping an ICE candidate that does not open: {error}", error=str(e),
                          **self._fields(a))
            return
        if a.peer is not None:
            _aio.background(_aio.as_deferred(a.peer.add_candidate(ice)), "add ICE candidate",
                            self.log)

    # -- data-channel traffic ---------------------------------------------------------------------
    def _on_message(self, a: Attempt, label: str, data: bytes) -> None:
        a.last_inbound = self.clock.seconds()
        if label == BEACH and a.link is not None:
            a.link.receive(data)
        elif label == HANDSHAKE and a.handshake is not None and a.link is not None:
            self._handshake_message(a, data)

    def _handshake_message(self, a: Attempt, data: bytes) -> None:
        handshake = a.handshake
        if a.handshake_settled or handshake is None:
            return
        try:
            replies = handshake.receive(data)
            for reply in replies:
                a.pc.send(HANDSHAKE, reply)
        except (crypto.CryptoError, PeerClosed) as e:
            a.handshake_settled = True
            self._feed(a, am.HandshakeFailed(str(e)))
            return
        if handshake.done:
            keys = handshake.keys
            if keys is None:
                raise RuntimeError("a finished handshake has no transport keys")
            a.channel.install_secure(crypto.SecureChannel(keys.send_key, keys.recv_key))
            a.pc.release_channel(HANDSHAKE)  # done with it: the host may close it now
            a.handshake_settled = True
            self._feed(a, am.HandshakeDone())

    def _on_text(self, a: Attempt, text: str) -> None:
        if text == OFFER_READY:
            self._feed(a, am.OfferReadyReceived(self.clock.seconds()))
        elif text.startswith("beach:status:"):
            self.log.info("host status: {status}", status=text[len("beach:status:"):], **self._fields(a))

    def _on_frame(self, a: Attempt, frame: Any) -> None:
        if isinstance(frame, frames.Extension):
            self.bus.deliver(frame.namespace, frame.kind, frame.payload)
        elif isinstance(frame, frames.Shutdown):
            self._feed(a, am.PeerLost("the host sent Shutdown", "host_shutdown"))
        else:
            self.mirror.apply(frame, now_ms=self.clock.seconds() * 1000.0)

    def _on_peer_event(self, a: Attempt, name: str, **info: Any) -> None:
        if name == "dc_state_change":
            self.log.info("dc_state_change {label} -> {new_state}", label=info["label"],
                          new_state=info["new_state"], seq=info["seq"], **self._fields(a))
        elif name in ("pc_state_change", "ice_state_change"):
            self.log.debug("{event}: {state}", event=name, state=info["state"], **self._fields(a))
        else:
            self.log.debug("peer event {event} {info}", event=name, info=info, **self._fields(a))

    # -- ready and loss ---------------------------------------------------------------------------
    def _became_ready(self, a: Attempt) -> None:
        """Attach the bus sender, then announce ``ready``: a subscriber that publishes from
        its callback (a delivery lane with a backlog) finds the sender in place."""
        self.ready_at = self.clock.seconds()
        a.last_inbound = self.ready_at
        link = a.channel

        def send(namespace: str, topic: str, payload: bytes) -> bool:
            try:
                return link.send_extension(namespace, topic, payload)
            except PeerClosed:  # the channel closed under us: the loss is being handled
                return False

        self.bus.attach(send)
        self._apply(SessionEvent.READY)

    @staticmethod
    def _release_slot(a: Attempt) -> None:
        slot, a.slot = a.slot, None
        if slot is not None:
            slot.release()

    async def _teardown(self, a: Attempt) -> None:
        self._feed(a, am.Stop())  # nothing the attempt started may act on it any more
        a.closed = True
        self.bus.detach()
        self._release_slot(a)
        for call in a.timers.values():
            if call.active():
                call.cancel()
        a.timers.clear()
        for d in [*a.inflight, a.peer_lost]:
            if d is not None:
                if not d.called:
                    d.cancel()
                d.addErrback(lambda f: None)  # an outcome nobody awaited is not an error
        if a.signaling is not None:
            a.signaling.close()
        if a.peer is not None:
            peer, a.peer = a.peer, None
            closing = _aio.as_deferred(peer.close())
            timer = self.clock.callLater(CLOSE_TIMEOUT, closing.cancel)
            try:
                await closing
            except Exception as e:  # a stuck close is abandoned (CancelledError included)
                self.log.warn("closing the peer connection failed: {error!r}", error=e,
                              **self._fields(a))
            finally:
                if timer.active():
                    timer.cancel()

    # -- bookkeeping ------------------------------------------------------------------------------
    def _enter(self, phase: str, a: Attempt) -> None:
        self.phase = phase
        self._event(phase, "pending", a)

    def _exit(self, phase: str, a: Attempt, **detail: Any) -> None:
        self._event(phase, "ok", a, **detail)

    def _event(self, phase: str, status: str, a: Attempt, **detail: Any) -> None:
        now = self.clock.seconds()
        self.timeline.append({"at": round(now, 4), "phase": phase, "status": status,
                              "attempt": a.number, "transport_id": a.transport_id,
                              **{k: v for k, v in detail.items() if v is not None}})
        self.log.info("{host_session_id} {phase} attach_phase={attach_phase} (attempt "
                      "{attach_attempt}, {transport_id})", attach_phase=status,
                      correlation_id=a.correlation_id, detail=detail,
                      **self._fields(a, phase=phase))

    def _attach_failed(self, a: Attempt, e: AttachError) -> None:
        self.metrics.attach_failure_total.labels(phase=e.phase).inc()
        self.last_error = {"phase": e.phase, "reason": e.reason, "code": e.code,
                           "at": self.clock.seconds(), "attempt": a.number}
        self._event(e.phase, "failed", a, reason=e.reason, code=e.code)
        self.log.warn("attach of {host_session_id} failed in phase {phase}: {reason} (peer session "
                      "{peer_or_none}, host peer {host_peer_id})", reason=e.reason,
                      peer_or_none=a.peer_session_id or "none yet",
                      host_peer_id=a.host_peer_id, code=e.code, correlation_id=a.correlation_id,
                      **self._fields(a, phase=e.phase))

    def _lost(self, a: Attempt, e: TransportLost) -> None:
        up = self.clock.seconds() - (self.ready_at or self.clock.seconds())
        if up >= self.settings.stable_after:
            self.failures = 0
        self.last_error = {"phase": "ready", "reason": e.reason, "code": e.code,
                           "at": self.clock.seconds(), "attempt": a.number}
        self._event("reconnect", "lost", a, reason=e.reason, code=e.code, up_seconds=round(up, 3))
        self.log.warn("transport to {host_session_id} lost after {up:.1f}s: {reason}", up=up,
                      reason=e.reason, code=e.code, correlation_id=a.correlation_id,
                      **self._fields(a, phase="reconnect"))

    def _fields(self, a: Attempt | None = None, phase: str | None = None) -> dict[str, Any]:
        a = a or self.current
        return fields(manager_instance_id=self.settings.manager_instance_id,
                      host_session_id=self.host_session_id,
                      peer_session_id=a.peer_session_id if a else None,
                      transport_id=a.transport_id if a else None,
                      attach_attempt=a.number if a else None, phase=phase,
                      transport_mode="webrtc")

    def status(self, detail: bool = False) -> dict[str, Any]:
        """State for debug routes and the crash hook: ids, phase, counters; never payloads."""
        a = self.current
        out: dict[str, Any] = {
            "host_session_id": self.host_session_id, "status": self.state.value,
            "role": self.role.value,
            "phase": self.phase, "attempts": self.attempts, "reconnects": self.reconnects,
            "peer_session_id": a.peer_session_id if a else None,
            "transport_id": a.transport_id if a else None,
            "handshake_id": a.handshake_id if a else None,
            "host_peer_id": a.host_peer_id if a else None,
            "secure": a.secure if a else None,
            "ready_since": self.ready_at if self.state is SessionState.READY else None,
            "last_error": self.last_error,
            "heartbeat": self.mirror.heartbeats.as_dict(),
            "link": a.link.stats() if a and a.link else None,
            "ice_pair": a.peer.selected_pair() if a and a.peer else None,
            "bus": self.bus.stats(),
        }
        if detail:
            out["timeline"] = list(self.timeline)
            out["signaling"] = a.signaling.status() if a and a.signaling else None
            out["mirror"] = self.mirror.summary()
        return out


def _uuid() -> str:
    return str(uuid.uuid4())


async def _make_peer(machine: HostSession, a: Attempt) -> AnswerPeer:
    ice = machine.settings.ice
    return AnswerPeer(ice, on_message=lambda label, data: machine._on_message(a, label, data),
                      on_event=lambda name, **info: machine._on_peer_event(a, name, **info),
                      public_address=ice.public_ip)


def _need(value, what: str):
    if value is None:
        raise RuntimeError(f"the attempt has no {what} yet (made in phase 'offer')")
    return value


#: Each attempt command and the HostSession method that carries it out (a test checks that
#: every command of :mod:`beachmanager.protocol.attach` has one).
EXECUTORS: dict[type, Callable[[HostSession, Attempt, Any], None]] = {
    am.PhaseStarted: HostSession._do_PhaseStarted,
    am.PhaseDone: HostSession._do_PhaseDone,
    am.AcquireSlot: HostSession._do_AcquireSlot,
    am.ReleaseSlot: HostSession._do_ReleaseSlot,
    am.DeriveKey: HostSession._do_DeriveKey,
    am.PostAttach: HostSession._do_PostAttach,
    am.OpenSignaling: HostSession._do_OpenSignaling,
    am.WaitHost: HostSession._do_WaitHost,
    am.PollOffer: HostSession._do_PollOffer,
    am.OpenOffer: HostSession._do_OpenOffer,
    am.CreatePeer: HostSession._do_CreatePeer,
    am.BuildAnswer: HostSession._do_BuildAnswer,
    am.PostAnswer: HostSession._do_PostAnswer,
    am.WaitIce: HostSession._do_WaitIce,
    am.WaitChannel: HostSession._do_WaitChannel,
    am.CancelWait: HostSession._do_CancelWait,
    am.StartTimer: HostSession._do_StartTimer,
    am.CancelTimer: HostSession._do_CancelTimer,
    am.SendReady: HostSession._do_SendReady,
    am.InsecureFallback: HostSession._do_InsecureFallback,
    am.Succeeded: HostSession._do_Succeeded,
    am.Failed: HostSession._do_Failed,
    am.Lost: HostSession._do_Lost,
}


__all__ = ["AttachSettings", "HostSession"]
