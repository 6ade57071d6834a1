"""Devstack figures: in-process hosts behind one Road, joined by test answerers over WebRTC.

    .venv/bin/python bench/devstack.py [--hosts 10] [--label beach-manager] [--echoes 50] [--lines 20000]

Prints: time to start the hosts; time for one answerer per host, all at once, to go from
``attach`` to ``__offer_ready__`` (p50/p95/max); keystroke echo latency on one peer (an
``Input`` frame to the ``Delta`` that shows it, p50/p95); and bulk output (``seq 1 N`` in the
shell until the last number arrives in a ``Delta``), in lines per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beachmanager import _reactor

_reactor.install()

from twisted.internet import defer, reactor  # noqa: E402

from beachmanager.cache.mirror import TerminalMirror  # noqa: E402
from beachmanager.devstack.host.host import start_hosts  # noqa: E402
from beachmanager.devstack.road.service import start_road  # noqa: E402
from beachmanager.protocol import frames  # noqa: E402
from tests.support.answerer import TestAnswerer  # noqa: E402

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PS1": "$ ", "HOME": "/tmp", "TERM": "xterm"}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def timed_join(road, host, label):
    start = time.perf_counter()
    peer = await TestAnswerer.join(road.url, host.session_id, host.join_code, label=label, timeout=60)
    await peer.wait_text("__offer_ready__", timeout=30)
    return peer, time.perf_counter() - start


async def main(args) -> None:
    road = await start_road()
    t0 = time.perf_counter()
    hosts = await start_hosts(road.url, args.hosts, command=("/bin/sh",), env=ENV)
    print(f"started {args.hosts} hosts in {time.perf_counter() - t0:.2f} s")
    peers = []
    try:
        results = await defer.gatherResults([defer.ensureDeferred(timed_join(road, h, args.label)) for h in hosts])
        peers = [p for p, _ in results]
        joins = [t * 1000 for _, t in results]
        print(f"join to __offer_ready__, {args.hosts} at once ({args.label}): p50 {pct(joins, 50):.0f} ms, "
              f"p95 {pct(joins, 95):.0f} ms, max {max(joins):.0f} ms")
        peer = peers[0]
        await peer.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == 2)
        mirror = TerminalMirror(reactor.seconds)
        for item in peer.received:
            if not isinstance(item, str):
                mirror.apply(item)

        def shows(marker):
            def pred(frame):  # called once per new frame, in arrival order
                mirror.apply(frame)
                return any(marker in line for line in mirror.viewport())
            return pred

        echoes = []
        for i in range(args.echoes):
            since = len(peer.received)
            marker = f"k{i:04d}"
            start = time.perf_counter()
            peer.send_frame(frames.Input(seq=i + 1, data=f": {marker}".encode()))
            await peer.wait_for(shows(marker), since=since)
            echoes.append((time.perf_counter() - start) * 1000)
            peer.send_frame(frames.Input(seq=10_000 + i, data=b"\x15"))  # clear the line
        print(f"keystroke echo (Input -> Delta) over {args.echoes}: p50 {statistics.median(echoes):.1f} ms, "
              f"p95 {pct(echoes, 95):.1f} ms")
        since = len(peer.received)
        start = time.perf_counter()
        peer.send_frame(frames.Input(seq=99_999, data=f"clear; seq 1 {args.lines}\r".encode()))
        await peer.wait_for(shows(str(args.lines)), since=since, timeout=300)
        took = time.perf_counter() - start
        print(f"bulk output: {args.lines} lines in {took:.2f} s = {args.lines / took:,.0f} lines/s "
              f"({len(peer.frames(frames.Delta))} Delta frames)")
    finally:
        for p in peers:
            await p.close()
        for h in hosts:
            await h.stop()
        await road.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--label", default="beach-manager")
    parser.add_argument("--echoes", type=int, default=50)
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    failures = []

    def run():
        d = defer.ensureDeferred(main(args))
        d.addErrback(lambda f: (failures.append(f), f.printTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    sys.exit(1 if failures else 0)
