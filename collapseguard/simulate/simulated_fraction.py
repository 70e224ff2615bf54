"""Choose the human fraction of a mix from a collapse simulation (`simulate run/sweep` or an LM run).

Degradation of one seed at generation g is how far the metric moved from generation 0 in the
bad direction: value_g - value_0 when higher is worse, value_0 - value_g otherwise. A fraction
passes when, for every generation 1..G, both the median and the upper end of the 95% interval
over seeds (the 97.5th percentile, as `simulate` reports) are at most the allowed degradation.
The smallest passing fraction is chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError

COLUMNS = ("world", "policy", "human_fraction", "seed", "generation", "metric", "value")
LM_METRIC = "test_perplexity"


def default_metric(world: str) -> tuple[str, bool]:
    """(metric, higher_is_worse) the world calls its degradation."""
    if world == "lm":
        return LM_METRIC, True
    from collapseguard.simulate.worlds import WORLDS, world_class

    if world not in WORLDS:
        raise CollapseguardError(f"world {world!r} is not one this version simulates; pass --metric")
    cls = world_class(world)
    return cls.primary_metric, cls.higher_is_worse


def higher_is_worse(world: str, metric: str) -> bool:
    """The direction of `metric`: the world's own for its primary metric, else higher is worse."""
    try:
        name, worse = default_metric(world)
    except CollapseguardError:
        return True
    return worse if name == metric else True


def load_results(path) -> dict:
    """The tidy results table as column name -> numpy array, its columns checked."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: no such results file; pass the results.parquet of `collapseguard simulate`") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise CollapseguardError(f"{path}: not a readable parquet file ({exc}); pass a results.parquet") from None
    missing = [c for c in COLUMNS if c not in table.schema.names]
    if missing:
        raise CollapseguardError(f"{path}: lacks the column(s) {', '.join(missing)}; pass the results.parquet that "
                                 "`collapseguard simulate run/sweep` writes")
    cols = {c: table.column(c).to_numpy() for c in COLUMNS}
    for c in ("world", "policy", "metric"):
        cols[c] = cols[c].astype(str)
    return cols


def _rows(cols: dict, keep: np.ndarray) -> dict:
    return {c: v[keep] for c, v in cols.items()}


def _one(cols: dict, column: str, value, path, flag: str) -> tuple[dict, str]:
    have = sorted(set(cols[column]))
    if value is None:
        if len(have) != 1:
            raise CollapseguardError(f"{path}: holds several {column}s ({', '.join(have)}); choose one with {flag}")
        value = have[0]
    if str(value) not in have:
        raise CollapseguardError(f"{path}: has no rows with {column} {value!r} (has: {', '.join(have) or 'none'}); "
                                 f"pass one of them to {flag}")
    return _rows(cols, cols[column] == str(value)), str(value)


def seed_by_generation(cols: dict, generations: int) -> np.ndarray:
    """values (S seeds, G+1 generations) of one fraction; NaN where a seed lacks a generation."""
    seeds, s_idx = np.unique(cols["seed"], return_inverse=True)
    values = np.full((len(seeds), generations + 1), np.nan)
    values[s_idx, cols["generation"].astype(int)] = cols["value"]
    return values


def degradation_table(values: np.ndarray, worse_up: bool) -> tuple[np.ndarray, np.ndarray]:
    """values (S seeds, G+1 generations) -> (median, upper) over seeds of the degradation, (G,)."""
    d = (values[:, 1:] - values[:, :1]) * (1.0 if worse_up else -1.0)
    med, hi = np.nanpercentile(d, [50, 97.5], axis=0)
    return med, hi


def pick_fraction(path, max_degradation: float, generations: int, *, metric: str | None = None,
                  world: str | None = None, policy: str | None = "replace") -> dict:
    """The smallest human fraction whose degradation stays within `max_degradation` for
    `generations` generations, with every fraction's figures and the rows used."""
    if generations < 1:
        raise CollapseguardError(f"--generations must be at least 1, got {generations}")
    cols = load_results(path)
    if not len(cols["value"]):
        raise CollapseguardError(f"{path}: holds no rows; pass the results of a finished simulation")
    cols, world = _one(cols, "world", world, path, "--world")
    cols, policy = _one(cols, "policy", policy, path, "--policy")
    name, _ = default_metric(world) if metric is None else (metric, None)
    if name not in set(cols["metric"]):
        raise CollapseguardError(f"{path}: has no metric {name!r} for world {world} (has: "
                                 f"{', '.join(sorted(set(cols['metric'])))}); pass one of them to --metric")
    worse_up = higher_is_worse(world, name)
    cols = _rows(cols, (cols["metric"] == name) & (cols["generation"] <= generations))
    keys = list(zip(cols["human_fraction"].tolist(), cols["seed"].tolist(), cols["generation"].tolist()))
    if len(set(keys)) != len(keys):
        raise CollapseguardError(f"{path}: repeats rows of one fraction, seed and generation (several runs in one "
                                 "file?); pass the results of one sweep or run")
    rows, short = [], []
    for fraction in np.unique(cols["human_fraction"]):
        cell = _rows(cols, cols["human_fraction"] == fraction)
        present = set(cell["generation"].tolist())
        if present != set(range(generations + 1)):
            short.append(f"{fraction:g} (generations 0..{int(max(present))})")
            continue
        values = seed_by_generation(cell, generations)
        med, hi = degradation_table(values, worse_up)
        worst_med, worst_hi = float(np.nanmax(med)), float(np.nanmax(hi))
        rows.append({"human_fraction": float(fraction), "seeds": int(len(values)), "rows": int(len(cell["value"])),
                     "max_median": worst_med, "max_upper": worst_hi,
                     "passes": bool(worst_med <= max_degradation and worst_hi <= max_degradation)})
    if not rows:
        raise CollapseguardError(f"{path}: no fraction was simulated for {generations} generations "
                                 f"({', '.join(short)}); lower --generations or simulate longer")
    chosen = next((r for r in rows if r["passes"]), None)
    used = {"file": str(path), "world": world, "policy": policy, "metric": name, "higher_is_worse": worse_up,
            "generations": [0, generations], "max_degradation": max_degradation, "fractions": rows,
            "rows": sum(r["rows"] for r in rows), "skipped_fractions": short}
    if chosen is None:
        figures = "; ".join(f"{r['human_fraction']:g}: median {r['max_median']:.4g}, upper {r['max_upper']:.4g}"
                            for r in rows)
        raise CollapseguardError(f"{path}: no simulated human fraction keeps {name} degradation within "
                                 f"{max_degradation:g} for {generations} generations (worst over generations: "
                                 f"{figures}); allow more degradation, fewer generations, or simulate larger fractions")
    return {"human_fraction": chosen["human_fraction"], **used}
