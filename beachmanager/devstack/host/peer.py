"""One client peer of the host: the offerer's negotiation, then the served session.

Negotiation (reference road §3.1, §4, §5.4), one attempt per (WebSocket peer id):

1. new handshake id; handshake key from the session key (whenever there is a join code);
2. offer with ``beach`` (and ``beach-secure-handshake`` on the secure path);
   candidates trickled over the WebSocket (sealed with label ``ice``), then the
   offer posted to the mailbox (sealed with label ``offer``);
3. the answer polled every ``poll_interval`` until it arrives (or the peer leaves);
4. ``beach`` open within ``dc_open_timeout``; on the secure path Noise (initiator)
   and the challenge, then ``beach`` is encrypted;
5. ``__ready__`` awaited for ``ready_timeout`` (anything else is discarded), then
   ``__offer_ready__``, heartbeats (the first at once), the cache sync and the bus.

Label policy (reference road §4.1, the upstream protocol): the secure transport runs only
for the allow-listed labels (``SECURE_PEER_LABELS``) when there is a join code.  A client
that runs it whenever it has a passphrase (the browser client, with ``beach-surfer`` or
``private-beach``) waits for a handshake channel that never comes; the host then logs
one warning naming the peer's label and the policy (when such a peer never becomes ready,
or opens a handshake channel itself).

Afterwards ``Input`` goes to the PTY, ``Extension`` to the bus, ``Resize`` is logged
(or honoured), ``ViewportCommand`` replays the handshake, ``RequestBackfill`` gets
``HistoryBackfill``.
"""

from __future__ import annotations

import enum
import uuid
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

from ... import _aio
from ...protocol import signaling as sig
from ...protocol.channel import OFFER_READY, READY
from ...protocol.crypto import (
    HANDSHAKE_CHANNEL_LABEL,
    SECURE_PEER_LABELS,
    Role,
    SecureChannel,
    SecureHandshake,
    derive_handshake_key,
    ice_components,
    open_sealed,
    sdp_components,
    seal,
    secure_transport_active,
    signaling_sealed,
)
from ...protocol.crypto.policy import join_code_present
from ...protocol.frames import (
    Extension,
    Heartbeat,
    Input,
    RequestBackfill,
    Resize,
    Shutdown,
    ViewportCommand,
)
from .link import BeachLink, Frame, Text
from .rtc import BEACH_CHANNEL, OfferPeer
from .sync import PeerSync

if TYPE_CHECKING:
    from .host import BeachHost

#: Most handshake-channel messages held before the handshake object exists.
MAX_EARLY_HANDSHAKE = 8
#: Outbound bytes buffered on ``beach`` above which deltas wait.
MAX_BUFFERED = 8 * 1024 * 1024


class Phase(enum.Enum):
    OFFER = "offer"
    ANSWER = "answer"
    DC_OPEN = "dc_open"
    SECURE = "secure"
    AWAIT_READY = "ready"
    SERVING = "serving"
    CLOSED = "closed"


class NegotiationError(Exception):
    pass


