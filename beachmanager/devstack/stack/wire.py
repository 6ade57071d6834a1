"""An impaired wire: a userspace stand-in for ``tc netem`` between two TAP devices.

Why: this kernel has no ``netem`` qdisc (nor tc classifiers and actions, nftables or dummy
devices), yet the smoke stack wants one service's link to be slow and lossy.  Namespaces,
veth pairs, bridges and TAP devices do work, so the impairment moves into a process.

How: the caller makes two persistent taps (:func:`make_tap`, or ``ip -n NS tuntap add mode
tap name DEV``) and gives them addresses or bridge ports and ``up``.  :class:`Wire` attaches
to each by entering its namespace (``setns``), opening ``/dev/net/tun`` there and returning
to its own namespace; the descriptors keep working.  It then copies every Ethernet frame read
from one tap to the other, each direction held back by a :class:`Schedule`: a delay with
optional uniform jitter (frames never overtake one another), a seeded random loss, and a
bound on the frames in flight (beyond it frames are dropped, as by a full queue).  Both
directions are impaired alike, so ``delay=50ms`` makes a 100 ms round trip.

A tap may be moved to another namespace after it is made (``ip -n X link set DEV netns Y``)
and attached to there: the tests check this.

    python -m beachmanager.devstack.stack.wire --a NS_A:DEV_A --b NS_B:DEV_B \\
        --impair "delay=50ms,loss=1%" [--stats-file PATH]

``NS`` ``-`` is the wire's own namespace.  Stats are JSON, rewritten every second and on exit;
SIGTERM and SIGINT stop the wire cleanly.  Standard library only; needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import json
import math
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
READ_BATCH = 64  # frames read from one tap before the other gets its turn
FRAME_MAX = 65536


@dataclass(frozen=True)
class Impairment:
    delay_ms: float = 0
    jitter_ms: float = 0
    loss: float = 0.0  # a fraction of the frames, each direction
    seed: int = 0
    max_queue: int = 4096  # frames in flight per direction

    def __post_init__(self) -> None:
        for name in ("delay_ms", "jitter_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (0 <= self.loss < 1):
            raise ValueError(f"loss must be in [0, 1) (a fraction: 1% is 0.01), got {self.loss!r}")
        if self.max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {self.max_queue!r}")

    @classmethod
    def parse(cls, text: str) -> Impairment:
        """``"delay=50ms,jitter=5ms,loss=1%,seed=7,max_queue=1000"``; any part may be left out.

        Durations are ms unless they say ``us`` or ``s``; loss is a fraction or a percentage.
        """
        values: dict[str, Any] = {}
        for part in filter(None, re.split(r"[,\s]+", text.strip())):
            key, sep, raw = part.partition("=")
            if not sep or not raw:
                raise ValueError(f"impairment part {part!r} is not key=value")
            if key in values or f"{key}_ms" in values:
                raise ValueError(f"impairment names {key!r} twice")
            try:
                if key in ("delay", "jitter"):
                    values[f"{key}_ms"] = _milliseconds(raw)
                elif key == "loss":
                    values["loss"] = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
                elif key in ("seed", "max_queue"):
                    values[key] = int(raw)
                else:
                    raise KeyError(key)
            except KeyError:
                raise ValueError(f"unknown impairment {key!r} (delay, jitter, loss, seed, "
                                 "max_queue)") from None
            except ValueError:
                raise ValueError(f"impairment {key}: cannot read {raw!r}") from None
        return cls(**values)

    def describe(self) -> str:
        jitter = f", jitter {self.jitter_ms:g} ms" if self.jitter_ms else ""
        percent = self.loss * 100
        shown = f"{percent:.1f}" if abs(round(percent, 1) - percent) < 1e-9 else f"{percent:.4g}"
        return f"delay {self.delay_ms:g} ms{jitter}, loss {shown} %"


def _milliseconds(raw: str) -> float:
    for suffix, scale in (("ms", 1.0), ("us", 0.001), ("s", 1000.0)):
        if raw.endswith(suffix):
            return float(raw[: -len(suffix)]) * scale
    return float(raw)


@dataclass
class Counters:
    forwarded: int = 0  # released after their delay
    bytes: int = 0  # of the frames forwarded
    dropped_loss: int = 0
    dropped_queue: int = 0
    write_errors: int = 0  # forwarded, but the far tap refused them


class Schedule:
    """One direction's frames in flight, without I/O: the caller passes the clock in.

    Random draws depend only on how many frames were pushed (loss first, then jitter), so a
    seed gives the same decisions whatever the timing.
    """

    def __init__(self, impairment: Impairment, rng: random.Random | None = None) -> None:
        self.impairment = impairment
        self.counters = Counters()
        self._rng = rng if rng is not None else random.Random(impairment.seed)
        self._queue: deque[tuple[float, bytes]] = deque()  # due times never decrease

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, frame: bytes, now: float) -> float | None:
        """Take *frame* read at *now*: the time it is due out, or None when it is dropped."""
        imp = self.impairment
        if imp.loss and self._rng.random() < imp.loss:
            self.counters.dropped_loss += 1
            return None
        delay_ms = imp.delay_ms
        if imp.jitter_ms:
            delay_ms = max(0.0, delay_ms + self._rng.uniform(-imp.jitter_ms, imp.jitter_ms))
        if len(self._queue) >= imp.max_queue:
            self.counters.dropped_queue += 1
            return None
        due = now + delay_ms / 1000
        if self._queue:
            due = max(due, self._queue[-1][0])  # never overtake the frame ahead
        self._queue.append((due, frame))
        return due

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[bytes]:
        """The frames due by *now*, oldest first, counted as forwarded."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            frame = self._queue.popleft()[1]
            out.append(frame)
            self.counters.forwarded += 1
            self.counters.bytes += len(frame)
        return out


