"""Event-loop lag: how late the reactor runs a periodic timer, observed into a histogram."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..service import ReadyService

WARN_LAG_SECONDS = 1.0


class LoopLagMonitor(ReadyService):
    log = Logger()
    critical = False

    def __init__(self, clock: IReactorTime, histogram, interval: float = 1.0):
        super().__init__("loop-lag", clock)
        self.histogram = histogram
        self.interval = interval
        self._expected: float | None = None
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self.last_lag = 0.0

    def _tick(self) -> None:
        try:
            now = self.clock.seconds()
            if self._expected is not None:
                self.last_lag = max(0.0, now - self._expected)
                self.histogram.observe(self.last_lag)
                if self.last_lag > WARN_LAG_SECONDS:
                    self.log.warn("reactor ran {lag:.2f}s late", lag=self.last_lag)
            self._expected = now + self.interval
        except Exception:  # a periodic body must not kill its loop
            self.log.failure("loop lag tick failed")

    def start(self):
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("loop lag monitor stopped", failure=f))

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        self._expected = None

    def status(self):
        return {**super().status(), "lag_seconds": round(self.last_lag, 4)}
