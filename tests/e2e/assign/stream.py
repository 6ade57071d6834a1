"""An action stream at 10/s to one host, and the exactly-once check over its effects.

Each action appends ``TAG HOST_NANOS`` to a file in the host's shell, so a test can count what
was lost or applied twice and find the longest stretch without an effect.
"""

from __future__ import annotations

import threading
from pathlib import Path

from .cluster import http, wait_for

RATE = 10.0  # actions per second, as the failover scenarios have them


class Stream:
    """Posts one action every 1/RATE s to *via* (any instance enqueues), in a thread; each
    action appends ``TAG HOST_NANOS`` to *out* in the host's shell."""

    def __init__(self, via, host: str, token: str, out: Path):
        self.via, self.host, self.token, self.out = via, host, token, out
        self.posted: list[str] = []
        self.refused: list[tuple[str, int, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            tag = f"P{n:04d}"
            action = {"id": tag, "action_type": "terminal_write",
                      "payload": {"bytes": f"echo {tag} $(date +%s%N) >> {self.out}\r"}}
            for _ in range(50):  # a refused action is sent again, as a client would
                status, body, _ = http("POST", f"{self.via.url}/sessions/{self.host}/actions",
                                       {"controller_token": self.token, "actions": [action]})
                if status == 200:
                    self.posted.append(tag)
                    break
                # during the hand-over the API says the transport is down: retry soon
                self.refused.append((tag, status, body.get("error_code", body)))
                self._stop.wait(0.05)
            n += 1
            self._stop.wait(1 / RATE)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def applied(self) -> list[tuple[str, float]]:
        out = []
        text = self.out.read_text() if self.out.exists() else ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out.append((parts[0], int(parts[1]) / 1e9))
        return out


def all_acked(via, host: str, token: str, ids) -> bool:
    """Whether every action *ids* is finally acked (asked of *via*; a host owned elsewhere is
    answered by its owner).  An acked action is never delivered again: once all are, no late
    duplicate can come."""
    for action_id in ids:
        status, view, _ = http("GET", f"{via.url}/sessions/{host}/actions/{action_id}"
                                      f"?controller_token={token}")
        if status != 200 or view.get("status") != "acked":
            return False
    return True


def wait_effects_after(stream: Stream, since: float, count: int, what: str) -> None:
    """Wait for *count* effects (host clock) later than *since* (wall clock)."""
    wait_for(what, lambda: sum(1 for _, t in stream.applied() if t > since) >= count, 30,
             step=0.2)


def check_once(stream: Stream) -> float:
    """Every accepted action applied exactly once; returns the longest gap between effects."""
    wait_for("every accepted action applied",
             lambda: {t for t, _ in stream.applied()} >= set(stream.posted), 60, step=0.5)
    wait_for("every accepted action acked", lambda: all_acked(
        stream.via, stream.host, stream.token, stream.posted), 30, step=0.5)
    applied = stream.applied()
    tags = [t for t, _ in applied]
    doubled = sorted({t for t in tags if tags.count(t) > 1})
    lost = sorted(set(stream.posted) - set(tags))
    assert not lost and not doubled, f"lost {lost}, applied twice {doubled}"
    # what was refused was refused clearly (the owner's transport was down), never silently
    assert all(status == 409 and "child_offline" in str(why) for _, status, why in stream.refused), \
        stream.refused
    times = sorted(t for _, t in applied)
    return max(b - a for a, b in zip(times, times[1:], strict=False))