class End(NamedTuple):
    netns: str | None  # None: the wire's own namespace
    device: str

    @classmethod
    def parse(cls, text: str) -> End:
        """``NS:DEV``, ``-:DEV`` for the current namespace."""
        netns, sep, device = text.rpartition(":")
        if not sep or not netns or not device:
            raise ValueError(f"a wire end is NS:DEV (NS - for this namespace), got {text!r}")
        return cls(None if netns == "-" else netns, device)

    def __str__(self) -> str:
        return f"{self.netns or '-'}:{self.device}"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def make_tap(netns: str | None, name: str, *, address: str | None = None,
             up: bool = True) -> None:
    """A persistent tap *name* in *netns* (None: here), with *address* (CIDR) if given."""
    scope = ("-n", netns) if netns else ()
    _ip(*scope, "tuntap", "add", "mode", "tap", "name", name)
    if address:
        _ip(*scope, "addr", "add", address, "dev", name)
    if up:
        _ip(*scope, "link", "set", name, "up")


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tap(end: End) -> int:
    """A non-blocking descriptor attached to the tap *end*; this process stays where it was.

    /dev/net/tun looks the device up in the namespace it was opened in, so both the open
    and TUNSETIFF happen inside *end*'s namespace.
    """
    if end.netns is None:
        return _attach(end.device)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        try:
            target = os.open(f"/var/run/netns/{end.netns}", os.O_RDONLY)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, f"no network namespace {end.netns!r}") from None
        try:
            _setns(target)
            try:
                return _attach(end.device)
            finally:
                _setns(home)
        finally:
            os.close(target)
    finally:
        os.close(home)


def _attach(device: str) -> int:
    try:  # TUNSETIFF would make a new, short-lived tap for a name that is not there
        socket.if_nametoindex(device)  # asks the namespace this thread is in now
    except OSError:
        raise OSError(errno.ENODEV, f"no device {device!r} (make the tap first: "
                      f"ip [-n NS] tuntap add mode tap name {device})") from None
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        hint = {errno.EINVAL: " (not a tap?)", errno.EBUSY: " (another wire holds it?)"}
        raise OSError(exc.errno, f"cannot attach to tap {device!r}: {exc.strerror}"
                      f"{hint.get(exc.errno or 0, '')}") from None
    return fd


