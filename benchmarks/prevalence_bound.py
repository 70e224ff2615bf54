"""How well could *any* estimator know a corpus's machine share from these texts? A lower bound.

For every domain x held-out generator of benchmarks/eval_prevalence.py (the same article-grouped
halves; the mix pools: human texts of other articles than the references', and the generator's
texts), a classifier is trained *on that generator* -- logistic regression on the features
`learned_v1` uses (MiniLM embeddings, stylometry), cross-fitted over article-grouped folds. It is
an oracle no real scan has: it has seen the generator it is asked about. Its out-of-fold scores,
binned into 10 quantile bins, give the human and machine score densities p and q, and so:

- population bound: the Fisher information of the mixture fraction pi in (1 - pi) p + pi q is
  I = sum_b (q_b - p_b)^2 / m_b, so no unbiased estimator from n documents has a standard error
  below 1 / sqrt(n I): a 95% interval at least 2 x 1.96 / sqrt(n I) wide (even a perfect
  classifier: 2 x 1.96 sqrt(pi (1 - pi) / n)). This is the width a bootstrap over documents aims at.
- corpus bound: the share *of this corpus* (the benchmark's truth) is best predicted by the sum
  of the posteriors P(machine | s) (pi and the densities known); its root-mean-square error is
  sqrt(E[P (1 - P)] / n). No estimator that sees only these scores does better on average.

Binning loses a little information and finite samples add noise to the densities; the bound is
an estimate, read it to the nearest few points.

    PYTHONPATH=. python benchmarks/prevalence_bound.py --features-cache /work/cache/features.npz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_detect_dev import feature_blocks  # noqa: E402
from eval_prevalence import DOMAINS, load_domain, split_domain  # noqa: E402

from collapseguard.detectors.grouping import group_folds, source_groups  # noqa: E402
from collapseguard.detectors.learned import normalise_whitespace  # noqa: E402

SHARES = (0.05, 0.2, 0.5)
N_DOCS = 200
BINS = 10
FOLDS = 5


def oracle_scores(features: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Out-of-fold scores of a classifier trained on the generator itself (article-grouped folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = group_folds(groups, FOLDS, seed=0)
    out = np.zeros(len(y))
    for k in range(FOLDS):
        test = folds == k
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        out[test] = model.fit(features[~test], y[~test]).decision_function(features[test])
    return out


def densities(human: np.ndarray, machine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.quantile(np.r_[human, machine], np.linspace(0, 1, BINS + 1)[1:-1])
    p = np.bincount(np.searchsorted(edges, human), minlength=BINS) / len(human)
    q = np.bincount(np.searchsorted(edges, machine), minlength=BINS) / len(machine)
    return p, q


def bounds(p: np.ndarray, q: np.ndarray, pi: float, n: int) -> dict:
    """95% population-interval width, corpus RMSE (both as shares) and the n for a 10-point width."""
    m = (1 - pi) * p + pi * q
    info = float(((q - p) ** 2 / np.maximum(m, 1e-12)).sum())
    post = pi * q / np.maximum(m, 1e-12)
    corpus_rmse = float(np.sqrt((m * post * (1 - post)).sum() / n))
    return {"pi": pi, "fisher": info, "population_width": 2 * 1.96 / np.sqrt(n * info),
            "perfect_width": 2 * 1.96 * np.sqrt(pi * (1 - pi) / n), "n_for_width_10": (2 * 1.96 / 0.10) ** 2 / info,
            "corpus_rmse": corpus_rmse}


def main() -> None:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--features-cache", type=Path, default=None, help="npz of MiniLM/style features (see eval_detect_dev)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/collapseguard_detect_dev"))
    ap.add_argument("--out", default="prevalence_bound.json")
    args = ap.parse_args()
    rows = []
    for domain in DOMAINS:
        _, _, mix_h, mix_m = split_domain(load_domain(Path(args.data), domain))
        for gen, machine in mix_m.items():
            texts = [normalise_whitespace(t) for t in mix_h + machine]
            blocks = feature_blocks(texts, {"embeddings", "style"}, args.features_cache, args.cache, None)
            x = np.nan_to_num(np.hstack([blocks["embeddings"], blocks["style"]]))
            y = np.r_[np.zeros(len(mix_h)), np.ones(len(machine))]
            s = oracle_scores(x, y, source_groups(texts))
            p, q = densities(s[y == 0], s[y == 1])
            row = {"domain": domain, "generator": gen, "human": len(mix_h), "machine": len(machine),
                   "oracle_auroc": float(roc_auc_score(y, s)), "bounds": [bounds(p, q, pi, N_DOCS) for pi in SHARES]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(args.out).write_text(json.dumps({"documents": N_DOCS, "rows": rows}, indent=1))
    print(table(rows))


def table(rows: list[dict]) -> str:
    pts = lambda x: f"{100 * x:.1f}"  # noqa: E731
    head = " | ".join(f"{int(100 * pi)}%: width ≥ / corpus RMSE ≥ / n for 10" for pi in SHARES)
    lines = [f"| domain | generator | oracle AUROC | {head} |", "|---|---|---:|" + "---|" * len(SHARES)]
    for r in rows:
        cells = [f"{pts(b['population_width'])} / {pts(b['corpus_rmse'])} / {b['n_for_width_10']:,.0f}" for b in r["bounds"]]
        lines.append(f"| {r['domain']} | {r['generator']} | {r['oracle_auroc']:.3f} | {' | '.join(cells)} |")
    perfect = " | ".join(f"{pts(b['perfect_width'])} / 0 / {(2 * 1.96 / 0.10) ** 2 * b['pi'] * (1 - b['pi']):,.0f}"
                         for b in rows[0]["bounds"])
    lines.append(f"| any | a perfect classifier | 1.000 | {perfect} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
