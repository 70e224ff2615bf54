"""Gen-0 perplexity detectors on detect-dev (Fast-DetectGPT's data), per domain and generator.

1. Load the Gen-0 model --model DIR, a folder written by `collapseguard gen0 train`, e.g.
       collapseguard gen0 train --corpus ../shared/data/wikitext-2 --preset mini --block-size 128 \
           --max-blocks 4000 --epochs 2 --threads 1 --out /tmp/gen0_wt2_mini
2. Score the first --pairs human/machine pairs of each detect-dev file with gen0_ppl_v1 (all
   scores in one pass: Fast-DetectGPT discrepancy, mean log-prob, GLTR log-rank, entropy).
3. Split pairs three ways by a hash of the human text (the same human text sits in several
   files, so the split follows the text, never the index): `fit` (the combined logistic
   detector), `calib` (thresholds: the (1 - FPR) quantile of its human scores, all domains
   pooled), `report` (every figure printed). No threshold is tuned on reported texts.

With --embeddings, a supervised reference is added: a logistic regression on the offline
MiniLM sentence embeddings (extra `embeddings`), fitted on the `fit` split like the combined one.

    nice .venv/bin/python benchmarks/eval_detect_dev.py --model DIR [--pairs 120] [--embeddings]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCORES = ("fast_detectgpt", "log_prob", "log_rank", "entropy")


def split_of(text: str) -> str:
    return ("fit", "calib", "report")[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3]


def load_pairs(n_pairs: int) -> list[dict]:
    rows = []
    for f in sorted((DATA / "detect-dev").glob("*.raw_data.json")):
        domain, generator = f.name.removesuffix(".raw_data.json").split("_", 1)
        blob = json.loads(f.read_text(encoding="utf-8"))
        for human, machine in list(zip(blob["original"], blob["sampled"], strict=True))[:n_pairs]:
            rows.append({"domain": domain, "generator": generator, "human": human, "machine": machine,
                         "split": split_of(human)})
    return rows


def embedding_logistic(texts: list[str], fit: list[dict]) -> dict:
    """A supervised reference: logistic regression on offline MiniLM embeddings, fitted on `fit` pairs only."""
    from sklearn.linear_model import LogisticRegression

    from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

    t0 = time.perf_counter()
    emb = dict(zip(texts, SentenceEmbedder().encode(texts), strict=True))
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    x = np.array([emb[r[k]] for k in ("human", "machine") for r in fit])
    y = np.r_[np.zeros(len(fit)), np.ones(len(fit))]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
    return dict(zip(texts, clf.decision_function(np.array([emb[t] for t in texts])), strict=True))


def figures(h, m, thresholds) -> dict:
    from collapseguard.detectors.evaluation import auroc

    h, m = np.asarray(h), np.asarray(m)
    out = {"n_human": len(h), "n_machine": len(m), "auroc": auroc(h, m)}
    for f, t in thresholds.items():
        out[f"tpr@{f}"] = float(np.mean(np.nan_to_num(m, nan=-np.inf) > t))
        out[f"fpr@{f}"] = float(np.mean(h[~np.isnan(h)] > t))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=120, help="pairs per detect-dev file")
    ap.add_argument("--model", type=Path, required=True, help="Gen-0 folder written by `collapseguard gen0 train`")
    ap.add_argument("--max-text-tokens", type=int, default=160)
    ap.add_argument("--out", type=Path, default=None, help="write all figures as JSON")
    ap.add_argument("--embeddings", action="store_true", help="add a logistic regression on offline MiniLM embeddings")
    args = ap.parse_args()
    if not (DATA / "detect-dev").is_dir():
        print(f"skip: {DATA / 'detect-dev'} not present")
        return
    from collapseguard.detectors.calibration import threshold_for_fpr
    from collapseguard.detectors.combine import CombinedDetector
    from collapseguard.detectors.lm.perplexity import (
        SCORE_SIGNS,
        Gen0PerplexityDetector,
        PerplexityConfig,
    )

    det = Gen0PerplexityDetector(PerplexityConfig(model_dir=str(args.model), min_tokens=16,
                                                  max_text_tokens=args.max_text_tokens, device="cpu"))
    rows = load_pairs(args.pairs)
    unique = sorted({r["human"] for r in rows} | {r["machine"] for r in rows})
    t0 = time.perf_counter()
    table = det.score_table(unique)
    print(f"scored {len(unique)} unique texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    fields = {"fast_detectgpt": "fast_detectgpt", "log_prob": "mean_log_prob", "log_rank": "mean_log_rank", "entropy": "mean_entropy"}
    score = {k: {t: SCORE_SIGNS[k] * getattr(s, fields[k]) for t, s in zip(unique, table, strict=True)} for k in SCORES}

    # Combined (logistic on the four signed scores), fitted on the `fit` split only.
    comb = CombinedDetector([det], "logistic")
    mat = lambda texts: np.array([[score[k][t] for k in SCORES] for t in texts])  # noqa: E731
    fit = [r for r in rows if r["split"] == "fit"]
    comb.fit_scores(mat([r["human"] for r in fit]), mat([r["machine"] for r in fit]))
    score["combined_logistic"] = dict(zip(unique, comb.combine(mat(unique)), strict=True))

    if args.embeddings:
        score["embedding_logistic"] = embedding_logistic(unique, fit)

    calib_h = sorted({r["human"] for r in rows if r["split"] == "calib"})
    report = [r for r in rows if r["split"] == "report"]
    results = {"n_calib_human": len(calib_h), "n_report_pairs": len(report), "pairs_per_file": args.pairs,
               "max_text_tokens": args.max_text_tokens, "by": {}}
    for name, s in score.items():
        thresholds = {f: threshold_for_fpr([s[t] for t in calib_h], f) for f in (0.05, 0.01)}
        per = {}
        for slice_name in ("domain", "generator"):
            for g in sorted({r[slice_name] for r in report}):
                sel = [r for r in report if r[slice_name] == g]
                hs = sorted({r["human"] for r in sel})  # a human text counts once per slice
                per[f"{slice_name}={g}"] = figures([s[t] for t in hs], [s[r["machine"]] for r in sel], thresholds)
        hs = sorted({r["human"] for r in report})
        per["all"] = figures([s[t] for t in hs], [s[r["machine"]] for r in report], thresholds)
        results["by"][name] = per
    print(f"calibration human texts: {len(calib_h)}; report pairs: {len(report)}")
    for name, per in results["by"].items():
        print(f"\n### {name}\n\n| slice | n_h | n_m | AUROC | TPR@1% | FPR@1% (report) | TPR@5% | FPR@5% (report) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
        for key, v in per.items():
            print(f"| {key} | {v['n_human']} | {v['n_machine']} | {v['auroc']:.3f} | {v['tpr@0.01']:.3f} | "
                  f"{v['fpr@0.01']:.3f} | {v['tpr@0.05']:.3f} | {v['fpr@0.05']:.3f} |")
    if args.out:
        from collapseguard.io.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
