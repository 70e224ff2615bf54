"""PNG plots of sweep results: degradation curves and final-degradation heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collapseguard.simulate.loop import SimResult
from collapseguard.simulate.results import summarise


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _by_workflow(results: list[SimResult]) -> dict[str, list[SimResult]]:
    out: dict[str, list[SimResult]] = {}
    for r in results:
        out.setdefault(r.config.policy.workflow, []).append(r)
    return out


def _save(fig, path: Path) -> Path:
    from collapseguard.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def degradation_plot(results: list[SimResult], path: Path) -> Path:
    """One panel per workflow: median primary metric (95% band) against generation, a line per human fraction."""
    plt = _pyplot()
    groups = _by_workflow(results)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False, sharey=True)
    for ax, (workflow, cells) in zip(axes[0], groups.items()):
        for r in sorted(cells, key=lambda r: r.config.policy.human_fraction):
            s = summarise(r.metrics[r.primary_metric])
            gens = np.arange(len(s["median"]))
            line, = ax.plot(gens, s["median"], label=f"human {r.config.policy.human_fraction:g}")
            ax.fill_between(gens, s["lo"], s["hi"], color=line.get_color(), alpha=0.15)
        ax.set_title(f"{cells[0].config.world}: {workflow}")
        ax.set_xlabel("generation")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{results[0].primary_metric} (median, 95% band)")
    axes[0][-1].legend(fontsize=8)
    return _save(fig, path)


def heatmap_plot(results: list[SimResult], path: Path) -> Path:
    """One panel per workflow: median primary metric over human fraction (rows) and generation (columns)."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    groups = _by_workflow(results)
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 3.2), squeeze=False, layout="constrained")
    medians = {w: [np.median(r.metrics[r.primary_metric], axis=0) for r in
                   sorted(c, key=lambda r: r.config.policy.human_fraction)] for w, c in groups.items()}
    values = np.concatenate([np.ravel(m) for m in medians.values()])
    positive = values[values > 0]
    norm = LogNorm(positive.min(), positive.max()) if positive.size and positive.min() < positive.max() else None
    for ax, (workflow, cells) in zip(axes[0], groups.items()):
        fractions = sorted(r.config.policy.human_fraction for r in cells)
        grid = np.clip(np.stack(medians[workflow]), positive.min() if positive.size else 0, None)
        im = ax.imshow(grid, aspect="auto", origin="lower", norm=norm, cmap="magma", interpolation="nearest")
        ax.set_yticks(range(len(fractions)), [f"{f:g}" for f in fractions])
        ax.set_xlabel("generation")
        ax.set_ylabel("human fraction")
        ax.set_title(f"{cells[0].config.world}: {workflow}")
        fig.colorbar(im, ax=ax, label=cells[0].primary_metric)
    return _save(fig, path)
