"""Protocol figures: encode+decode through wire, envelope and framing, on one core.

    .venv/bin/python bench/protocol.py [--seconds 2]

Two workloads, each a full round trip (``Outbound`` -> chunks -> ``Inbound`` -> wire decode):

* **small**: a 120-byte manager extension frame (client layout ``0x44``, as the manager sends
  actions and HEAD hosts send acks), decoded with ``wire.decode_from_host``;
* **large**: a 64 KiB ``Snapshot`` of ``Row`` updates (printable text in a few styles), split
  into 5 chunks of 14336 bytes.

For each it prints frames/s and MB/s of wire-frame bytes, then the same split by stage.
Aims from the issue: at least 30,000 small frames/s and 50 MB/s for the large frame.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beachmanager.protocol import cells, framing, wire
from beachmanager.protocol.channel import Inbound, Outbound


def small_frame() -> wire.Extension:
    head = len(wire.encode_client(wire.Extension("manager", "beach.manager.action", b"")))
    size = 120 - head
    body = {"type": "action", "payload": {"id": "a-1", "action_type": "terminal_write"}}
    raw = json.dumps(body, separators=(",", ":"))
    payload = (raw[:-2] + ',"p":"' + "x" * size)[: size - 3] + '"}}'
    frame = wire.Extension("manager", "beach.manager.action", payload.encode())
    assert len(wire.encode_client(frame)) == 120, len(wire.encode_client(frame))
    return frame


def large_frame(target: int = 64 * 1024) -> wire.Snapshot:
    text = "The quick brown fox jumps over the lazy dog 0123456789 ~!@#$%^&*() "
    rows: list[wire.Row] = []
    while True:
        row_id = 100_000 + len(rows)
        line = [cells.pack_cell(text[(row_id + i) % len(text)], i // 40 % 4) for i in range(200)]
        rows.append(wire.Row(row_id, 1_000_000 + row_id, line))
        frame = wire.Snapshot(1, wire.Lane.FOREGROUND, 1_000_000 + row_id, True, rows)
        if len(wire.encode_host(frame)) >= target:
            return frame


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    batch = 1
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)
        batch = min(batch * 2, 1024)


def report(name: str, per_second: float, nbytes: int) -> None:
    print(f"  {name:<34} {per_second:>12,.0f} frames/s {per_second * nbytes / 1e6:>9.1f} MB/s")


def workload(name: str, frame, encode, decode, seconds: float) -> None:
    raw = encode(frame)
    out = Outbound()
    inbound = Inbound(time.monotonic)
    chunks = out.binary(raw)
    print(f"{name}: {type(frame).__name__}, {len(raw)} wire bytes, {len(chunks)} chunk(s)")

    def round_trip() -> object:
        msg = None
        for chunk in out.binary(encode(frame)):
            msg = inbound.feed(chunk)
        return decode(msg.data)

    assert round_trip() == frame  # checked once, outside the timed loop
    report("round trip (wire+envelope+framing)", rate(round_trip, seconds), len(raw))

    def transport_only() -> None:
        for chunk in out.binary(raw):
            inbound.feed(chunk)

    report("envelope+framing only", rate(transport_only, seconds), len(raw))
    report("wire encode", rate(lambda: encode(frame), seconds), len(raw))
    report("wire decode", rate(lambda: decode(raw), seconds), len(raw))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, one core")
    print(f"chunk size {framing.DEFAULT_CHUNK_SIZE}, CRC-32C via google-crc32c")
    workload("small", small_frame(), wire.encode_client, wire.decode_from_host, args.seconds)
    workload("large", large_frame(), wire.encode_host, wire.decode_host, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