class ClientPeer:
    log = Logger()

    def __init__(self, host: BeachHost, remote: sig.PeerInfo):
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self.remote = remote
        self.remote_id = remote.id
        self.label = remote.label
        self.handshake_id = str(uuid.uuid4())
        self.secure = secure_transport_active(host.join_code, self.label, self.settings.overrides)
        self.sealed = signaling_sealed(host.join_code, self.settings.overrides)
        self.phase = Phase.OFFER
        self.psk: bytes | None = None
        self.rtc: OfferPeer | None = None
        self.link = BeachLink(self._send_beach, self.clock.seconds, extension_header=self.settings.extension_header)
        self.sync = PeerSync(host.model)
        self.handshake: SecureHandshake | None = None
        self._early_handshake: list[bytes] = []
        self._handshake_closed = False
        self.label_policy_warned = False
        self._secure_done: Deferred | None = None
        self._ready: Deferred | None = None
        self._heartbeat: LoopingCall | None = None
        self.heartbeat_seq = 0
        self.close_reason: str | None = None
        self.inputs = 0
        self.resizes = 0

    # -- helpers ---------------------------------------------------------------------------
    def _fields(self) -> dict[str, Any]:
        return {"peer": self.remote_id, "handshake_id": self.handshake_id, "phase": self.phase.value}

    def _peer(self) -> OfferPeer:
        if self.rtc is None:
            raise NegotiationError("no peer connection yet")
        return self.rtc

    def _key(self) -> bytes:
        if self.psk is None:
            raise NegotiationError("no handshake key (the session has no join code)")
        return self.psk

    def _own_id(self) -> str:
        own = self.host.own_peer_id
        if own is None:
            raise NegotiationError("the host has not joined its room")
        return own

    def _room_session(self) -> str:
        session = self.host.peer_session_id
        if session is None:
            raise NegotiationError("the host has no peer session id")
        return session

    def _send_beach(self, data: bytes) -> None:
        self._peer().send(BEACH_CHANNEL, data)

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def serving(self) -> bool:
        return self.phase is Phase.SERVING

    # -- negotiation -----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._negotiate()
        except Exception as e:
            if not self.closed:
                self.log.warn("negotiation with {peer} failed in phase {phase}: {error}", error=repr(e),
                              **self._fields())
                await self.close(f"negotiation failed: {e!r}")

    async def _negotiate(self) -> None:
        host, own = self.host, self._own_id()
        if host.join_code and host.join_code.strip():  # also opens sealed answers when we send plain
            session_key = await host.session_key()
            self.psk = derive_handshake_key(session_key, self.handshake_id)

        async def make() -> OfferPeer:
            return OfferPeer(self.settings.ice_servers, secure=self.secure, on_message=self._on_rtc_message,
                             on_lost=self._on_rtc_lost, on_channel_closed=self._on_channel_closed,
                             on_remote_channel=self._on_remote_channel,
                             candidates_in_offer=self.settings.candidates_in_offer)

        self.rtc = rtc = await _aio.as_deferred(make())
        if self.secure:
            self.link.expect_encryption()
        sdp, candidates = await _aio.as_deferred(rtc.create_offer())
        self._check_open()
        for cand in candidates:
            host.send_signal(self.remote_id, self._ice_signal(cand))
        hid = self.handshake_id
        payload = sig.WebRtcSdpPayload(sdp=sdp, type="offer", handshake_id=hid, from_peer=own, to_peer=self.remote_id)
        if self.sealed:
            box = seal(self._key(), hid, "offer", sdp_components(own, self.remote_id, "offer"), sdp.encode())
            payload = sig.WebRtcSdpPayload(sdp="", type="offer", handshake_id=hid, from_peer=own,
                                           to_peer=self.remote_id, sealed=sig.SealedBox.from_json(box))
        await host.road.post_offer(self._room_session(), payload)
        self.phase = Phase.ANSWER
        answer = await self._poll_answer()
        await _aio.as_deferred(rtc.apply_answer(answer))
        self._check_open()
        self.phase = Phase.DC_OPEN
        await self._within(self.settings.dc_open_timeout, _aio.as_deferred(rtc.wait_open(BEACH_CHANNEL)))
        if self.secure:
            self.phase = Phase.SECURE
            await self._within(self.settings.dc_open_timeout,
                               _aio.as_deferred(rtc.wait_open(HANDSHAKE_CHANNEL_LABEL)))
            await self._run_secure_handshake()
        self.phase = Phase.AWAIT_READY
        self._ready = Deferred()
        await self._within(self.settings.ready_timeout, self._ready)
        self._check_open()
        self._serve()

    def _check_open(self) -> None:
        if self.closed:
            raise NegotiationError(self.close_reason or "closed")

    async def _within(self, seconds: float, d: Deferred) -> Any:
        d.addTimeout(seconds, self.clock)
        try:
            return await d
        except TimeoutError:
            raise NegotiationError(f"timed out after {seconds}s in phase {self.phase.value}") from None

    def _ice_signal(self, cand: sig.IceCandidate) -> dict[str, Any]:
        if not self.sealed:
            return sig.IceCandidateSignal.plain(self.handshake_id, cand).to_json()
        hid = self.handshake_id
        box = seal(self._key(), hid, "ice", ice_components(self._own_id(), self.remote_id, hid), cand.encode())
        return sig.IceCandidateSignal(hid, sealed=sig.SealedBox.from_json(box)).to_json()

    async def _poll_answer(self) -> str:
        host = self.host
        deadline = self.clock.seconds() + self.settings.answer_timeout
        while True:
            self._check_open()
            payload = await host.road.take_answer(self._room_session(), self.handshake_id)
            if payload is not None:
                if payload.from_peer != self.remote_id:
                    raise NegotiationError(f"answer from {payload.from_peer}, expected {self.remote_id}")
                if payload.sealed is None:
                    return payload.sdp
                plain = open_sealed(self._key(), self.handshake_id, "answer",
                                    sdp_components(payload.from_peer, payload.to_peer, "answer"),
                                    payload.sealed.to_json())
                return plain.decode("utf-8")
            if self.clock.seconds() >= deadline:
                raise NegotiationError(f"no answer within {self.settings.answer_timeout}s")
            await deferLater(self.clock, self.settings.poll_interval, lambda: None)

    async def _run_secure_handshake(self) -> None:
        hs = SecureHandshake(Role.INITIATOR, self._key(), self.handshake_id, self._own_id(), self.remote_id)
        if self._handshake_closed:
            raise NegotiationError(f"the peer closed {HANDSHAKE_CHANNEL_LABEL!r} before the secure handshake began")
        self._secure_done = Deferred()
        self.handshake = hs
        for msg in hs.start():
            self._peer().send(HANDSHAKE_CHANNEL_LABEL, msg)
        early, self._early_handshake = self._early_handshake, []
        for msg in early:
            self._handshake_message(msg)
        await self._within(self.settings.dc_open_timeout, self._secure_done)
        keys = hs.keys
        if keys is None:
            raise NegotiationError("the secure handshake finished without transport keys")
        for item in self.link.install(SecureChannel(keys.send_key, keys.recv_key)):
            self._deliver(item)
        self.log.info("secure transport with {peer} ready", **self._fields())

    def _handshake_message(self, data: bytes) -> None:
        hs = self.handshake
        if hs is None:
            if len(self._early_handshake) < MAX_EARLY_HANDSHAKE:
                self._early_handshake.append(data)
            return
        try:
            replies = hs.receive(data)
        except Exception as e:  # CryptoError: wrong join code, tampering...
            if self._secure_done is not None and not self._secure_done.called:
                self._secure_done.errback(NegotiationError(f"secure handshake failed: {e}"))
            return
        for msg in replies:
            self._peer().send(HANDSHAKE_CHANNEL_LABEL, msg)
        if hs.done and self._secure_done is not None and not self._secure_done.called:
            self._secure_done.callback(None)

    # -- serving -------------------------------------------------------------------------------------
    def _serve(self) -> None:
        self.link.send_text(OFFER_READY)
        self.phase = Phase.SERVING
        self._heartbeat = LoopingCall(self._send_heartbeat)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(self.settings.heartbeat_interval, now=True).addErrback(
            lambda f: self.log.failure("heartbeat loop stopped", failure=f))
        self.send_handshake()
        self.host.peer_ready(self)
        self.log.info("serving peer {peer} ({label}, {mode})", label=self.label,
                      mode="secure" if self.secure else "plain", **self._fields())

    def _send_heartbeat(self) -> None:
        if not self.serving:
            return
        try:
            self.link.send_frame(Heartbeat(seq=self.heartbeat_seq, timestamp_ms=int(self.clock.seconds() * 1000)))
            self.heartbeat_seq += 1
        except Exception as e:
            self.log.warn("heartbeat to {peer} failed: {error}", error=str(e), **self._fields())

    def send_handshake(self) -> None:
        for frame in self.sync.handshake():
            self.link.send_frame(frame)

    def flush(self) -> bool:
        """Send pending deltas; False when the channel is too backed up (try again later)."""
        if not self.serving:
            return True
        if self._peer().buffered_amount() > MAX_BUFFERED:
            return False
        for frame in self.sync.deltas():
            self.link.send_frame(frame)
        return True

    def send_extension(self, frame: Extension) -> None:
        if self.serving:
            self.link.send_frame(frame)

    def send_shutdown(self) -> None:
        if self.serving:
            self.link.send_frame(Shutdown())

    # -- inbound --------------------------------------------------------------------------------------
    def _on_rtc_message(self, label: str, data: bytes) -> None:
        try:
            if label == HANDSHAKE_CHANNEL_LABEL:
                self._handshake_message(data)
                return
            for item in self.link.receive(data):
                self._deliver(item)
        except Exception:  # a bug must not reach aiortc's event emitter
            self.log.failure("failed to handle a message from {peer}", **self._fields())

    def _deliver(self, item: Text | Frame) -> None:
        if self.phase is Phase.AWAIT_READY:
            if isinstance(item, Text) and item.text == READY and self._ready and not self._ready.called:
                self._ready.callback(None)
            return  # everything else before readiness is discarded, as upstream
        if not self.serving:
            return
        if isinstance(item, Text):
            return  # late __ready__, __keepalive__ ...: ignored
        frame = item.frame
        if isinstance(frame, Input):
            self.inputs += 1
            self.host.write_input(frame.data)
        elif isinstance(frame, Extension):
            self.host.bus.from_peer(self.remote_id, frame)
        elif isinstance(frame, Resize):
            self.resizes += 1
            self.host.peer_resize(self, frame.cols, frame.rows)
        elif isinstance(frame, ViewportCommand):
            self.send_handshake()
        elif isinstance(frame, RequestBackfill):
            for reply in self.sync.backfill(frame):
                self.link.send_frame(reply)
        else:
            self.log.debug("ignoring {frame} from {peer}", frame=type(frame).__name__, **self._fields())

    def _label_excluded(self) -> bool:
        """The secure transport is off for this peer only because of its label."""
        return (not self.secure and join_code_present(self.host.join_code)
                and not self.settings.overrides.transport and self.label not in SECURE_PEER_LABELS)

    def _warn_label_policy(self, what: str) -> None:
        """One warning per peer: its secure handshake never started because of its label."""
        if self.label_policy_warned or not self._label_excluded():
            return
        self.label_policy_warned = True
        self.log.warn(
            "peer {peer} with label {label!r} {what}: this host runs the secure handshake "
            "({channel!r}, then an encrypted 'beach') only for the labels {secure_labels} (the upstream "
            "policy, with a join code), so it opened no {channel!r} channel for this peer. A client that "
            "runs the handshake whenever it has a passphrase (the browser client) waits for that channel "
            "and times out: join with one of those labels", label=self.label, what=what,
            channel=HANDSHAKE_CHANNEL_LABEL, secure_labels=", ".join(sorted(SECURE_PEER_LABELS)),
            label_policy=True, **self._fields())

    def _on_remote_channel(self, label: str) -> None:
        if label == HANDSHAKE_CHANNEL_LABEL and not self.closed:
            self._warn_label_policy(f"opened a {label!r} channel itself")
        else:
            self.log.debug("ignoring the {label!r} channel opened by {peer}", label=label, **self._fields())

    def _on_channel_closed(self, label: str) -> None:
        """A channel other than ``beach`` closed.  The handshake channel is needed only until
        the handshake is done (the browser client closes it then; reference road §4.5)."""
        if self.closed:
            return
        if label != HANDSHAKE_CHANNEL_LABEL:
            self.log.info("peer {peer} closed its {label!r} channel", label=label, **self._fields())
            return
        hs = self.handshake
        if hs is not None and hs.done:
            self.log.info("peer {peer} closed {label!r} after the secure handshake: kept",
                          label=label, **self._fields())
            return
        self._handshake_closed = True
        done = self._secure_done
        if done is not None and not done.called:
            done.errback(NegotiationError(f"the peer closed {label!r} before the secure handshake completed"))

    def _on_rtc_lost(self, reason: str) -> None:
        if not self.closed:
            _aio.background(Deferred.fromCoroutine(self.close(reason)), "closing a lost peer", self.log)

    def on_signal(self, value: Any) -> None:
        """A relayed WebSocket signal from this peer (its trickled ICE)."""
        try:
            ice = sig.IceCandidateSignal.from_json(value)
        except sig.SignalingError:
            return
        if ice.handshake_id != self.handshake_id or self.rtc is None or self.closed:
            return
        try:
            if ice.sealed is None:
                cand = ice.plain_candidate()
            else:
                hid = self.handshake_id
                plain = open_sealed(self._key(), hid, "ice", ice_components(self.remote_id, self._own_id(), hid),
                                    ice.sealed.to_json())
                cand = sig.IceCandidate.decode(plain)
        except Exception as e:
            self.log.warn("dropping ICE from {peer}: {error}", error=str(e), **self._fields())
            return
        _aio.background(_aio.as_deferred(self.rtc.add_candidate(cand)), "adding a peer candidate", self.log)

    # -- closing ---------------------------------------------------------------------------------------
    async def close(self, reason: str) -> None:
        if self.closed:
            return
        was_serving = self.serving
        if self.phase is Phase.AWAIT_READY and not self.host.stopping:
            self._warn_label_policy(f"never became ready ({reason})")
        self.phase = Phase.CLOSED
        self.close_reason = reason
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for d in (self._ready, self._secure_done):
            if d is not None and not d.called:
                d.errback(NegotiationError(reason))
        self.host.peer_closed(self, was_serving)
        self.log.info("peer {peer} closed: {reason}", reason=reason, **self._fields())
        if self.rtc is not None:
            await _aio.as_deferred(self.rtc.close())
