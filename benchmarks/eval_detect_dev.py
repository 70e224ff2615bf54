"""Detectors on detect-dev (Fast-DetectGPT's data) on generators and domains they never saw.

1. Load the first --pairs human/machine pairs of each `<domain>_<generator>.raw_data.json` in
   --data DIR/detect-dev (an error if the folder is missing), whitespace-normalised: the human
   texts lost their line breaks in preprocessing and the machine texts kept them, a label leak
   (line breaks alone: AUROC 0.96) that --keep-layout shows.
2. Compute every feature ONCE and cache it under --cache (npz, keyed by the texts' sha256):
   the Gen-0 scores (gen0_ppl_v1 with --model DIR, first 160 tokens, all four scores in one
   pass), MiniLM embeddings and the stylometric features -- exactly what `learned_v1` computes.
3. Grouped cross-validation: leave one generator out (5 folds) and, separately, leave one
   domain out (3 folds). In each fold the training groups' pairs are split by a hash of the
   human text into `fit` (2/3: fits the model) and `calib` (1/3: the threshold is the
   (1 - FPR) quantile of its human scores); the held-out group is never seen. Training rows
   whose human text also occurs in the held-out group are dropped (the same human text sits
   in several generator files). Figures on the held-out group: AUROC, TPR at the 1% threshold,
   and the FPR that threshold actually gives on the held-out human text.
4. With the calibration drift record (`collapseguard.detectors.drift`) made on the `calib`
   human texts, whether the out-of-domain warning fires on the held-out group (it should on
   unseen domains, where thresholds break, and stay silent on unseen generators).

Detectors: `fast_detectgpt` (zero-shot; only its threshold uses the training groups),
`combined_v1` (logistic on the four Gen-0 scores) and `learned_v1` for every --models class
and --feature-sets set.

    collapseguard gen0 train --corpus ../shared/data/wikitext-2 --preset mini --block-size 128 \
        --max-blocks 4000 --epochs 2 --threads 1 --out /tmp/gen0_wt2_mini
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/eval_detect_dev.py --model /tmp/gen0_wt2_mini --out cv.json
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
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FPR = 0.01
FEATURE_SETS = ("gen0", "style", "embeddings", "gen0,style", "embeddings,style", "gen0,embeddings,style")
MODELS = ("logistic", "gbm", "mlp")


def split_of(text: str) -> str:
    """fit (2/3) or calib (1/3), by a hash of the human text."""
    return ("fit", "fit", "calib")[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3]


def load_pairs(data: Path, n_pairs: int, keep_layout: bool = False) -> list[dict]:
    """Pairs of every detect-dev file, whitespace-normalised unless keep_layout."""
    from collapseguard.detectors.learned import normalise_whitespace

    folder = data / "detect-dev"
    files = sorted(folder.glob("*.raw_data.json")) if folder.is_dir() else []
    if not files:
        sys.exit(f"error: no detect-dev *.raw_data.json files under {folder}; pass --data DIR (the folder holding detect-dev/)")
    rows = []
    for f in files:
        domain, generator = f.name.removesuffix(".raw_data.json").split("_", 1)
        blob = json.loads(f.read_text(encoding="utf-8"))
        for human, machine in list(zip(blob["original"], blob["sampled"], strict=True))[:n_pairs]:
            if not keep_layout:  # human texts lost their line breaks in preprocessing, machine texts did not
                human, machine = normalise_whitespace(human), normalise_whitespace(machine)
            rows.append({"domain": domain, "generator": generator, "human": human, "machine": machine,
                         "split": split_of(human)})
    return rows


def cached(cache: Path, kind: str, texts: list[str], compute) -> np.ndarray:
    """compute(texts) once per (kind, texts); later runs read the npz."""
    from collapseguard.detectors.calibration import texts_sha256

    path = cache / f"{kind}_{texts_sha256(texts)[:16]}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return z["x"]
    t0 = time.perf_counter()
    x = np.asarray(compute(texts), dtype=np.float64)
    print(f"{kind}: {len(texts)} texts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x)
    return x


def feature_blocks(texts: list[str], gen0_dir: Path, cache: Path) -> dict[str, np.ndarray]:
    from collapseguard.detectors.learned import FeatureExtractor
    from collapseguard.detectors.style import style_features

    ext = FeatureExtractor("gen0,embeddings,style" if gen0_dir else "embeddings,style", str(gen0_dir) if gen0_dir else None)
    out = {
        "embeddings": cached(cache, "embeddings", texts, lambda t: ext.embedder().encode(t)),
        "style": cached(cache, "style", texts, style_features),
    }
    if gen0_dir:
        out["gen0"] = cached(cache, "gen0", texts, lambda t: ext.gen0().features(t)[:, :4])
    return out


def folds(rows: list[dict], by: str):
    """(held-out group, training-fit rows, training-calib human texts, held-out rows)."""
    for g in sorted({r[by] for r in rows}):
        held = [r for r in rows if r[by] == g]
        held_h = {r["human"] for r in held}
        train = [r for r in rows if r[by] != g and r["human"] not in held_h]
        fit = [r for r in train if r["split"] == "fit"]
        calib = sorted({r["human"] for r in train if r["split"] == "calib"})
        yield g, fit, calib, held


def fold_figures(score: dict, calib: list[str], held: list[dict]) -> dict:
    from collapseguard.detectors.calibration import threshold_for_fpr
    from collapseguard.detectors.evaluation import auroc

    t = threshold_for_fpr([score[x] for x in calib], FPR)
    h = np.array([score[x] for x in sorted({r["human"] for r in held})])
    m = np.array([score[r["machine"]] for r in held])
    out = {"auroc": auroc(h, m), "tpr": float(np.mean(np.nan_to_num(m, nan=-np.inf) > t)),
           "fpr": float(np.mean(h[~np.isnan(h)] > t)), "n_human": len(h), "n_machine": len(m)}
    # What the user's own human text buys: a threshold from the held-out group's `calib` human
    # texts (no labels needed), applied to its other pairs.
    own = sorted({r["human"] for r in held if r["split"] == "calib"})
    rest = [r for r in held if r["split"] == "fit"]
    t_own = threshold_for_fpr([score[x] for x in own], FPR)
    h2 = np.array([score[x] for x in sorted({r["human"] for r in rest})])
    m2 = np.array([score[r["machine"]] for r in rest])
    out.update(fpr_own=float(np.mean(h2[~np.isnan(h2)] > t_own)), tpr_own=float(np.mean(np.nan_to_num(m2, nan=-np.inf) > t_own)),
               n_own_calib=len(own))
    return out


def learned_scorer(blocks: dict, index: dict, feature_set: str, model: str):
    """fit(fit_rows) -> {text: score} for every text, with learned_v1's own fit and scoring code."""
    from collapseguard.detectors.learned import decision, fit_model

    x_all = np.column_stack([blocks[f] for f in ("gen0", "embeddings", "style") if f in feature_set.split(",")])

    def fit(rows):
        texts = [r["human"] for r in rows] + [r["machine"] for r in rows]
        x = x_all[[index[t] for t in texts]]
        y = np.r_[np.zeros(len(rows)), np.ones(len(rows))]
        keep = ~np.isnan(x).any(axis=1)
        params = fit_model(x[keep], y[keep], model, seed=0)
        return decision(x_all, params, model)
    return fit


