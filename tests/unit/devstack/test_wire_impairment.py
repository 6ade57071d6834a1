"""The impaired wire's pure parts: reading an impairment, and one direction's schedule."""

from __future__ import annotations

import random

import pytest

from beachmanager.devstack.stack.wire import End, Impairment, Schedule, main


@pytest.mark.parametrize("text, expected", [
    ("delay=50ms,loss=1%", Impairment(delay_ms=50, loss=0.01)),
    ("delay=50,jitter=5,loss=0.01", Impairment(delay_ms=50, jitter_ms=5, loss=0.01)),
    ("delay=0.05s jitter=500us", Impairment(delay_ms=50, jitter_ms=0.5)),
    ("loss=10%,seed=7,max_queue=16", Impairment(loss=0.1, seed=7, max_queue=16)),
    ("", Impairment()),
])
def test_parse_reads_netem_like_text(text, expected):
    assert Impairment.parse(text) == expected


@pytest.mark.parametrize("text, message", [
    ("loss=100%", r"loss must be in \[0, 1\)"),
    ("loss=1.5", r"loss must be in \[0, 1\)"),
    ("loss=-0.1", r"loss must be in \[0, 1\)"),
    ("delay=-5ms", r"delay_ms must be a finite number >= 0"),
    ("jitter=-1", r"jitter_ms must be a finite number >= 0"),
    ("delay=inf", r"delay_ms must be a finite number >= 0"),
    ("max_queue=0", r"max_queue must be >= 1"),
    ("delay=fast", r"impairment delay: cannot read 'fast'"),
    ("rate=1mbit", r"unknown impairment 'rate'"),
    ("delay", r"is not key=value"),
    ("delay=5,delay=6", r"names 'delay' twice"),
])
def test_parse_refuses_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        Impairment.parse(text)


def test_describe_is_the_start_line_wording():
    assert Impairment.parse("delay=50ms,loss=1%").describe() == "delay 50 ms, loss 1.0 %"
    assert Impairment(delay_ms=2.5, jitter_ms=1, loss=0.0005).describe() == \
        "delay 2.5 ms, jitter 1 ms, loss 0.05 %"


def test_end_parse():
    assert End.parse("bmtx:eth0") == End("bmtx", "eth0")
    assert End.parse("-:tap0") == End(None, "tap0")
    assert str(End(None, "tap0")) == "-:tap0"
    with pytest.raises(ValueError, match="NS:DEV"):
        End.parse("eth0")


def test_frames_wait_their_delay_and_leave_in_order():
    s = Schedule(Impairment(delay_ms=50))
    assert s.push(b"one", now=10.0) == pytest.approx(10.05)
    assert s.push(b"two", now=10.01) == pytest.approx(10.06)
    assert s.pop_due(10.049) == []
    assert s.next_due() == pytest.approx(10.05)
    assert s.pop_due(10.07) == [b"one", b"two"]
    assert (s.counters.forwarded, s.counters.bytes, len(s)) == (2, 6, 0)
    assert s.next_due() is None


def test_jitter_never_reorders():
    s = Schedule(Impairment(delay_ms=10, jitter_ms=10, seed=3))
    dues = [s.push(i.to_bytes(2, "big"), now=i * 0.001) for i in range(500)]
    assert dues == sorted(dues)
    assert len(set(dues)) > 100  # the jitter is there, just held to the order
    assert all(d >= i * 0.001 for i, d in enumerate(dues))  # none early
    out = s.pop_due(10.0)
    assert [int.from_bytes(f, "big") for f in out] == list(range(500))


def test_loss_is_seeded_and_about_the_rate():
    def kept(seed):
        s = Schedule(Impairment(loss=0.1, seed=seed, max_queue=10_000))
        return [s.push(b"f", 0.0) is not None for _ in range(10_000)], s.counters

    first, counters = kept(seed=42)
    assert kept(seed=42)[0] == first  # the same seed, the same frames lost
    assert kept(seed=43)[0] != first
    assert counters.dropped_loss == first.count(False)
    assert 0.08 < counters.dropped_loss / 10_000 < 0.12


def test_an_explicit_rng_is_used():
    a = Schedule(Impairment(loss=0.5), random.Random(1))
    b = Schedule(Impairment(loss=0.5), random.Random(1))
    assert [a.push(b"x", 0) for _ in range(50)] == [b.push(b"x", 0) for _ in range(50)]


def test_a_full_queue_drops_and_counts():
    s = Schedule(Impairment(delay_ms=100, max_queue=3))
    assert [s.push(b"f", 0.0) is not None for _ in range(5)] == [True] * 3 + [False] * 2
    assert (s.counters.dropped_queue, len(s)) == (2, 3)
    s.pop_due(1.0)
    assert s.push(b"f", 1.0) is not None  # room again once frames have left


def test_loss_draws_do_not_depend_on_the_queue():
    """A full queue must not shift later loss decisions (the draw comes first)."""
    roomy = Schedule(Impairment(delay_ms=1, loss=0.3, seed=5))
    tight = Schedule(Impairment(delay_ms=1, loss=0.3, seed=5, max_queue=2))
    for _ in range(100):
        roomy.push(b"f", 0.0)
        tight.push(b"f", 0.0)
    assert roomy.counters.dropped_loss == tight.counters.dropped_loss
    assert tight.counters.dropped_queue == 100 - tight.counters.dropped_loss - 2


def test_cli_takes_dash_for_this_namespace_and_names_a_missing_tap(capsys):
    assert main(["--a", "-:bmtnotap0", "--b", "-:bmtnotap1", "--impair", ""]) == 1
    assert "no device 'bmtnotap0'" in capsys.readouterr().err
