"""Crypto figures: Argon2id session-key derivation and encrypted-channel throughput.

    .venv/bin/python bench/crypto.py [--rounds 10] [--seconds 2]

Prints the median (and min/max) of ``--rounds`` session-key derivations, then seal and open
throughput of the encrypted ``beach`` channel for 1 KiB and 14 KiB messages (14 KiB is the
framing chunk size, so it is the largest encrypted message on the wire), and one Noise XX
handshake with derivation and challenge frames.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beachmanager.protocol import crypto

HSID = "8b0f6f0e-3c1a-4a53-9a43-2f2a0b7c9d10"


def session_key_times(rounds: int) -> list[float]:
    out = []
    for i in range(rounds):
        start = time.perf_counter()
        crypto.derive_session_key("SMOKEP", f"{HSID[:-2]}{i:02d}")
        out.append(time.perf_counter() - start)
    return out


def rate(fn: Callable[[], object], seconds: float) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(64):
            fn()
        n += 64
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start


def channel_throughput(size: int, seconds: float) -> tuple[float, float, float, float]:
    key_ab, key_ba = os.urandom(32), os.urandom(32)
    sender = crypto.SecureChannel(key_ab, key_ba)
    payload = os.urandom(size)
    n, elapsed = rate(lambda: sender.seal(payload), seconds)
    seal_msgs = n / elapsed
    sender = crypto.SecureChannel(key_ab, key_ba)
    frames = [sender.seal(payload) for _ in range(4096)]
    receiver = crypto.SecureChannel(key_ba, key_ab)
    it = iter(frames)

    def open_next() -> None:
        nonlocal it, receiver
        try:
            frame = next(it)
        except StopIteration:  # start again with a fresh receiver (counters from 0)
            receiver = crypto.SecureChannel(key_ba, key_ab)
            it = iter(frames)
            frame = next(it)
        receiver.open(frame)

    n, elapsed = rate(open_next, seconds)
    open_msgs = n / elapsed
    return seal_msgs, seal_msgs * size / 2**20, open_msgs, open_msgs * size / 2**20


def handshake_time(rounds: int = 50) -> float:
    psk = os.urandom(32)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        host = crypto.SecureHandshake("initiator", psk, "hid", "host", "mgr")
        mgr = crypto.SecureHandshake("responder", psk, "hid", "mgr", "host")
        to_mgr = host.start()
        to_host: list[bytes] = []
        while to_mgr or to_host:
            nxt_host = [o for m in to_mgr for o in mgr.receive(m)]
            nxt_mgr = [o for m in to_host for o in host.receive(m)]
            to_host, to_mgr = nxt_host, nxt_mgr
        assert host.done and mgr.done
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    times = session_key_times(args.rounds)
    print(f"session key (Argon2id t=1 m=32MiB p=1), {args.rounds} rounds: "
          f"median {statistics.median(times) * 1e3:.1f} ms "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")
    for size in (1024, 14 * 1024):
        seal_msgs, seal_mib, open_msgs, open_mib = channel_throughput(size, args.seconds)
        print(f"encrypted channel {size // 1024:>2} KiB: seal {seal_msgs:>9,.0f} msg/s "
              f"({seal_mib:,.0f} MiB/s), open {open_msgs:>9,.0f} msg/s ({open_mib:,.0f} MiB/s)")
    print(f"Noise XX + transport keys + challenge, both sides: "
          f"median {handshake_time() * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
