#!/usr/bin/env python3
"""A fair rig for the speed benchmarks: pinned cores, and the floor of this stack.

* **Pinning.**  On a machine with two or more cores the manager runs alone on one
  (:data:`MANAGER_CPU`) and everything that loads it (the host farm, the client, Road) on
  another (:data:`LOAD_CPU`), through ``taskset`` for child processes (all their threads
  inherit it) and :func:`pin_self` for the benchmark's own process.  Then the manager's CPU
  per action is its own, and a saturated farm or client shows as such instead of as a slow
  manager.
* **The floor.**  :func:`echo_floor` measures a bare aiortc data channel between two
  processes, pinned the same way: the offerer (load core) sends messages of a given size at
  a given rate, the answerer (manager core) echoes each one.  The answerer's CPU per message
  (one receive and one send, no Twisted, no bus, no HTTP) is what a manager's action (one bus
  send, one ack received) cannot go below on this stack; benchmarks print their figures as
  ratios of it.

``python bench/rig.py --rate 1000 --size 256 --seconds 5`` prints the floor alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


CORES = _cores()
#: The manager's core, and the core of everything that loads it (None: one core only).
MANAGER_CPU: int | None = CORES[0] if len(CORES) >= 2 else None
LOAD_CPU: int | None = CORES[1] if len(CORES) >= 2 else None


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """*argv* run on *cpu* (unchanged when there is nothing to pin to, or no taskset)."""
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def pin_self(cpu: int | None) -> None:
    """This process on *cpu* (its later threads too)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def describe() -> dict:
    return {"cores": len(CORES), "manager_cpu": MANAGER_CPU, "load_cpu": LOAD_CPU,
            "pinned": MANAGER_CPU is not None}


# -- the echo floor -----------------------------------------------------------------------

async def _offer(work: Path, rate: float, size: int, count: int) -> dict:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    channel = pc.createDataChannel("beach")
    opened = asyncio.get_running_loop().create_future()
    done = asyncio.get_running_loop().create_future()
    sent_at: dict[int, float] = {}
    rtts: list[float] = []
    channel.on("open", lambda: opened.done() or opened.set_result(None))

    @channel.on("message")
    def on_message(message: bytes) -> None:
        seq = int.from_bytes(message[:8], "big")
        t = sent_at.pop(seq, None)
        if t is not None:
            rtts.append((time.perf_counter() - t) * 1000)
        if len(rtts) >= count and not done.done():
            done.set_result(None)

    await pc.setLocalDescription(await pc.createOffer())
    (work / "offer.sdp").write_text(pc.localDescription.sdp)
    answer = work / "answer.sdp"
    while not answer.exists():
        await asyncio.sleep(0.02)
    await pc.setRemoteDescription(RTCSessionDescription(answer.read_text(), "answer"))
    await asyncio.wait_for(opened, 30)
    pad = b"\0" * max(0, size - 8)
    period, started = 1.0 / rate, time.perf_counter()
    for seq in range(count):  # paced: message k leaves at k / rate
        delay = started + seq * period - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[seq] = time.perf_counter()
        channel.send(seq.to_bytes(8, "big") + pad)
    try:
        await asyncio.wait_for(done, 30)
    except TimeoutError:
        pass
    elapsed = time.perf_counter() - started
    await pc.close()
    return {"echoed": len(rtts), "seconds": round(elapsed, 2),
            "rtt_ms_p50": round(statistics.median(rtts), 2) if rtts else None}


async def _answer(work: Path, count: int) -> dict:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    seen = {"n": 0, "cpu0": 0.0, "cpu1": 0.0}
    finished = asyncio.get_running_loop().create_future()

    @pc.on("datachannel")
    def on_channel(channel) -> None:
        @channel.on("message")
        def on_message(message: bytes) -> None:
            if seen["n"] == 0:
                seen["cpu0"] = time.process_time()
            channel.send(message)
            seen["n"] += 1
            if seen["n"] >= count:
                seen["cpu1"] = time.process_time()
                if not finished.done():
                    finished.set_result(None)

    offer = work / "offer.sdp"
    while not offer.exists():
        await asyncio.sleep(0.02)
    await pc.setRemoteDescription(RTCSessionDescription(offer.read_text(), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    (work / "answer.sdp.tmp").write_text(pc.localDescription.sdp)
    (work / "answer.sdp.tmp").rename(work / "answer.sdp")
    await asyncio.wait_for(finished, 120)
    await asyncio.sleep(0.5)  # the last echoes leave before the close
    await pc.close()
    cpu = seen["cpu1"] - seen["cpu0"]
    return {"messages": seen["n"], "cpu_seconds": round(cpu, 3),
            "us_per_message": round(cpu / max(1, seen["n"] - 1) * 1e6, 1)}


def echo_floor(rate: float = 1000, size: int = 256, seconds: float = 5.0) -> dict:
    """The answerer's CPU per echoed message (us), with both peers pinned as the manager and
    its load would be."""
    count = max(10, int(rate * seconds))
    with tempfile.TemporaryDirectory(prefix="bench-echo-") as tmp:
        me = [sys.executable, str(Path(__file__).resolve())]
        common = ["--work", tmp, "--rate", str(rate), "--size", str(size), "--count", str(count)]
        answer = subprocess.Popen(pinned([*me, "--role", "answer", *common], MANAGER_CPU),
                                  stdout=subprocess.PIPE, text=True)
        offer = subprocess.Popen(pinned([*me, "--role", "offer", *common], LOAD_CPU),
                                 stdout=subprocess.PIPE, text=True)
        out_offer, _ = offer.communicate(timeout=seconds + 120)
        out_answer, _ = answer.communicate(timeout=60)
    a, o = json.loads(out_answer), json.loads(out_offer)
    return {"rate_per_s": rate, "size_bytes": size, **a, "rtt_ms_p50": o["rtt_ms_p50"],
            "echoed": o["echoed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--role", choices=("offer", "answer"), help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "offer":
        print(json.dumps(asyncio.run(_offer(Path(args.work), args.rate, args.size, args.count))))
    elif args.role == "answer":
        print(json.dumps(asyncio.run(_answer(Path(args.work), args.count))))
    else:
        print(json.dumps({"rig": describe(), "echo_floor": echo_floor(args.rate, args.size,
                                                                       args.seconds)}))


if __name__ == "__main__":
    main()
