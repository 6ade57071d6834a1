"""The manager process freezes its start-up objects and collects less often."""

import gc

from beachmanager import gc_tuning


def test_tune_freezes_and_raises_thresholds():
    before = gc.get_threshold()
    try:
        gc_tuning.tune()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (gc_tuning.GEN0_THRESHOLD, gc_tuning.GEN1_THRESHOLD,
                                      gc_tuning.GEN2_THRESHOLD)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
