"""Helpers for the LM loop tests (tests/test_lm_loop.py, tests/test_lm_guard.py): the comparable
result values of a run folder, and a simulated kill at the third training call."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from collapseguard.simulate.lm.loop import THROUGHPUT_METRICS


def values(out: Path):
    """results.parquet of a run without the throughput metrics (which differ run to run), sorted."""
    t = pq.read_table(out / "results.parquet").to_pandas()
    t = t[~t["metric"].isin(THROUGHPUT_METRICS)]
    return t.sort_values(["seed", "generation", "metric"]).reset_index(drop=True)


def kill_at_third_training(monkeypatch) -> list:
    """Make the third `train_model` call raise KeyboardInterrupt (a simulated kill); the returned
    list gets one entry per call (clear it to count the calls of a rerun)."""
    from collapseguard.simulate.lm import train as train_mod

    calls, real_train = [], train_mod.train_model

    def killed_at_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real_train(*a, **k)

    monkeypatch.setattr(train_mod, "train_model", killed_at_third)
    return calls
