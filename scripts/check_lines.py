#!/usr/bin/env python3
"""Fail when a source file under beachmanager/, tests/ or bench/ exceeds the line limit."""

from __future__ import annotations

import pathlib
import sys

LIMIT = 1800
ROOTS = ("beachmanager", "tests", "bench", "twisted", "scripts")
SUFFIXES = {".py", ".sql", ".sh", ".lua"}


def oversized(top: pathlib.Path, limit: int = LIMIT) -> list[tuple[str, int]]:
    found = []
    for root in ROOTS:
        for path in sorted((top / root).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts:
                with path.open("rb") as f:
                    n = sum(1 for _ in f)
                if n > limit:
                    found.append((str(path.relative_to(top)), n))
    return found


def main() -> int:
    top = pathlib.Path(__file__).resolve().parent.parent
    bad = oversized(top)
    for name, n in bad:
        print(f"{name}: {n} lines (limit {LIMIT}); split it by responsibility", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
