"""Measured-versus-predicted checks that the report prints (each returns plain rows)."""

from __future__ import annotations

import numpy as np

from collapseguard.simulate import theory
from collapseguard.simulate.loop import SimResult

Z95 = 1.96


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95% normal interval."""
    return float(values.mean()), float(Z95 * values.std(ddof=1) / np.sqrt(len(values)))


def find(results: list[SimResult], world: str, workflow: str, human_fraction: float) -> SimResult | None:
    """The result of one sweep cell, or None."""
    for r in results:
        c = r.config
        if c.world == world and c.policy.workflow == workflow and c.policy.human_fraction == human_fraction:
            return r
    return None


def probe_generations(generations: int) -> list[int]:
    """A handful of generations to tabulate: 0, quarters, and the last."""
    return sorted({0, generations // 10, generations // 4, generations // 2, generations})


def _pure_gaussian(r: SimResult) -> bool:
    p = r.config.policy
    return p.schedule == "constant" and p.prev_fraction == 0 and p.filter_tpr == 0 and p.filter_fpr == 0


def variance_law(r: SimResult) -> list[dict]:
    """Var(X^n) = sigma^2 (1 + n/M) for a gaussian, unbiased, replace, c = 0 run.

    A draw from generation g's model has variance E[var_g] + E[(mean_g - mu)^2]; its per-seed
    estimate var_g + (mean_g - mu)^2 is averaged over seeds with a 95% interval.
    """
    sigma2, mu, m = r.world_params["sigma"] ** 2, r.world_params["mu"], r.config.samples
    rows = []
    for g in probe_generations(r.config.generations):
        per_seed = (r.metrics["variance"][:, g] + (r.metrics["mean"][:, g] - mu) ** 2) / sigma2
        mean, half = _mean_ci(per_seed)
        predicted = theory.sample_variance(1.0, m, g + 1)
        rows.append({"generation": g, "measured": mean, "ci": half, "predicted": predicted,
                     "within": abs(mean - predicted) <= half})
    return rows


def w2_formulas(r: SimResult) -> list[dict]:
    """Measured E[W2^2] beside the seed text's formula, the second-order expansion and the exact form."""
    sigma2, m = r.world_params["sigma"] ** 2, r.config.samples
    rows = []
    for g in probe_generations(r.config.generations):
        mean, half = _mean_ci(r.metrics["w2_sq"][:, g])
        sizes = [m] * (g + 1)
        preds = {
            "seed_text": theory.w2_seed_text(sigma2, sizes),
            "second_order": theory.w2_second_order(sigma2, sizes),
            "exact": theory.w2_exact_unbiased(sigma2, m, g + 1),
        }
        rows.append({"generation": g, "measured": mean, "ci": half, **preds,
                     **{f"{k}_within": abs(mean - v) <= half for k, v in preds.items()}})
    return rows


def w2_verdict(rows: list[dict]) -> str:
    """Which W2 formula the measurements support (within the 95% interval at every probed n >= 1)."""
    later = [row for row in rows if row["generation"] >= 1]
    fits = [k for k in ("seed_text", "second_order", "exact") if all(row[f"{k}_within"] for row in later)]
    if not fits:
        close = min(("seed_text", "second_order"), key=lambda k: sum(abs(row[k] - row["measured"]) for row in later))
        return f"no formula is within the interval everywhere; the {close.replace('_', '-')} form is closer"
    return "supported: " + ", ".join(k.replace("_", "-") for k in fits)


def accumulate_mean(r: SimResult) -> list[dict]:
    """E[(mean_g - mu)^2] under accumulate against sigma^2/M sum 1/k^2 < pi^2/6 sigma^2/M."""
    sigma2, mu, m = r.world_params["sigma"] ** 2, r.world_params["mu"], r.config.samples
    rows = []
    for g in probe_generations(r.config.generations):
        mean, half = _mean_ci((r.metrics["mean"][:, g] - mu) ** 2)
        rows.append({"generation": g, "measured": mean, "ci": half,
                     "predicted": theory.accumulate_mean_sq(sigma2, m, g + 1),
                     "bound": np.pi**2 / 6 * sigma2 / m})
    return rows


def final_median(r: SimResult) -> float:
    """Median over seeds of the primary metric at the last generation."""
    return float(np.median(r.metrics[r.primary_metric][:, -1]))


def replace_vs_accumulate(results: list[SimResult], world: str, human_fraction: float = 0.0) -> dict | None:
    """Growth of the primary metric under replace, and where accumulate ends."""
    rep, acc = find(results, world, "replace", human_fraction), find(results, world, "accumulate", human_fraction)
    if rep is None or acc is None:
        return None
    metric = rep.primary_metric
    early = float(np.median(rep.metrics[metric][:, 0]))
    return {"world": world, "metric": metric, "generation_0": early,
            "replace_final": final_median(rep), "accumulate_final": final_median(acc),
            "holds": final_median(acc) < final_median(rep)}


def human_fraction_trend(results: list[SimResult], world: str, workflow: str) -> dict | None:
    """Final degradation per human fraction, and whether it falls monotonically as the fraction rises."""
    cells = sorted((r for r in results if r.config.world == world and r.config.policy.workflow == workflow),
                   key=lambda r: r.config.policy.human_fraction)
    if len(cells) < 2:
        return None
    from scipy.stats import mannwhitneyu

    finals = [final_median(r) for r in cells]
    worse = cells[0].higher_is_worse
    sign = 1 if worse else -1
    # A step against the trend counts only when significant (one-sided Mann-Whitney, p < 0.05).
    significant = []
    for a, b in zip(cells, cells[1:]):
        if sign * (final_median(b) - final_median(a)) > 0:
            x, y = (r.metrics[r.primary_metric][:, -1] * sign for r in (b, a))
            significant.append(mannwhitneyu(x, y, alternative="greater").pvalue < 0.05)
    return {"world": world, "workflow": workflow, "metric": cells[0].primary_metric,
            "fractions": [r.config.policy.human_fraction for r in cells], "finals": finals,
            "higher_is_worse": worse, "monotone": not any(significant),
            "reversals": len(significant), "significant_reversals": sum(significant)}


def first_generation(flags: np.ndarray) -> np.ndarray:
    """Per seed, the first generation where `flags` (S, G) is true, NaN if never."""
    hit = flags.any(axis=1)
    return np.where(hit, flags.argmax(axis=1), np.nan)


def absorption(r: SimResult) -> dict:
    """Discrete world: measured absorption and tail-extinction times against the theory."""
    m, states = r.config.samples, r.world_params["states"]
    from collapseguard.simulate.worlds.discrete import truth_probs

    p = truth_probs(states, r.world_params["truth"], r.world_params["exponent"])
    absorbed = first_generation(r.metrics["absorbed"] >= 1)
    tail_gone = first_generation(r.metrics["tail_mass"] <= 0)
    done = ~np.isnan(absorbed)
    return {"share_absorbed": float(done.mean()),
            "mean_absorption": float(np.nanmean(absorbed)) if done.any() else float("nan"),
            "predicted": theory.absorption_time(m, p),
            "predicted_large_k": theory.absorption_time_large_k(m, states),
            "median_tail_extinction": float(np.nanmedian(tail_gone)) if (~np.isnan(tail_gone)).any() else float("nan"),
            "median_absorption": float(np.nanmedian(absorbed)) if done.any() else float("nan"),
            "horizon": r.config.generations}