def combined_scorer(blocks: dict, index: dict):
    from collapseguard.detectors.combine import CombinedDetector

    class _Member:
        name = "gen0_ppl_v1"

    def fit(rows):
        comb = CombinedDetector([_Member()], "logistic")
        g = blocks["gen0"]
        comb.fit_scores(g[[index[r["human"]] for r in rows]], g[[index[r["machine"]] for r in rows]])
        return comb.combine(g)
    return fit


def drift_fires(blocks: dict, index: dict, calib: list[str], held: list[dict]) -> dict | None:
    try:
        from collapseguard.detectors.drift import domain_record_from_features, drift_report
    except ImportError:
        return None
    ref = domain_record_from_features(blocks["style"][[index[t] for t in calib]],
                                      blocks["embeddings"][[index[t] for t in calib]], calib)
    texts = sorted({r["human"] for r in held} | {r["machine"] for r in held})
    rep = drift_report(ref, blocks["style"][[index[t] for t in texts]], blocks["embeddings"][[index[t] for t in texts]], texts)
    return {"fires": rep["warn"], "outside_share": rep["outside_share"], "expected": rep["expected_outside"]}


def own_part(text: str) -> str:
    """A second, independent three-way split of a held-out group: labelled / calib / report."""
    return ("labelled", "calib", "report")[int(hashlib.sha256(b"own:" + text.encode()).hexdigest(), 16) % 3]


def own_labelled_figures(make, index, fit, held) -> dict:
    """The held-out domain with a third of its pairs labelled by the user: train on the other
    domains plus that third, threshold from another third's human texts, report on the last."""
    from collapseguard.detectors.calibration import threshold_for_fpr
    from collapseguard.detectors.evaluation import auroc

    part = {r["human"]: own_part(r["human"]) for r in held}
    scores = dict(zip(index, make(fit + [r for r in held if part[r["human"]] == "labelled"]), strict=True))
    t = threshold_for_fpr([scores[h] for h in sorted({r["human"] for r in held if part[r["human"]] == "calib"})], FPR)
    rep = [r for r in held if part[r["human"]] == "report"]
    h = np.array([scores[x] for x in sorted({r["human"] for r in rep})])
    m = np.array([scores[r["machine"]] for r in rep])
    return {"auroc": auroc(h, m), "tpr": float(np.mean(np.nan_to_num(m, nan=-np.inf) > t)),
            "fpr": float(np.mean(h[~np.isnan(h)] > t)), "n_human": len(h), "n_machine": len(m)}


def run_own_labelled(rows, index, scorers: dict) -> dict:
    out = {}
    fold_list = list(folds(rows, "domain"))
    for name, make in scorers.items():
        per = {g: own_labelled_figures(make, index, fit, held) for g, fit, _calib, held in fold_list}
        out[name] = per
        print(f"domain+own {name:38s} auroc {np.mean([v['auroc'] for v in per.values()]):.3f} "
              f"tpr@1% {np.mean([v['tpr'] for v in per.values()]):.3f} worst fpr {max(v['fpr'] for v in per.values()):.3f}",
              file=sys.stderr, flush=True)
    return out


