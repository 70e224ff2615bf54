"""The guarded LM sweep: contamination x guard (x watermark and ledger share) on the ground-truth
language, seeds per cell, a report with intervals across seeds, and plots.

Contamination c is the machine share of each generation's crawl (the loop's human fraction is
1 - c, workflow replace). Every cell is one LM loop in ``OUT/cells/<name>/`` (resumable: a
killed sweep reruns only unfinished generations); ``OUT/results.parquet`` holds every cell's
rows with the cell's coordinates, ``OUT/report.md`` the comparison, ``collapse_curves.png``
and ``degradation.png`` the figures.

The comparison with the statistical worlds: their imperfect filter (``--filter-tpr``,
``--filter-fpr``) predicts the synthetic share after the guard, c(1-t) / (c(1-t) + (1-c)(1-f)),
and, run in the gaussian world at the guard's achieved t and f, how much of the unguarded
degradation remains; both sit beside what the LM loop measured.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.io.atomic import write_parquet_atomic, write_text_atomic
from collapseguard.simulate.lm.generate import DecodingConfig
from collapseguard.simulate.lm.guard import GuardConfig
from collapseguard.simulate.lm.loop import LMConfig
from collapseguard.simulate.lm.train import TrainConfig
from collapseguard.simulate.plots import _pyplot, _save

COLLAPSE_METRICS = ("kl_to_truth", "test_perplexity", "tail_mass")
# The embedded grid's model and data: ~0.4M-parameter GPT-2, 128 blocks of 32 tokens, 3-way beam search,
# 64 held-out blocks (test perplexity and the guard's calibration).
BASE = LMConfig(corpus="synthetic", preset="tiny", block_size=32, max_blocks=128, test_blocks=64, generations=3,
                seeds=3, train=TrainConfig(epochs=3, batch_size=16), decoding=DecodingConfig("beam", num_beams=3),
                device="cpu", threads=1)


@dataclass(frozen=True)
class GuardSweepConfig:
    """The grid; `base` holds the LM settings every cell shares (its guard and fraction are set per cell)."""

    contaminations: tuple[float, ...] = (0.5, 0.9)
    guards: tuple[str, ...] = ("none", "default")
    watermark_shares: tuple[float, ...] = (0.5,)
    ledger_shares: tuple[float, ...] = (0.5,)
    restore_human: float | None = 0.0  # refill the budget with verified human blocks (None: a smaller set)
    guard_fpr: float = 0.05
    base: LMConfig = BASE

    def cells(self) -> list[tuple[dict, LMConfig]]:
        """(coordinates, LMConfig) per cell; a `none` guard cell ignores the shares (one per contamination)."""
        out = []
        for c in self.contaminations:
            if not 0.0 <= c < 1.0:
                raise CollapseguardError(f"--contamination must lie in [0, 1), got {c}")
            for g in self.guards:
                shares = [(0.0, 0.0)] if g == "none" else [(w, s) for w in self.watermark_shares for s in self.ledger_shares]
                for w, s in shares:
                    guard = None if g == "none" else GuardConfig(g, w, s, self.restore_human, self.guard_fpr)
                    cfg = dataclasses.replace(self.base, human_fraction=round(1.0 - c, 10), workflow="replace", guard=guard)
                    coords = {"contamination": c, "guard": g, "watermark_share": w, "ledger_share": s}
                    out.append((coords, cfg))
        return out


def cell_name(coords: dict) -> str:
    g = Path(coords["guard"]).stem if coords["guard"] not in ("none", "default") else coords["guard"]
    return f"c{coords['contamination']:g}_{g}_wm{coords['watermark_share']:g}_led{coords['ledger_share']:g}"


def _run_cell(cfg: LMConfig, folder: str) -> str:
    from collapseguard.simulate.lm.loop import run_lm_loop

    run_lm_loop(cfg, folder)
    return folder


def die_with_parent() -> None:
    """In a worker (Linux): be sent SIGTERM when the sweep's process dies, however it dies, so a
    killed sweep leaves no cell running on behind it (Ctrl-C reaches the workers anyway)."""
    import ctypes
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def run_cells(cells: list[tuple[dict, LMConfig]], out: Path, workers: int, progress) -> None:
    """Every cell's loop, `workers` at a time in separate processes (one torch thread each)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    say = progress or (lambda msg: None)
    jobs = [(cfg, str(out / "cells" / cell_name(coords))) for coords, cfg in cells]
    if workers == 1:
        for i, (cfg, folder) in enumerate(jobs):
            _run_cell(cfg, folder)
            say(f"cell {i + 1}/{len(jobs)} done: {Path(folder).name}")
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent) as pool:
        futures = [pool.submit(_run_cell, cfg, folder) for cfg, folder in jobs]
        for k, fut in enumerate(as_completed(futures)):
            say(f"cell {k + 1}/{len(jobs)} done: {Path(fut.result()).name}")


