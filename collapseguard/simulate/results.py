"""Tidy result tables and per-generation summaries."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from collapseguard.simulate.loop import SimResult

COLUMNS = ("world", "policy", "human_fraction", "seed", "generation", "metric", "value")


def summarise(values: np.ndarray) -> dict[str, np.ndarray]:
    """Median and 95% interval over seeds: values (S, G) -> arrays (G,)."""
    lo, med, hi = np.nanpercentile(values, [2.5, 50, 97.5], axis=0)
    return {"median": med, "lo": lo, "hi": hi}


def to_columns(result: SimResult) -> dict[str, np.ndarray]:
    """The result as tidy columns: one row per seed, generation and metric."""
    cfg = result.config
    cols = {c: [] for c in COLUMNS}
    for metric, values in result.metrics.items():
        s, g = values.shape
        cols["seed"].append(np.repeat(np.arange(s), g))
        cols["generation"].append(np.tile(np.arange(g), s))
        cols["value"].append(values.ravel().astype(float))
        cols["metric"].append(np.full(s * g, metric, dtype=object))
    n = sum(len(v) for v in cols["value"])
    return {
        "world": np.full(n, cfg.world, dtype=object),
        "policy": np.full(n, cfg.policy.workflow, dtype=object),
        "human_fraction": np.full(n, cfg.policy.human_fraction),
        "seed": np.concatenate(cols["seed"]),
        "generation": np.concatenate(cols["generation"]),
        "metric": np.concatenate(cols["metric"]),
        "value": np.concatenate(cols["value"]),
    }


def config_record(result: SimResult) -> dict:
    """Every parameter that produced `result` (seed included), for the table's metadata."""
    record = dataclasses.asdict(result.config)
    record["world_params"] = result.world_params
    record["seconds"] = round(result.seconds, 3)
    return record


def to_table(results: list[SimResult]):
    """A pyarrow Table of all results; the configs go into the schema metadata."""
    import pyarrow as pa

    parts = [to_columns(r) for r in results]
    data = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
    table = pa.table({
        "world": pa.array(data["world"], pa.string()),
        "policy": pa.array(data["policy"], pa.string()),
        "human_fraction": pa.array(data["human_fraction"], pa.float64()),
        "seed": pa.array(data["seed"], pa.int64()),
        "generation": pa.array(data["generation"], pa.int64()),
        "metric": pa.array(data["metric"], pa.string()),
        "value": pa.array(data["value"], pa.float64()),
    })
    meta = {"collapseguard.configs": json.dumps([config_record(r) for r in results])}
    return table.replace_schema_metadata(meta)


def json_summary(result: SimResult) -> dict:
    """Per generation: median and 95% interval of every metric, plus the config."""
    metrics = {}
    for name, values in result.metrics.items():
        s = summarise(values)
        metrics[name] = [
            {"generation": g, "median": float(s["median"][g]), "lo": float(s["lo"][g]), "hi": float(s["hi"][g])}
            for g in range(values.shape[1])
        ]
    return {"config": config_record(result), "primary_metric": result.primary_metric, "metrics": metrics}
