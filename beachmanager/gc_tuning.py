"""Garbage-collector settings for the manager process (called once, by ``tap.makeService``).

CPython's default thresholds (700, 10, 10) make a busy manager collect generation 0
hundreds of times a second and the whole heap every second or two; measured under
``bench/actions.py`` at 50 hosts x 10 actions/s with Redis + PostgreSQL, collections
took about 9% of the manager's CPU, and each full one stopped the event loop for
about 85 ms (every request in flight waits for it).

* :func:`gc.freeze` moves what exists once the process has started (modules, classes,
  the service tree, configuration) into the permanent generation, so full collections
  only walk what was made since;
* a larger generation-0 threshold makes collections rarer (each still short:
  about 5 ms for 10,000 young objects).

Nothing here changes what is collected, only when; objects that become garbage after
the freeze are collected as usual.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 20


def tune() -> None:
    """Freeze what exists now and raise the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