def run_guard_sweep(config: GuardSweepConfig, out: str | Path, progress: Callable[[str], None] | None = None,
                    workers: int = 2) -> dict:
    """Run every cell (resuming finished generations; `workers` cells at once), then write
    results, report and plots."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    rows = []
    cells = config.cells()
    run_cells(cells, out, workers, progress)
    for coords, _ in cells:
        for r in pq.read_table(out / "cells" / cell_name(coords) / "results.parquet").to_pylist():
            rows.append({**coords, "seed": r["seed"], "generation": r["generation"], "metric": r["metric"],
                         "value": r["value"]})
    table = pa.Table.from_pylist(rows)
    write_parquet_atomic(table, out / "results.parquet")
    df = table.to_pandas()
    collapse_plot(df, out / "collapse_curves.png")
    degradation_plot(df, config.base.generations, out / "degradation.png")
    summary = summarise(df, config.base.generations)
    write_text_atomic(out / "report.md", report(summary, config))
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    return {"out": str(out), "report": str(out / "report.md"), "results": str(out / "results.parquet"),
            "cells": summary}


def mean_ci(values) -> list[float]:
    """Mean and 95% t-interval across seeds ([mean, mean, mean] with one seed)."""
    v = np.asarray([x for x in values if x == x], dtype=float)
    if len(v) == 0:
        return [float("nan")] * 3
    m = float(v.mean())
    if len(v) < 2:
        return [m, m, m]
    from scipy import stats

    h = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return [m, m - h, m + h]


def degradation(df, metric: str, n: int):
    """Per (cell, seed): metric at generation n minus generation 0."""
    sub = df[df["metric"] == metric]
    keys = ["contamination", "guard", "watermark_share", "ledger_share", "seed"]
    wide = sub.pivot_table(index=keys, columns="generation", values="value")
    return (wide[n] - wide[0]).rename("degradation").reset_index()


def summarise(df, n: int) -> list[dict]:
    """One dict per guarded or unguarded cell: degradation, prevented share, the guard's costs."""
    deg = {m: degradation(df, m, n) for m in COLLAPSE_METRICS}
    kl = deg["kl_to_truth"]
    out = []
    for (c, g, w, s), grp in kl.groupby(["contamination", "guard", "watermark_share", "ledger_share"]):
        row = {"contamination": c, "guard": g, "watermark_share": w, "ledger_share": s,
               "seeds": int(grp["seed"].nunique())}
        for m in COLLAPSE_METRICS:
            d = deg[m]
            sel = d[(d.contamination == c) & (d.guard == g) & (d.watermark_share == w) & (d.ledger_share == s)]
            row[f"degradation_{m}"] = mean_ci(sel["degradation"])
        if g != "none":
            base = kl[(kl.contamination == c) & (kl.guard == "none")].set_index("seed")["degradation"]
            paired = grp.set_index("seed")["degradation"]
            common = base.index.intersection(paired.index)
            row["prevented_kl"] = mean_ci([base[k] - paired[k] for k in common])
            mb = float(base[common].mean()) if len(common) else float("nan")
            row["prevented_share"] = 1.0 - float(paired[common].mean()) / mb if mb > 0 else float("nan")
            cell = df[(df.contamination == c) & (df.guard == g) & (df.watermark_share == w)
                      & (df.ledger_share == s) & (df.generation > 0)]
            for m in ("guard_tpr", "guard_fpr", "human_lost", "human_restored", "share_before", "share_after",
                      "share_estimate"):
                per_seed = cell[cell.metric == m].groupby("seed")["value"].mean()
                row[m] = mean_ci(per_seed)
            wide = cell.pivot_table(index=["seed", "generation"], columns="metric", values="value")
            wide = wide.reindex(columns=sorted(set(wide.columns) | {"share_low", "share_high"}))  # all-NaN: no interval
            inside = (wide["share_low"] <= wide["share_before"]) & (wide["share_before"] <= wide["share_high"])
            has = wide["share_low"].notna() & wide["share_high"].notna()
            row["interval_covers"] = [int(inside.sum()), int(has.sum()), int(len(wide))]
            t, f = row["guard_tpr"][0], row["guard_fpr"][0]
            row["predicted_share_after"] = filter_share(c, t, f)
            row["gaussian_remaining"] = gaussian_remaining(c, t, f, n)
        out.append(row)
    return out


