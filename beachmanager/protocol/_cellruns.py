"""Fast decoding of runs of packed-cell varints (the bulk of Snapshot and Delta frames).

Pure Python spends most of a large frame's decode time on per-cell varint work.  Terminal
rows are mostly cells of one varint width: every ASCII cell with a small style id is 6 bytes.
Such a run is decoded here with a fixed number of bytes and big-integer operations, whatever
its length.  Runs of mixed width take the per-cell path in ``wire``.

Decoding a run of ``n`` varints of width ``w`` (``w <= 8``, so values < 2**56):

1. Spread byte ``k`` of each varint to byte ``k`` of a 64-bit lane (strided slice
   assignment) and read all lanes as one big integer.
2. Check the continuation bits: set on bytes ``0..w-2`` of every lane, clear on byte ``w-1``.
   Otherwise the run mixes widths and ``wire`` decodes it cell by cell.
3. Squeeze the 7-bit groups together in three mask-and-shift steps (8 -> 7, 16 -> 14,
   32 -> 28 bits); the first step also drops the continuation bits.
4. Unpack the lanes with ``struct``.

(Encoding the same way was measured slower than ``wire``'s cached per-cell join, so it is not
done.)
"""

from __future__ import annotations

import struct
from functools import lru_cache

__all__ = ["decode_uniform"]

BLOCK = 512  # cells per block, so masks stay small and few


# 64-bit lane patterns: the first pair also drops the continuation bits.
_PATTERNS = (
    0x007F007F007F007F,  # low 7 bits of even bytes
    0x7F007F007F007F00,  # low 7 bits of odd bytes
    0x0000FFFF0000FFFF,  # even 16-bit quarters
    0xFFFF0000FFFF0000,  # odd 16-bit quarters
    0x00000000FFFFFFFF,  # low half
    0xFFFFFFFF00000000,  # high half
    0x8080808080808080,  # continuation bits
)


@lru_cache(maxsize=16)
def _masks(lanes: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(p.to_bytes(8, "little") * lanes, "little") for p in _PATTERNS)


@lru_cache(maxsize=16)
def _continuations(lanes: int, width: int) -> int:
    """Continuation bits a run of ``width``-byte varints has, spread one varint per lane."""
    lane = (b"\x80" * (width - 1)).ljust(8, b"\x00")
    return int.from_bytes(lane * lanes, "little")


def decode_uniform(buf: bytes, pos: int, n: int) -> tuple[tuple[int, ...], int] | None:
    """``(values, end)`` if ``buf[pos:]`` starts with ``n`` varints of one width <= 8 bytes."""
    first = pos
    limit = min(len(buf), pos + 9)
    while first < limit and buf[first] >= 0x80:
        first += 1
    width = first - pos + 1
    end = pos + width * n
    if width > 8 or end > len(buf):
        return None
    if n <= BLOCK:
        values = _decode_block(buf[pos:end], width, n)
        return None if values is None else (values, end)
    out: list[int] = []
    for start in range(pos, end, BLOCK * width):
        stop = min(start + BLOCK * width, end)
        values = _decode_block(buf[start:stop], width, (stop - start) // width)
        if values is None:
            return None
        out.extend(values)
    return tuple(out), end


def _decode_block(seg: bytes, width: int, count: int) -> tuple[int, ...] | None:
    spread = bytearray(8 * count)
    for k in range(width):
        spread[k::8] = seg[k::width]
    x = int.from_bytes(spread, "little")
    m = _masks(count)
    if x & m[6] != _continuations(count, width):  # a terminator out of place: mixed widths
        return None
    x = (x & m[0]) | ((x & m[1]) >> 1)
    x = (x & m[2]) | ((x & m[3]) >> 2)
    x = (x & m[4]) | ((x & m[5]) >> 4)
    return struct.unpack(f"<{count}Q", x.to_bytes(8 * count, "little"))
