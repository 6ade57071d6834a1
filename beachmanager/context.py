"""What every part of the manager is handed: configuration, reactor, clock, metrics, crash hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from . import __version__
from .config import Config
from .telemetry.crash import CrashReporter
from .telemetry.metrics import Metrics


@dataclass
class ManagerContext:
    config: Config
    reactor: Any
    clock: IReactorTime
    metrics: Metrics
    crash: CrashReporter
    started_at: float = 0.0
    version: str = __version__

    def uptime(self) -> float:
        return max(0.0, self.clock.seconds() - self.started_at)