def filter_share(c: float, tpr: float, fpr: float) -> float:
    """The statistical worlds' filter: the synthetic share of a crawl with share c after it."""
    syn, hum = c * (1 - tpr), (1 - c) * (1 - fpr)
    return float(syn / (syn + hum)) if syn + hum > 0 else float("nan")


def refill_share(c: float, tpr: float, fpr: float, restore: float | None) -> float:
    """The expected synthetic share after this loop's guard: refilled with verified human blocks
    (`restore` = the least human fraction), or the kept crawl alone (None)."""
    if restore is None:
        return filter_share(c, tpr, fpr)
    syn, kept = c * (1 - tpr), c * (1 - tpr) + (1 - c) * (1 - fpr)
    return float(syn if kept <= 1 - restore else syn * (1 - restore) / kept)


def gaussian_remaining(c: float, tpr: float, fpr: float, n: int, seeds: int = 2000) -> float:
    """The gaussian world's prediction: degradation at generation n with the filter (tpr, fpr)
    over degradation without it, human fraction 1 - c, 100 samples a generation."""
    from collapseguard.simulate.loop import SimConfig, run_simulation
    from collapseguard.simulate.policy import Policy

    if tpr != tpr or fpr != fpr:
        return float("nan")

    def final(t, f):
        r = run_simulation(SimConfig("gaussian", n, 100, seeds, 0, Policy("replace", 1.0 - c, 0.0, None, "constant", t, f), {}))
        v = r.metrics[r.primary_metric]
        return float(np.mean(v[:, n]) - np.mean(v[:, 0]))

    base = final(0.0, 0.0)
    return final(min(max(tpr, 0.0), 1.0), min(max(fpr, 0.0), 1.0)) / base if base > 0 else float("nan")


def _fmt(ci) -> str:
    if isinstance(ci, (int, float)):
        return "nan" if ci != ci else f"{ci:.3g}"
    m, lo, hi = ci
    return "nan" if m != m else (f"{m:.3g}" if lo == hi else f"{m:.3g} [{lo:.3g}, {hi:.3g}]")