def run_cv(rows, blocks, index, scorers: dict) -> dict:
    out = {}
    for by in ("generator", "domain"):
        fold_list = list(folds(rows, by))
        for name, make in scorers.items():
            per = {}
            for g, fit, calib, held in fold_list:
                scores = make(fit)
                per[g] = fold_figures(dict(zip(index, scores, strict=True)), calib, held)
                if name == next(iter(scorers)):  # the warning depends on the texts, not the detector
                    per[g]["drift"] = drift_fires(blocks, index, calib, held)
            out.setdefault(by, {})[name] = per
            mean = {k: float(np.mean([v[k] for v in per.values()])) for k in ("auroc", "tpr", "fpr", "tpr_own", "fpr_own")}
            print(f"{by:9s} {name:38s} auroc {mean['auroc']:.3f} tpr@1% {mean['tpr']:.3f} fpr {mean['fpr']:.3f} "
                  f"(worst fpr {max(v['fpr'] for v in per.values()):.3f}) | own-calib tpr {mean['tpr_own']:.3f} "
                  f"fpr {mean['fpr_own']:.3f}", file=sys.stderr, flush=True)
    return out


def print_tables(results: dict) -> None:
    for by, per_det in results.items():
        groups = sorted(next(iter(per_det.values())))
        print(f"\n### held out: {by} (AUROC / TPR@1% / FPR achieved at the 1% threshold)\n")
        print("| detector | " + " | ".join(groups) + " | mean AUROC | mean TPR | worst FPR | with own human calibration: mean TPR / worst FPR |")
        print("|---|" + "---:|" * (len(groups) + 4))
        for name, per in per_det.items():
            cells = [f"{per[g]['auroc']:.3f} / {per[g]['tpr']:.3f} / {per[g]['fpr']:.3f}" for g in groups]
            own = (f"{np.mean([per[g]['tpr_own'] for g in groups]):.3f} / {max(per[g]['fpr_own'] for g in groups):.3f}"
                   if "tpr_own" in per[groups[0]] else "")
            print(f"| {name} | " + " | ".join(cells) + f" | {np.mean([per[g]['auroc'] for g in groups]):.3f} | "
                  f"{np.mean([per[g]['tpr'] for g in groups]):.3f} | {max(per[g]['fpr'] for g in groups):.3f} | {own} |")
        drift = {g: v["drift"] for g, v in next(iter(per_det.values())).items() if v.get("drift")}
        if drift:
            print("\nout-of-domain warning on the held-out group: " + "; ".join(
                f"{g}: {'fires' if d['fires'] else 'silent'} ({d['outside_share']:.0%} outside, expected {d['expected']:.0%})"
                for g, d in drift.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding detect-dev/ (default ../shared/data)")
    ap.add_argument("--pairs", type=int, default=120, help="pairs per detect-dev file")
    ap.add_argument("--model", type=Path, default=None,
                    help="Gen-0 folder written by `collapseguard gen0 train` (without it: no gen0 features, no zero-shot rows)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/collapseguard_detect_dev"), help="feature cache folder")
    ap.add_argument("--models", default=",".join(MODELS), help="learned_v1 model classes to try")
    ap.add_argument("--feature-sets", default=";".join(FEATURE_SETS), help="';'-separated learned_v1 feature sets")
    ap.add_argument("--keep-layout", action="store_true",
                    help="keep line breaks (the human texts lost theirs in preprocessing: a label leak)")
    ap.add_argument("--out", type=Path, default=None, help="write all figures as JSON")
    args = ap.parse_args()
    rows = load_pairs(args.data, args.pairs, args.keep_layout)
    if args.model is not None and not args.model.is_dir():
        sys.exit(f"error: {args.model}: no Gen-0 model folder; train one with `collapseguard gen0 train` (see the docstring)")
    import torch

    torch.set_num_threads(1)
    texts = sorted({r["human"] for r in rows} | {r["machine"] for r in rows})
    index = {t: i for i, t in enumerate(texts)}
    blocks = feature_blocks(texts, args.model, args.cache)
    scorers = {}
    if "gen0" in blocks:
        scorers = {"fast_detectgpt": lambda fit: blocks["gen0"][:, 0], "combined_v1": combined_scorer(blocks, index)}
    for fs in args.feature_sets.split(";"):
        if "gen0" in fs and "gen0" not in blocks:
            continue
        for model in args.models.split(","):
            scorers[f"learned_v1 {model} [{fs}]"] = learned_scorer(blocks, index, fs, model)
    results = run_cv(rows, blocks, index, scorers)
    results["domain, a third of its pairs labelled"] = run_own_labelled(rows, index, scorers)
    print_tables(results)
    if args.out:
        from collapseguard.io.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps({"pairs_per_file": args.pairs, "fpr": FPR, "results": results}, indent=1))


if __name__ == "__main__":
    main()
