"""Load shedding: refuse only a standing backlog over the rate-based limit (fake clock)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from beachmanager.controller.admission import Admission


class Engine:
    def __init__(self):
        self.held = 0
        self.finished = 0


def make(**kw):
    clock, engine = Clock(), Engine()
    return clock, engine, Admission(clock, lambda: engine.held, lambda: engine.finished, **kw)


def stand(clock, engine, adm, held: int, seconds: float, rate: float, step: float = 0.05):
    """Keep *held* in progress for *seconds*, finishing *rate* per second."""
    for _ in range(int(seconds / step)):
        clock.advance(step)
        engine.finished += int(rate * step)
        engine.held = held
        adm.check(0)


def test_a_burst_over_the_limit_is_admitted_a_standing_backlog_is_not():
    clock, engine, adm = make(floor=100, target=0.25, window=0.5)
    stand(clock, engine, adm, 20, 1.0, rate=400)  # quiet: limit is the floor
    engine.held = 150  # a burst: the last window's smallest backlog was 20
    assert adm.check(10) is None
    stand(clock, engine, adm, 150, 1.1, rate=400)  # it stays: a standing queue
    refusal = adm.check(10)
    assert refusal is not None and refusal.limit == 100 and refusal.backlog == 150
    assert refusal.retry_after_seconds == 1


def test_the_limit_grows_with_the_rate_the_instance_finishes_at():
    clock, engine, adm = make(floor=10, target=0.5, window=0.5)
    stand(clock, engine, adm, 5000, 3.0, rate=2000)
    assert adm.rate == pytest.approx(2000, rel=0.05)
    assert adm.limit() == pytest.approx(1000, rel=0.05)  # half a second at 2,000/s
    assert adm.check(10) is not None  # 5,000 standing
    stand(clock, engine, adm, 900, 1.1, rate=2000)
    assert adm.check(10) is None  # the backlog fell under the limit: admitted again


def test_retry_after_is_the_time_the_excess_takes_to_clear():
    clock, engine, adm = make(floor=10, target=0.1, window=0.5)
    stand(clock, engine, adm, 410, 2.0, rate=100)
    refusal = adm.check(10)
    assert refusal is not None
    assert refusal.retry_after_seconds == 5  # 410 + 10 over a limit of 10 at 100/s: 4.1 s, up


def test_an_idle_instance_admits_a_request_larger_than_its_limit():
    _, engine, adm = make(floor=10)
    assert adm.check(50) is None  # nothing held: one big request must not wait forever


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        make(target=0)
    with pytest.raises(ValueError):
        make(floor=0)
