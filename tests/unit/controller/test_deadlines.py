"""One timer for many waits: timeouts within [timeout, timeout + resolution], nothing kept
for answered or already-fired waits."""

import pytest
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock

from beachmanager.controller.deadlines import DeadlineExceeded, Deadlines


def outcome(d):
    out = []
    d.addBoth(out.append)
    return out


def test_waits_time_out_on_one_sweep_and_answered_ones_leave_nothing():
    clock = Clock()
    deadlines = Deadlines(clock, resolution=0.25)
    deadlines.start()
    slow, quick = Deferred(), Deferred()
    got_slow = outcome(ensureDeferred(deadlines.wait(slow, 1.0)))
    got_quick = outcome(ensureDeferred(deadlines.wait(quick, 1.0)))
    assert len(deadlines) == 2 and len(clock.getDelayedCalls()) == 1  # one timer for both
    quick.callback("answer")
    assert got_quick == ["answer"] and len(deadlines) == 1
    clock.advance(0.75)
    assert got_slow == []
    clock.advance(0.25)
    assert got_slow and got_slow[0].check(DeadlineExceeded) and len(deadlines) == 0
    assert outcome(ensureDeferred(deadlines.wait(succeed(7), 1.0))) == [7] and len(deadlines) == 0
    deadlines.stop()
    assert clock.getDelayedCalls() == []


def test_a_cancel_from_elsewhere_stays_a_cancel():
    clock = Clock()
    deadlines = Deadlines(clock)
    deadlines.start()
    d = Deferred()
    got = outcome(ensureDeferred(deadlines.wait(d, 5.0)))
    d.cancel()
    assert got[0].check(CancelledError) and len(deadlines) == 0
    deadlines.stop()


def test_a_failure_passes_through():
    clock = Clock()
    deadlines = Deadlines(clock)
    d = Deferred()
    got = outcome(ensureDeferred(deadlines.wait(d, 5.0)))
    d.errback(ValueError("boom"))
    assert got[0].check(ValueError)
    with pytest.raises(ValueError):
        got[0].raiseException()
