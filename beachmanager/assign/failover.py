"""Failover bookkeeping: what detected each failover, the logs, and how long it took.

Two signals start a failover here:

* ``membership`` -- the owner's lease (its membership heartbeat in the store) expired; the
  sweep of any instance moves its hosts (:mod:`.service`);
* ``host`` -- a host told this instance's standby session that its active manager has been
  silent past the liveness timeout (:mod:`beachmanager.protocol.liveness`); the standby took
  the host by a compare-and-set that bumps the epoch (``take_over`` in the stores).

:class:`FailoverTracker` logs ``failover_initiated`` when this instance detects one and
``failover_completed`` when it holds the host (with the old and new manager ids, host session
id, epoch, detection signal and the gap), counts ``failover_total{reason}`` and observes
``failover_seconds`` from detection to the first action delivered by the new active session.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..telemetry.logs import fields
from ..telemetry.metrics import Metrics

#: Detections remembered until their host is taken (oldest dropped first).
MAX_PENDING = 4096

NextDelivery = Callable[[str, Callable[[], None]], None]


@dataclass(frozen=True)
class Detection:
    signal: str  # "membership" | "host"
    at: float  # this instance's clock
    gap: float | None  # seconds the owner had been silent when it was detected (if known)


class FailoverTracker:
    log = Logger()

    def __init__(self, clock: IReactorTime, metrics: Metrics, instance_id: str,
                 next_delivery: NextDelivery | None = None):
        self.clock = clock
        self.metrics = metrics
        self.instance_id = instance_id
        self.next_delivery = next_delivery
        self._pending: OrderedDict[str, Detection] = OrderedDict()
        self.recent: list[dict] = []  # the last few, for /debug/assignments

    def initiated(self, host: str, old: str | None, new: str | None, signal: str,
                  gap: float | None = None, epoch: int | None = None, *,
                  quiet: bool = False) -> None:
        """A failover this instance started (it moved the host, to itself or another);
        *quiet*: recorded but not logged (the caller logged a summary)."""
        now = self.clock.seconds()
        if new == self.instance_id:
            self._pending[host] = Detection(signal, now, gap)
            self._pending.move_to_end(host)
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)
        if quiet:
            return
        self.log.warn("failover_initiated: {host_session_id} from {old_manager_instance_id} to "
                      "{new_manager_instance_id} (detected by {detection_signal}{gap_text})",
                      old_manager_instance_id=old, new_manager_instance_id=new,
                      detection_signal=signal, gap_seconds=gap, epoch=epoch,
                      gap_text=f", silent {gap:.2f}s" if gap is not None else "",
                      **fields(host_session_id=host, manager_instance_id=self.instance_id))

    def completed(self, host: str, old: str | None, promoted: bool, epoch: int) -> None:
        """This instance holds *host* after a failover (promoted a standby, or attaches)."""
        now = self.clock.seconds()
        detection = self._pending.pop(host, None) or Detection("membership", now, None)
        how = "promoted" if promoted else "attached"
        self.metrics.failover_total.labels(reason=how).inc()
        self.log.info("failover_completed: {host_session_id} taken over from "
                      "{old_manager_instance_id} by {new_manager_instance_id} at epoch {epoch} "
                      "({how}; detected by {detection_signal})", how=how,
                      old_manager_instance_id=old, new_manager_instance_id=self.instance_id,
                      epoch=epoch, detection_signal=detection.signal,
                      gap_seconds=detection.gap,
                      **fields(host_session_id=host, manager_instance_id=self.instance_id))
        entry = {"host_session_id": host, "from": old, "to": self.instance_id, "how": how,
                 "epoch": epoch, "detection_signal": detection.signal, "gap": detection.gap,
                 "detected_at": detection.at, "first_delivery_seconds": None}
        self.recent = [*self.recent[-19:], entry]
        if self.next_delivery is None:
            return

        def delivered() -> None:
            seconds = self.clock.seconds() - detection.at
            entry["first_delivery_seconds"] = round(seconds, 4)
            self.metrics.failover_seconds.observe(seconds)

        self.next_delivery(host, delivered)


__all__ = ["Detection", "FailoverTracker"]