def report(summary: list[dict], config: GuardSweepConfig) -> str:
    b, n = config.base, config.base.generations
    lines = [
        "# Guarded LM collapse sweep", "",
        f"Ground-truth language, {b.max_blocks} blocks of {b.block_size} tokens a generation, preset {b.preset}, "
        f"{b.decoding.decoding} decoding, workflow replace, {n} generations, {b.seeds} seed(s) a cell. "
        "Contamination c = the machine share of each generation's crawl. Guard `default`: KGW watermark + ledger "
        f"(minhash containment) + Gen-0 perplexity, calibrated to FPR {config.guard_fpr} on held-out human text. "
        "Means across seeds with 95% t-intervals in brackets.", "",
        f"## Collapse at generation {n} and what the guard cost", "",
        "| c | guard | wm share | ledger share | KL to truth rise | test ppl rise | tail-mass change | KL rise prevented | share of the rise prevented "
        "| guard TPR | guard FPR | human lost | verified human added | synthetic share after |",
        "|" + "---|" * 14,
    ]
    for r in summary:
        guarded = r["guard"] != "none"
        lines.append("| " + " | ".join([
            f"{r['contamination']:g}", r["guard"], f"{r['watermark_share']:g}" if guarded else "-",
            f"{r['ledger_share']:g}" if guarded else "-", _fmt(r["degradation_kl_to_truth"]),
            _fmt(r["degradation_test_perplexity"]), _fmt(r["degradation_tail_mass"]),
            _fmt(r["prevented_kl"]) if guarded else "-", _fmt(r["prevented_share"]) if guarded else "-",
            _fmt(r["guard_tpr"]) if guarded else "-",
            _fmt(r["guard_fpr"]) if guarded else "-", _fmt(r["human_lost"]) if guarded else "-",
            _fmt(r["human_restored"]) if guarded else "-",
            _fmt(r["share_after"]) if guarded else f"{r['contamination']:g}"]) + " |")
    lines += ["", "KL rise prevented = unguarded minus guarded rise of KL(truth || model) from generation 0 to "
              f"{n}, paired by seed (the same seed gives both loops the same corpus and generation-0 model); share "
              "of the rise prevented = 1 - mean guarded rise / mean unguarded rise. Human lost = share of the "
              "crawl's human blocks the guard dropped (its real cost in human data); verified human added = blocks curate took from the verified pool to refill the budget, as a share of the crawl; TPR and FPR are measured "
              "against the truth on every generation's crawl.", "",
              "## The scan's estimate, and the statistical worlds' prediction", "",
              "| c | guard | wm | ledger | true share | scan estimate | interval covers truth | share after (measured) "
              "| share after (filter model) | share after (this loop's refill) | gaussian: degradation left "
              "| LM: degradation left |",
              "|" + "---|" * 12]
    for r in summary:
        if r["guard"] == "none":
            continue
        loop = refill_share(r["contamination"], r["guard_tpr"][0], r["guard_fpr"][0], config.restore_human)
        left = 1 - r["prevented_share"]
        cov = r["interval_covers"]
        lines.append("| " + " | ".join([
            f"{r['contamination']:g}", r["guard"], f"{r['watermark_share']:g}", f"{r['ledger_share']:g}",
            _fmt(r["share_before"]), _fmt(r["share_estimate"]),
            f"{cov[0]}/{cov[1]}" + (f" ({cov[2] - cov[1]} without one)" if cov[2] > cov[1] else ""), _fmt(r["share_after"]),
            _fmt(r["predicted_share_after"]), _fmt(loop), _fmt(r["gaussian_remaining"]), _fmt(left)]) + " |")
    lines += ["", "Filter model: c(1-t)/(c(1-t)+(1-c)(1-f)) with the guard's achieved mean t and f (the statistical "
              "worlds refill the budget from the same crawl). This loop's refill: with --restore-human F the budget "
              "is refilled with verified human blocks, so the share is c(1-t), scaled by (1-F)/kept when the kept "
              "crawl exceeds the 1-F it may fill; without it the filter-model share. Gaussian: "
              f"`simulate run --world gaussian --human-fraction {{1-c}} --filter-tpr t --filter-fpr f` (100 samples, "
              f"2000 seeds), mean W2-type degradation at generation {n} over the unfiltered one. The statistical "
              "filter draws until the budget is full; the LM loop's guard shrinks the training set instead "
              "(unless --restore-human), so the two differ in data size as well as in mix.", "",
              "![collapse curves](collapse_curves.png)", "", "![degradation](degradation.png)", ""]
    return "\n".join(lines)


def collapse_plot(df, path: Path) -> None:
    """KL to the truth by generation, one line per cell (mean over seeds); dashed = no guard."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sub = df[df.metric == "kl_to_truth"]
    for (c, g, w, s), grp in sub.groupby(["contamination", "guard", "watermark_share", "ledger_share"]):
        mean = grp.groupby("generation")["value"].mean()
        label = f"c={c:g} no guard" if g == "none" else f"c={c:g} {g} wm={w:g} led={s:g}"
        ax.plot(mean.index, mean.values, marker="o", linestyle="--" if g == "none" else "-", label=label)
    ax.set_xlabel("generation")
    ax.set_ylabel("KL(truth || model), nats/token")
    ax.legend(fontsize=6)
    _save(fig, path)  # closes the figure


def degradation_plot(df, n: int, path: Path) -> None:
    """KL rise at generation n against contamination, one line per guard setting (95% t-intervals)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    d = degradation(df, "kl_to_truth", n)
    for (g, w, s), grp in d.groupby(["guard", "watermark_share", "ledger_share"]):
        cs, ms, errs = [], [], []
        for c, cg in grp.groupby("contamination"):
            m, lo, hi = mean_ci(cg["degradation"])
            cs.append(c), ms.append(m), errs.append(m - lo)
        label = "no guard" if g == "none" else f"{g} wm={w:g} led={s:g}"
        ax.errorbar(cs, ms, yerr=errs, marker="o", capsize=3, label=label)
    ax.set_xlabel("contamination (machine share of the crawl)")
    ax.set_ylabel(f"KL rise by generation {n}")
    ax.legend(fontsize=7)
    _save(fig, path)  # closes the figure
