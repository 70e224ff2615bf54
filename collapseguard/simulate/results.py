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


def to_table_one(result: SimResult):
    """One result as a tidy pyarrow Table: a row per seed, generation and metric."""
    import pyarrow as pa

    cfg = result.config
    names = list(result.metrics)
    s, g = result.metrics[names[0]].shape
    n = len(names) * s * g

    def repeated(value: str):  # a string column built from indices, without Python objects per row
        return pa.DictionaryArray.from_arrays(np.zeros(n, dtype=np.int32), [value]).cast(pa.string())

    metric = pa.DictionaryArray.from_arrays(np.repeat(np.arange(len(names), dtype=np.int32), s * g), names)
    return pa.table({
        "world": repeated(cfg.world),
        "policy": repeated(cfg.policy.workflow),
        "human_fraction": pa.array(np.full(n, cfg.policy.human_fraction)),
        "seed": pa.array(np.tile(np.repeat(np.arange(s, dtype=np.int64), g), len(names))),
        "generation": pa.array(np.tile(np.arange(g, dtype=np.int64), s * len(names))),
        "metric": metric.cast(pa.string()),
        "value": pa.array(np.concatenate([result.metrics[k].astype(float).ravel() for k in names])),
    })


def config_record(result: SimResult) -> dict:
    """Every parameter that produced `result` (seed included), for the table's metadata."""
    record = dataclasses.asdict(result.config)
    record["world_params"] = result.world_params
    record["seconds"] = round(result.seconds, 3)
    return record


def to_table(results: list[SimResult]):
    """A pyarrow Table of all results; the configs go into the schema metadata."""
    import pyarrow as pa

    table = pa.concat_tables([to_table_one(r) for r in results])
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
