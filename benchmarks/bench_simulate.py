"""Gaussian collapse loop: our vectorised loop against a per-seed Python loop (the paper's notebook style).

Usage: python benchmarks/bench_simulate.py [--generations 2000] [--seeds 1000] [--samples 100]

Prints each time, the ratio, and the mean log fitted variance at the last generation from each
loop beside its closed form (n + 1) E[log(chi2_{M-1} / (M-1))]: the loops must agree.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from collapseguard.simulate.loop import SimConfig, run_simulation
from collapseguard.simulate.policy import Policy


def per_seed_loop(generations: int, seeds: int, samples: int) -> np.ndarray:
    """One seed at a time, one generation at a time: sample, refit mean and unbiased std."""
    final_var = np.empty(seeds)
    for s in range(seeds):
        rng = np.random.default_rng(s)
        x = rng.normal(0.0, 1.0, samples)
        mu, sigma = x.mean(), x.std(ddof=1)
        for _ in range(generations):
            x = rng.normal(mu, sigma, samples)
            mu, sigma = x.mean(), x.std(ddof=1)
        final_var[s] = sigma**2
    return final_var


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    g, s, m = args.generations, args.seeds, args.samples

    def ours(exact: bool):
        config = SimConfig("gaussian", g, m, s, 0, Policy("replace"), {"exact_statistics": exact})
        return run_simulation(config).metrics["variance"][:, -1]

    t_stats, v_stats = timed(lambda: ours(True))
    t_samples, v_samples = timed(lambda: ours(False))
    t_base, v_base = timed(lambda: per_seed_loop(g, s, m))
    from scipy.special import digamma

    expected = (g + 1) * (digamma((m - 1) / 2) - np.log((m - 1) / 2))  # E[log sigma_n^2], sigma = 1
    print(f"gaussian world, {g} generations x {s} seeds, M = {m}, replace")
    print(f"{'loop':<42}{'seconds':>9}{'ratio':>8}  mean log var (closed form {expected:.3f})")
    rows = [("per-seed Python loop (baseline)", t_base, v_base),
            ("ours, vectorised explicit samples", t_samples, v_samples),
            ("ours, vectorised sufficient statistics", t_stats, v_stats)]
    for name, t, v in rows:
        logv = np.log(v)
        print(f"{name:<42}{t:>9.3f}{t_base / t:>8.1f}  {logv.mean():.3f} +- {1.96 * logv.std(ddof=1) / np.sqrt(s):.3f}")


if __name__ == "__main__":
    main()
