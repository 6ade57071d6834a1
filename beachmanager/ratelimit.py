"""Token buckets: per account and per private beach on the write paths (REST and the bus), and
per client address for requests whose token fails (which cost a signature check each).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second on the injected clock;
a request takes one or is refused with the seconds until one is back (``Retry-After``).  Each
limiter keeps at most ``bound`` keys, least recently used dropped first (a key in use stays, so
an eviction hands out a fresh bucket only to a key idle longer than every other): memory is
bounded whatever the callers send.  ``rate`` 0 turns a limiter off.  The development bypass is
not limited.  Refusals count ``rate_limited_total{limit}``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from twisted.internet.interfaces import IReactorTime

LIMITS = ("account", "beach", "address")


class RateLimited(Exception):
    """Over a limit; ``retry_after`` seconds (whole, at least 1) until a token is back."""

    def __init__(self, limit: str, wait: float):
        self.limit = limit
        self.retry_after = max(1, math.ceil(wait))
        super().__init__(f"too many requests for this {limit}; retry after {self.retry_after}s")


class TokenBuckets:
    def __init__(self, clock: IReactorTime, rate: float, burst: float, bound: int = 10_000):
        if rate < 0 or burst < 1 or bound < 1:
            raise ValueError("rate must be >= 0, burst >= 1 and bound >= 1")
        self.clock, self.rate, self.burst, self.bound = clock, rate, float(burst), bound
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [tokens, at]

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: Hashable, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return self.burst
        return min(self.burst, found[0] + (now - found[1]) * self.rate)

    def wait(self, key: Hashable, cost: float = 1.0) -> float:
        """Seconds until *key* could take *cost* (0: now), taking nothing."""
        if self.rate == 0:
            return 0.0
        level = self._level(key, self.clock.seconds())
        return 0.0 if level >= cost else (cost - level) / self.rate

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take *cost* from *key*'s bucket: 0 when taken, else the seconds to wait."""
        if self.rate == 0:
            return 0.0
        now = self.clock.seconds()
        level = self._level(key, now)
        taken = level >= cost
        if taken:
            level -= cost
        self._buckets[key] = [level, now]
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.bound:
            self._buckets.popitem(last=False)
        return 0.0 if taken else (cost - level) / self.rate


class RateLimits:
    """The manager's limiters, built from the settings (``rate_limit_*``)."""

    def __init__(self, clock: IReactorTime, config: Any, metrics: Any = None):
        bound = config.rate_limit_keys
        self.account = TokenBuckets(clock, config.rate_limit_account,
                                    config.rate_limit_account_burst, bound)
        self.beach = TokenBuckets(clock, config.rate_limit_beach, config.rate_limit_beach_burst,
                                  bound)
        self.address = TokenBuckets(clock, config.rate_limit_failures,
                                    config.rate_limit_failures_burst, bound)
        self.metrics = metrics
        if metrics is not None:
            for limit in LIMITS:
                metrics.rate_limited_total.labels(limit=limit)

    def _refuse(self, limit: str, wait: float) -> RateLimited:
        if self.metrics is not None:
            self.metrics.rate_limited_total.labels(limit=limit).inc()
        return RateLimited(limit, wait)

    def write(self, principal: Any, private_beach_id: str | None) -> None:
        """A write by *principal* (in *private_beach_id*, when it names one): both buckets must
        have a token; raises :class:`RateLimited`.  The account's is taken first: a refused
        beach costs the account nothing more than its own try."""
        if principal.authority == "bypass":
            return
        account = principal.account_id or principal.subject
        wait = self.account.take(account)
        if wait:
            raise self._refuse("account", wait)
        if private_beach_id is not None:
            wait = self.beach.take(private_beach_id)
            if wait:
                raise self._refuse("beach", wait)

    def before_auth(self, address: str) -> None:
        """Refuse an address whose recent tokens failed too often, before checking another."""
        wait = self.address.wait(address)
        if wait:
            raise self._refuse("address", wait)

    def auth_failed(self, address: str) -> None:
        self.address.take(address)

    def status(self) -> dict[str, int]:
        return {f"{name}_keys": len(getattr(self, name)) for name in LIMITS}