class Wire:
    """Two taps joined through one :class:`Schedule` per direction (``run`` until ``stop``)."""

    def __init__(self, a: End, b: End, impairment: Impairment, *,
                 stats_file: str | None = None, stats_every: float = 1.0) -> None:
        self.a, self.b, self.impairment = a, b, impairment
        self.a_to_b = Schedule(impairment, random.Random(impairment.seed))
        self.b_to_a = Schedule(impairment, random.Random(impairment.seed + 1))
        self.stats_file, self.stats_every = stats_file, stats_every
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._fd_a = self._fd_b = -1
        try:
            self._fd_a = open_tap(a)
            self._fd_b = open_tap(b)
        except BaseException:
            self.close()
            raise

    def stop(self) -> None:
        """Make ``run`` return soon; safe from a signal handler or another thread."""
        self._stopping = True
        with contextlib.suppress(OSError):  # a wake-up is pending already, or the wire closed
            os.write(self._wake_w, b"x")

    def run(self) -> None:
        directions = ((self._fd_a, self.a_to_b, self._fd_b), (self._fd_b, self.b_to_a, self._fd_a))
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        for source, schedule, _ in directions:
            selector.register(source, selectors.EVENT_READ, (source, schedule))
        next_stats = time.monotonic() + self.stats_every
        try:
            while not self._stopping:
                deadlines = [due for due in (self.a_to_b.next_due(), self.b_to_a.next_due())
                             if due is not None]
                if self.stats_file:
                    deadlines.append(next_stats)
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for key, _ in selector.select(timeout):
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._read(*key.data)
                now = time.monotonic()
                for _, schedule, sink in directions:
                    for frame in schedule.pop_due(now):
                        self._write(sink, frame, schedule.counters)
                if self.stats_file and now >= next_stats:
                    self.write_stats()
                    next_stats = now + self.stats_every
        finally:
            selector.close()
            if self.stats_file:
                self.write_stats()

    def _read(self, fd: int, schedule: Schedule) -> None:
        for _ in range(READ_BATCH):
            try:
                frame = os.read(fd, FRAME_MAX)
            except BlockingIOError:
                return
            schedule.push(frame, time.monotonic())

    @staticmethod
    def _write(fd: int, frame: bytes, counters: Counters) -> None:
        try:
            os.write(fd, frame)
        except OSError:  # the far tap is down or full: the frame is lost, as on a wire
            counters.write_errors += 1

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def stats(self) -> dict[str, Any]:
        return {
            "a": str(self.a), "b": str(self.b), "impairment": asdict(self.impairment),
            "a_to_b": asdict(self.a_to_b.counters) | {"queued": len(self.a_to_b)},
            "b_to_a": asdict(self.b_to_a.counters) | {"queued": len(self.b_to_a)},
        }

    def write_stats(self) -> None:
        assert self.stats_file is not None
        partial = f"{self.stats_file}.part"
        with open(partial, "w") as out:
            json.dump(self.stats(), out, indent=1)
        os.replace(partial, self.stats_file)  # readers never see half a file

    def close(self) -> None:
        for fd in (self._fd_a, self._fd_b, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd_a = self._fd_b = self._wake_r = self._wake_w = -1


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:  # argparse would hide the reason
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beachmanager.devstack.stack.wire",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--a", type=_argument(End.parse), required=True, metavar="NS:DEV")
    parser.add_argument("--b", type=_argument(End.parse), required=True, metavar="NS:DEV")
    parser.add_argument("--impair", type=_argument(Impairment.parse), default=Impairment(),
                        metavar="delay=50ms,jitter=0,loss=1%,seed=0,max_queue=4096")
    parser.add_argument("--stats-file", metavar="PATH")
    joined: list[str] = []
    for arg in sys.argv[1:] if argv is None else argv:
        if joined and joined[-1] in ("--a", "--b") and arg.startswith("-:"):
            joined[-1] += f"={arg}"  # argparse would take "-:DEV" for an option
        else:
            joined.append(arg)
    args = parser.parse_args(joined)
    try:
        wire = Wire(args.a, args.b, args.impair, stats_file=args.stats_file)
    except OSError as exc:
        print(f"wire: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: wire.stop())
    print(f"wire: {wire.a} <-> {wire.b}, {wire.impairment.describe()}", flush=True)
    try:
        wire.run()
    finally:
        wire.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
