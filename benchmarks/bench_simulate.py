"""Gaussian collapse loop: our vectorised loop against a per-seed Python loop (the paper's notebook style).

    nice python benchmarks/bench_simulate.py [--generations 2000] [--seeds 1000] [--samples 100] [--repeats 3] [--threads 1]

Thread pools (OpenMP, MKL, OpenBLAS, numba) are pinned to --threads for both sides before numpy
is imported. Warm: in this process, the three loops run in turn --repeats times (interleaved).
Cold: a fresh process per run (interpreter, imports, one run), the baseline's and ours in turn.
Prints best / median of each, the ratios (baseline / ours), and the mean log fitted variance at
the last generation of each loop beside its closed form (n + 1) E[log(chi2_{M-1} / (M-1))]:
the loops must agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

COLD_BASELINE = """
import sys
sys.path.insert(0, sys.argv[4])
import numpy as np
from bench_simulate import per_seed_loop
print(np.log(per_seed_loop(*map(int, sys.argv[1:4]))).mean())
"""

COLD_OURS = """
import sys
import numpy as np
from collapseguard.simulate.loop import SimConfig, run_simulation
from collapseguard.simulate.policy import Policy
g, s, m = map(int, sys.argv[1:4])
config = SimConfig("gaussian", g, m, s, 0, Policy("replace"), {"exact_statistics": True})
print(np.log(run_simulation(config).metrics["variance"][:, -1]).mean())
"""


def per_seed_loop(generations: int, seeds: int, samples: int):
    """One seed at a time, one generation at a time: sample, refit mean and unbiased std."""
    import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each loop, warm and cold (>= 3)")
    parser.add_argument("--threads", type=int, default=1, help="native threads of both sides (numpy/BLAS/OpenMP)")
    args = parser.parse_args()
    if args.repeats < 3 or min(args.generations, args.seeds, args.samples, args.threads) < 1:
        sys.exit("error: --repeats must be >= 3; --generations, --seeds, --samples and --threads >= 1")
    timing.pin_threads(args.threads)
    import numpy as np
    from scipy.special import digamma

    from collapseguard.simulate.loop import SimConfig, run_simulation
    from collapseguard.simulate.policy import Policy

    g, s, m = args.generations, args.seeds, args.samples
    finals: dict[str, np.ndarray] = {}

    def warm(name: str, fn):
        def run():
            finals[name] = fn()
        return timing.timed(run)

    def ours(exact: bool):
        config = SimConfig("gaussian", g, m, s, 0, Policy("replace"), {"exact_statistics": exact})
        return run_simulation(config).metrics["variance"][:, -1]

    load_before = timing.load_average()
    hot = timing.interleaved(args.repeats, {
        "baseline": warm("baseline", lambda: per_seed_loop(g, s, m)),
        "samples": warm("samples", lambda: ours(False)),
        "stats": warm("stats", lambda: ours(True)),
    })
    env = timing.child_env(args.threads)
    cold_logv: dict[str, float] = {}

    def cold(name: str, code: str, *extra: str):
        def run() -> float:
            wall, out = timing.python_child(code, str(g), str(s), str(m), *extra, env=env)
            cold_logv[name] = float(out.split()[-1])
            return wall
        return run

    cold_times = timing.interleaved(args.repeats, {
        "baseline": cold("baseline", COLD_BASELINE, str(Path(__file__).resolve().parent)),
        "stats": cold("stats", COLD_OURS),
    })
    expected = (g + 1) * (digamma((m - 1) / 2) - np.log((m - 1) / 2))  # E[log sigma_n^2], sigma = 1
    print(f"gaussian world, {g} generations x {s} seeds, M = {m}, replace; {args.threads} thread(s) each side; "
          f"best / median of {args.repeats} interleaved; load average {load_before} before, {timing.load_average()} after")
    print(f"{'loop':<50}{'best / median':>22}{'ratio best / median':>22}  mean log var (closed form {expected:.3f})")
    rows = [("warm: per-seed Python loop (baseline)", hot["baseline"], hot["baseline"], finals["baseline"]),
            ("warm: ours, vectorised explicit samples", hot["samples"], hot["baseline"], finals["samples"]),
            ("warm: ours, vectorised sufficient statistics", hot["stats"], hot["baseline"], finals["stats"])]
    for name, t, base, v in rows:
        logv = np.log(v)
        print(f"{name:<50}{timing.seconds(t):>22}{timing.ratio(base, t):>22}  "
              f"{logv.mean():.3f} +- {1.96 * logv.std(ddof=1) / np.sqrt(s):.3f}")
    for name, key in (("cold: per-seed Python loop (baseline)", "baseline"),
                      ("cold: ours, sufficient statistics (default)", "stats")):
        print(f"{name:<50}{timing.seconds(cold_times[key]):>22}{timing.ratio(cold_times['baseline'], cold_times[key]):>22}"
              f"  {cold_logv[key]:.3f}")


if __name__ == "__main__":
    main()
