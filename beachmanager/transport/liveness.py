"""The manager's end of the bus heartbeat (:mod:`beachmanager.protocol.liveness`).

One :class:`LivenessKeeper` per instance: a single timer on the injected clock pings every
ready active session each *interval* and every standby session each *standby_interval*
(slower: a standby needs the host's word about the owner and its own transport's health, not
a close watch; that keeps pings from standbys at a quarter of the traffic); the harness
answers on that session's transport.  What an answer does:

* the first one tells the session that its host answers heartbeats: from then on the ready
  transport is lost after *timeout* seconds of silence (a standby: three standby intervals,
  at least *timeout*; the attach machine's ``LivenessConfirmed``), not after the 45 s traffic
  timeout kept for hosts that never answer;
* on a standby session, an answer that says the host's active manager (another instance) has
  been silent for *timeout* goes to the ``owner_silent`` listeners (the assignment service,
  which asks the store to take the host over); at most one report per host per *timeout*.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background
from ..bus.bus import BusMessage, HostBus
from ..protocol import liveness
from ..protocol.extensions import NAMESPACE, TOPIC_HEARTBEAT
from .events import Role

if TYPE_CHECKING:
    from .session import HostSession

#: namespace -> topic -> logical lane (both directions)
LIVENESS_TOPICS = {NAMESPACE: {TOPIC_HEARTBEAT: "control_ordered"}}

OwnerSilent = Callable[[str, liveness.Pong], None]


class LivenessKeeper:
    log = Logger()

    def __init__(self, clock: IReactorTime, *, instance_id: str, interval: float, timeout: float,
                 sessions: Callable[[], dict[str, HostSession]],
                 epoch_of: Callable[[str], int | None], standby_interval: float | None = None):
        self.clock = clock
        self.instance_id = instance_id
        self.interval = interval
        self.timeout = timeout
        standby_interval = standby_interval if standby_interval is not None else interval
        #: a standby session is pinged every this many ticks (spread over the ticks by host)
        self.standby_every = max(1, round(standby_interval / interval)) if interval > 0 else 1
        self.standby_timeout = max(timeout, 3 * self.standby_every * interval)
        self._sessions = sessions
        self._epoch_of = epoch_of
        self._listeners: list[OwnerSilent] = []
        self._reported: dict[str, float] = {}  # host -> when its owner was last reported silent
        self._seq = 0
        self._loop: LoopingCall | None = None
        self.sent = 0
        self.answers = 0
        self.unparsable = 0

    def on_owner_silent(self, listener: OwnerSilent) -> None:
        self._listeners.append(listener)

    def watch(self, bus: HostBus) -> None:
        """Hear the answers on one host's bus (called when its session is made)."""
        bus.subscribe(NAMESPACE, TOPIC_HEARTBEAT, self._answer)

    def start(self) -> None:
        if self.interval <= 0 or self._loop is not None:
            return
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        background(self._loop.start(self.interval, now=False), "bus heartbeat loop", self.log)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def _tick(self) -> None:
        self._seq += 1
        slot = self._seq % self.standby_every
        for host, session in list(self._sessions().items()):
            if not session.is_up:
                continue
            active = session.role is Role.ACTIVE
            if not active and self.standby_every > 1 and hash(host) % self.standby_every != slot:
                continue
            role = "active" if active else "standby"
            ping = liveness.Ping(self._seq, self.instance_id, role, self._epoch_of(host) or 0)
            if session.bus.publish(NAMESPACE, TOPIC_HEARTBEAT, ping.to_json()):
                self.sent += 1

    def _answer(self, message: BusMessage) -> None:
        if liveness.kind_of(message.payload) != liveness.PONG:
            return
        host = message.host_session_id
        try:
            pong = liveness.read_pong(message.payload)
        except liveness.LivenessError as e:
            self.unparsable += 1
            self.log.debug("dropping an unparsable heartbeat answer from {host}: {error}",
                           host=host, error=str(e))
            return
        self.answers += 1
        session = self._sessions().get(host)
        if session is None:
            return
        # idempotent: the first answer counts (a promoted standby is told the shorter timeout
        # by its next answer)
        session.watch_liveness(self.timeout if session.role is Role.ACTIVE
                               else self.standby_timeout)
        if session.role is not Role.STANDBY or pong.active in (None, self.instance_id):
            return
        if not pong.reports_silent(pong.active or "", self.timeout):
            return
        now = self.clock.seconds()
        if now - self._reported.get(host, float("-inf")) < self.timeout:
            return
        self._reported[host] = now
        for listener in list(self._listeners):
            try:
                listener(host, pong)
            except Exception:
                self.log.failure("owner-silent listener failed")

    def forget(self, host: str) -> None:
        self._reported.pop(host, None)

    def status(self) -> dict[str, object]:
        return {"interval": self.interval, "timeout": self.timeout,
                "standby_interval": self.standby_every * self.interval,
                "standby_timeout": self.standby_timeout, "sent": self.sent,
                "answers": self.answers, "unparsable": self.unparsable}


__all__ = ["LIVENESS_TOPICS", "LivenessKeeper"]
