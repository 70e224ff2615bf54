"""learned_v1 on detect-dev and detect-dev-gpt3to4 with folds that keep each source article whole.

The five generator files of a detect-dev domain reuse the same source articles, each cut at a
different length, and every machine text continues its human text's opening words (the gpt3to4
files reuse detect-dev's xsum and writing articles too). A split by exact human text leaves the
same article on both sides; figures measured on it are inflated (the "withdrawn protocol" row
below shows by how much). So:

1. Load every `<domain>_<generator>.raw_data.json` pair of --data DIR/detect-dev and
   DIR/detect-dev-gpt3to4 (the first --pairs of each file; default all), whitespace-normalised
   (the human texts lost their line breaks in preprocessing, the machine texts kept them: a
   label leak, AUROC 0.96 from line breaks alone).
2. Group ALL texts by source (`collapseguard.detectors.grouping.source_groups`, then each
   pair's two texts joined: they share a prompt by construction).
3. Protocols, each a list of folds whose held-out texts share no group with its training texts:
   - generator: each of the 8 generators held out. The source groups are cut in two halves
     (seeded, whole groups); train on the other generators' pairs of half A, test on the held-out
     generator's pairs of half B (its articles never seen, its generator never seen);
   - domain: each of the 4 domains held out (groups never span domains); also "own human
     calibration": the threshold from half of the held-out domain's groups' human texts (no
     labels), reported on the other half;
   - fresh: grouped 5-fold over everything (new articles of known generators and domains).
   Inside every training side, fit (2/3) and calibration (1/3) are whole groups too
   (`group_split`): the model fits on the first, the threshold is the 99th percentile of the
   second's human scores. The model's regularisation is the class's middle setting, or with
   --select what `detect train` chooses (`learned.select_model`, `train_learned`'s defaults:
   grouped CV over the fit part's texts and source groups; the calibration part never takes
   part); the JSON keeps each fold's choice and inner CV figures. Figures on the held-out side:
   AUROC, TPR at that threshold, the FPR it gives on the held-out human texts (with their count n).
4. The withdrawn protocol, once, for the first scorer: detect-dev only, first 120 pairs per file,
   fit/calibration split by a hash of the exact human text (what earlier figures used), reported
   on its own calibration split and on detect-dev articles past index 120 that it never saw.

Features: MiniLM embeddings, the static embeddings distilled from MiniLM and the stylometric
features, exactly what `learned_v1` computes (`FeatureExtractor`), read from --features-cache
(npz: sha, embeddings, style; sha256 of the whitespace-normalised text) where it has them; the
rest are computed (and cached under --cache; static: the table is distilled once per run, ~25 s).
Gen-0 features only with --model DIR (a Gen-0 folder).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/eval_detect_dev.py \
        --features-cache /work/cache/features.npz --out grouped_cv.json
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
FOLDERS = ("detect-dev", "detect-dev-gpt3to4")
FPR = 0.01
FEATURE_SETS = ("static,style", "embeddings,style", "static", "embeddings", "style")
MODELS = ("mlp", "gbm", "logistic")
WITHDRAWN_PAIRS = 120


# --- data ----------------------------------------------------------------------------------------
def load_pairs(data: Path, n_pairs: int | None, keep_layout: bool = False) -> list[dict]:
    """Pairs of every file of both folders (whitespace-normalised unless keep_layout)."""
    from collapseguard.detectors.learned import normalise_whitespace

    files = [f for d in FOLDERS if (data / d).is_dir() for f in sorted((data / d).glob("*.raw_data.json"))]
    if not any(f.parent.name == "detect-dev" for f in files):
        sys.exit(f"error: no detect-dev *.raw_data.json files under {data / 'detect-dev'}; "
                 "pass --data DIR (the folder holding detect-dev/)")
    rows = []
    for f in files:
        domain, generator = f.name.removesuffix(".raw_data.json").split("_", 1)
        blob = json.loads(f.read_text(encoding="utf-8"))
        for i, (human, machine) in enumerate(list(zip(blob["original"], blob["sampled"], strict=True))[:n_pairs]):
            if not keep_layout:
                human, machine = normalise_whitespace(human), normalise_whitespace(machine)
            rows.append({"folder": f.parent.name, "domain": domain, "generator": generator, "index": i,
                         "human": human, "machine": machine})
    return rows


class Corpus:
    """Unique texts, their source groups, and pairs as index arrays."""

    def __init__(self, rows: list[dict]):
        from collapseguard.detectors.grouping import UnionFind, source_groups

        self.rows = rows
        self.texts = list(dict.fromkeys([t for r in rows for t in (r["human"], r["machine"])]))
        index = {t: i for i, t in enumerate(self.texts)}
        self.h = np.array([index[r["human"]] for r in rows])
        self.m = np.array([index[r["machine"]] for r in rows])
        self.domain = np.array([r["domain"] for r in rows])
        self.generator = np.array([r["generator"] for r in rows])
        self.folder = np.array([r["folder"] for r in rows])
        self.pair_index = np.array([r["index"] for r in rows])
        t0 = time.perf_counter()
        groups = source_groups(self.texts)
        uf = UnionFind(len(self.texts))  # a pair shares its prompt: one group, always
        for a, b in zip(groups[self.h].tolist(), groups[self.m].tolist()):
            uf.union(a, b)
        self.groups = uf.roots()[groups]
        self.pair_group = self.groups[self.h]
        print(f"{len(rows)} pairs, {len(self.texts)} unique texts, {len(np.unique(self.groups))} source groups "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    def disjoint_train(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        """`train` without the pairs whose source group has a held-out pair."""
        return train & ~np.isin(self.pair_group, np.unique(self.pair_group[test]))


# --- features ------------------------------------------------------------------------------------
def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def feature_blocks(texts: list[str], needed: set, features_cache: Path | None, cache: Path,
                   gen0_dir: Path | None) -> dict:
    """Feature set (those `needed`) -> (n, k) float64 matrix, from the cache file where it has the text."""
    from collapseguard.detectors.learned import FeatureExtractor
    from collapseguard.detectors.style import FEATURE_NAMES, style_features

    ext = FeatureExtractor("gen0,embeddings,style" if gen0_dir else "embeddings,style",
                           str(gen0_dir) if gen0_dir else None)
    shas = [text_sha(t) for t in texts]
    stored = {}
    if features_cache is not None:
        with np.load(features_cache, allow_pickle=False) as z:
            row = {s: i for i, s in enumerate(z["sha"].tolist())}
            stored = {"embeddings": z["embeddings"], "style": z["style"], "row": row}
        if stored["style"].shape[1] != len(FEATURE_NAMES):
            print(f"{features_cache}: style has {stored['style'].shape[1]} columns, now {len(FEATURE_NAMES)}: "
                  "recomputing style", file=sys.stderr)
            stored.pop("style")
    compute = {"embeddings": lambda t: ext.embedder().encode(t), "style": style_features,
               "static": lambda t: ext.static_embedder().encode(t)}
    compute = {k: v for k, v in compute.items() if k in needed}
    out = {}
    for kind, fn in compute.items():
        have = [stored["row"].get(s) for s in shas] if kind in stored else [None] * len(texts)
        missing = [i for i, r in enumerate(have) if r is None]
        x = np.zeros((len(texts), 0))
        if len(missing) < len(texts):
            x = np.asarray(stored[kind][[r if r is not None else 0 for r in have]], dtype=np.float64)
        if missing:
            new = cached(cache, kind, [texts[i] for i in missing], fn)
            if x.shape[1] == 0:
                x = np.zeros((len(texts), new.shape[1]))
            x[missing] = new
        print(f"{kind}: {len(texts) - len(missing)} from the cache file, {len(missing)} computed", file=sys.stderr)
        out[kind] = x
    if "gen0" in needed:
        out["gen0"] = cached(cache, "gen0", texts, lambda t: ext.gen0().features(t)[:, :4])
    return out


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


# --- folds ---------------------------------------------------------------------------------------
def halves(c: Corpus, seed: int) -> np.ndarray:
    """A 0/1 half per pair, by whole source groups (seeded)."""
    from collapseguard.detectors.grouping import group_split

    return group_split(c.pair_group, 0.5, seed).astype(int)


def protocol_folds(c: Corpus, protocol: str, seed: int = 0):
    """(fold name, training pairs, held-out pairs) of a protocol; no group on both sides."""
    from collapseguard.detectors.grouping import group_folds

    every = np.ones(len(c.rows), dtype=bool)
    if protocol == "generator":
        half = halves(c, seed)
        for g in sorted(set(c.generator.tolist())):
            test = (c.generator == g) & (half == 1)
            yield g, c.disjoint_train((c.generator != g) & (half == 0), test), test
    elif protocol == "domain":
        for d in sorted(set(c.domain.tolist())):
            test = c.domain == d
            yield d, c.disjoint_train(~test, test), test
    elif protocol == "fresh":
        folds = group_folds(c.pair_group, 5, seed)
        for f in range(5):
            test = folds == f
            yield f"fold {f}", c.disjoint_train(every & ~test, test), test
    else:
        raise ValueError(protocol)


def fit_calib_split(c: Corpus, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs -> (fit pairs, calibration pairs), whole groups each (2/3, 1/3)."""
    from collapseguard.detectors.grouping import group_split

    idx = np.flatnonzero(train)
    fit = group_split(c.pair_group[idx], 2 / 3, seed)
    a, b = np.zeros(len(c.rows), bool), np.zeros(len(c.rows), bool)
    a[idx[fit]], b[idx[~fit]] = True, True
    return a, b


# --- scoring -------------------------------------------------------------------------------------
def train_defaults() -> dict:
    """`detect train`'s selection settings: the defaults of `train_learned` (cv_folds, criterion, seed)."""
    import inspect

    from collapseguard.detectors.learned import train_learned

    params = inspect.signature(train_learned).parameters
    return {k: params[k].default for k in ("cv_folds", "criterion", "seed")}


def learned_scorer(blocks: dict, feature_set: str, model: str, groups: np.ndarray, select: bool = False):
    """fit(human ids, machine ids) -> (scores of every text, selection record or None), with
    learned_v1's own fit and decision (`groups`: a source group per text id, for the selection).

    With `select` the regularisation is chosen as `detect train` chooses it (`select_model` with
    `train_learned`'s defaults), by grouped CV over the fit texts alone; inner folds never split
    a group. Without, the class's middle setting."""
    from collapseguard.detectors.learned import FEATURE_SETS as ORDER
    from collapseguard.detectors.learned import decision, fit_model, select_model

    x_all = np.column_stack([blocks[f] for f in ORDER if f in feature_set.split(",")])
    settings = train_defaults()

    def fit(h_ids: np.ndarray, m_ids: np.ndarray) -> tuple[np.ndarray, dict | None]:
        ids = np.r_[h_ids, m_ids]
        x, y = x_all[ids], np.r_[np.zeros(len(h_ids)), np.ones(len(m_ids))]
        keep = ~np.isnan(x).any(axis=1)
        chosen, strength, record = model, None, None
        if select:
            t0 = time.perf_counter()
            chosen, strength, record = select_model(x[keep], y[keep], groups[ids][keep], model,
                                                    settings["cv_folds"], settings["criterion"], settings["seed"])
            record["seconds"] = round(time.perf_counter() - t0, 1)
        params = fit_model(x[keep], y[keep], chosen, seed=settings["seed"], strength=strength)
        return decision(x_all, params, chosen), record
    return fit


def figures(scores: np.ndarray, threshold: float, h_ids, m_ids) -> dict:
    from collapseguard.detectors.evaluation import auroc

    h, m = scores[np.unique(h_ids)], scores[np.unique(m_ids)]
    return {"auroc": auroc(h, m), "tpr": float(np.mean(np.nan_to_num(m, nan=-np.inf) > threshold)),
            "fpr": float(np.mean(h[~np.isnan(h)] > threshold)), "n_human": len(h), "n_machine": len(m)}


def run_fold(c: Corpus, make, train: np.ndarray, test: np.ndarray, seed: int) -> tuple[dict, np.ndarray, float]:
    """Fit on the fit groups, threshold from the calibration groups' human texts, figures on `test`."""
    from collapseguard.detectors.calibration import threshold_for_fpr

    fit, calib = fit_calib_split(c, train, seed)
    scores, selection = make(np.unique(c.h[fit]), np.unique(c.m[fit]))  # selection sees the fit part only
    cal_h = scores[np.unique(c.h[calib])]
    t = threshold_for_fpr(cal_h[~np.isnan(cal_h)], FPR)
    out = figures(scores, t, c.h[test], c.m[test])
    out.update(n_fit_pairs=int(fit.sum()), n_calib_human=len(np.unique(c.h[calib])))
    if selection is not None:
        out["selection"] = selection
    return out, scores, t


def own_calibration(c: Corpus, scores: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """Held-out domain, threshold from half of its groups' human texts, figures on the other half."""
    from collapseguard.detectors.calibration import threshold_for_fpr
    from collapseguard.detectors.grouping import group_split

    idx = np.flatnonzero(test)
    own = group_split(c.pair_group[idx], 0.5, seed + 1)
    h_own = scores[np.unique(c.h[idx[own]])]
    t = threshold_for_fpr(h_own[~np.isnan(h_own)], FPR)
    return figures(scores, t, c.h[idx[~own]], c.m[idx[~own]])


def run_protocol(c: Corpus, protocol: str, scorers: dict, seed: int) -> dict:
    out = {}
    folds = list(protocol_folds(c, protocol, seed))
    for name, make in scorers.items():
        per, oof, thr = {}, np.full(len(c.texts), np.nan), np.full(len(c.texts), np.nan)
        for fold, train, test in folds:
            t0 = time.perf_counter()
            per[fold], scores, t = run_fold(c, make, train, test, seed)
            chosen = per[fold].get("selection", {}).get("chosen")
            print(f"  {protocol} {name} {fold}: AUROC {per[fold]['auroc']:.3f}"
                  + (f", chose {chosen['param']}={chosen['value']:g}" if chosen else "")
                  + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
            if protocol == "domain":
                per[fold]["own_calibration"] = own_calibration(c, scores, test, seed)
            ids = np.r_[c.h[test], c.m[test]]
            oof[ids], thr[ids] = scores[ids], t
        out[name] = {"folds": per}
        if protocol == "fresh":
            out[name]["slices"] = oof_slices(c, oof, thr)
        print(f"{protocol:9s} {name:34s} mean AUROC {mean(per, 'auroc'):.3f} TPR@1% {mean(per, 'tpr'):.3f} "
              f"worst FPR {worst(per):.3f}", file=sys.stderr, flush=True)
    return out


def oof_slices(c: Corpus, oof: np.ndarray, thr: np.ndarray) -> dict:
    """Per domain and generator on out-of-fold scores, each text against its own fold's threshold
    (AUROC pools the folds' models)."""
    from collapseguard.detectors.evaluation import auroc

    out = {}
    for by, labels in (("domain", c.domain), ("generator", c.generator)):
        for g in sorted(set(labels.tolist())):
            sel = labels == g
            h, m = np.unique(c.h[sel]), np.unique(c.m[sel])
            out[f"{by}={g}"] = {"auroc": auroc(oof[h], oof[m]), "tpr": float(np.mean(oof[m] > thr[m])),
                                "fpr": float(np.mean(oof[h] > thr[h])), "n_human": len(h), "n_machine": len(m)}
    return out


def mean(per: dict, key: str) -> float:
    return float(np.mean([v[key] for v in per.values()]))


def worst(per: dict) -> float:
    return float(max(v["fpr"] for v in per.values()))


# --- the withdrawn protocol ----------------------------------------------------------------------
def hash_split(text: str) -> str:
    """The withdrawn split: fit (2/3) or calib (1/3) by a hash of the exact human text."""
    return ("fit", "fit", "calib")[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 3]


def withdrawn_protocol(c: Corpus, make, first_pairs: int = WITHDRAWN_PAIRS) -> dict:
    """Train/calibrate on the first 120 detect-dev pairs per file split by exact human text; report
    on its own calibration split (leaky) and on detect-dev articles past index 120 never seen."""
    from collapseguard.detectors.calibration import threshold_for_fpr

    first = (c.folder == "detect-dev") & (c.pair_index < first_pairs)
    part = np.array([hash_split(c.texts[i]) for i in c.h])
    fit, calib = first & (part == "fit"), first & (part == "calib")
    scores, _ = make(np.unique(c.h[fit]), np.unique(c.m[fit]))
    cal_h = scores[np.unique(c.h[calib])]
    t = threshold_for_fpr(cal_h[~np.isnan(cal_h)], FPR)
    fresh = c.disjoint_train((c.folder == "detect-dev") & (c.pair_index >= first_pairs), first)
    calib_groups = np.isin(c.pair_group[calib], c.pair_group[fit])
    return {"first_pairs": first_pairs, "own calibration split (leaky)": figures(scores, t, c.h[calib], c.m[calib]),
            "fresh detect-dev articles": figures(scores, t, c.h[fresh], c.m[fresh]),
            "calib pairs whose article is in the fit split": float(calib_groups.mean()) if calib.any() else None}


# --- tables --------------------------------------------------------------------------------------
def cell(v: dict) -> str:
    return f"{v['auroc']:.3f} / {v['tpr']:.3f} / {v['fpr']:.3f}"


def print_tables(results: dict) -> None:
    titles = {"generator": "unseen generator (articles unseen too)", "domain": "unseen domain",
              "fresh": "fresh articles (grouped 5-fold)"}
    for protocol, title in titles.items():
        per_det = results.get(protocol)
        if not per_det:
            continue
        first = next(iter(per_det.values()))["folds"]
        folds = list(first)
        print(f"\n### {title}: AUROC / TPR@1% / FPR at the 1% threshold (held-out human n)\n")
        print("| detector | " + " | ".join(f"{f} (n={first[f]['n_human']})" for f in folds)
              + " | mean AUROC | mean TPR | worst FPR |")
        print("|---|" + "---:|" * (len(folds) + 3))
        for name, res in per_det.items():
            per = res["folds"]
            print(f"| {name} | " + " | ".join(cell(per[f]) for f in folds)
                  + f" | {mean(per, 'auroc'):.3f} | {mean(per, 'tpr'):.3f} | {worst(per):.3f} |")
        for name, res in per_det.items():
            chosen = {f: v["selection"].get("chosen") for f, v in res["folds"].items() if "selection" in v}
            if chosen:
                print(f"\n{name}, strength chosen by grouped CV inside each fold's fit part: " + ", ".join(
                    f"{f} {v['param']}={v['value']:g}" if v else f"{f} default" for f, v in chosen.items()))
        if protocol == "domain":
            print("\nwith the held-out domain's own human texts as calibration (half its groups; reported on the other half):\n")
            print("| detector | " + " | ".join(folds) + " | mean TPR | worst FPR |")
            print("|---|" + "---:|" * (len(folds) + 2))
            for name, res in per_det.items():
                own = {f: res["folds"][f]["own_calibration"] for f in folds}
                print(f"| {name} | " + " | ".join(cell(own[f]) for f in folds)
                      + f" | {mean(own, 'tpr'):.3f} | {worst(own):.3f} |")
        if protocol == "fresh":
            slices = list(next(iter(per_det.values()))["slices"])
            print("\nper domain and generator (out-of-fold scores, each against its fold's threshold):\n")
            print("| detector | " + " | ".join(slices) + " |")
            print("|---|" + "---:|" * len(slices))
            for name, res in per_det.items():
                print(f"| {name} | " + " | ".join(cell(res["slices"][s]) for s in slices) + " |")
    w = results.get("withdrawn")
    if w:
        print(f"\n### withdrawn protocol ({w['scorer']}: first {w['first_pairs']} detect-dev pairs per file, "
              "fit/calibration split by exact human text)\n")
        share = w["calib pairs whose article is in the fit split"]
        print(f"calibration pairs whose source group is also in the fit split: {share:.1%}\n" if share is not None else "")
        print("| evaluated on | AUROC | TPR@1% | FPR | n human |\n|---|---:|---:|---:|---:|")
        for k in ("own calibration split (leaky)", "fresh detect-dev articles"):
            v = w[k]
            print(f"| {k} | {v['auroc']:.3f} | {v['tpr']:.3f} | {v['fpr']:.3f} | {v['n_human']} |")
    print("\nworst FPR over every fold of every protocol (promise 0.01):")
    for name in next(iter(results[p] for p in titles if results.get(p))):
        print(f"  {name}: " + ", ".join(f"{p} {worst(results[p][name]['folds']):.3f}" for p in titles if results.get(p)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding detect-dev/ (and detect-dev-gpt3to4/)")
    ap.add_argument("--pairs", type=int, default=None, help="first N pairs per file (default: all)")
    ap.add_argument("--features-cache", type=Path, default=None,
                    help="npz with sha, embeddings, style rows (sha256 of whitespace-normalised text); the rest is computed")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/collapseguard_detect_dev"), help="cache folder for computed features")
    ap.add_argument("--model", type=Path, default=None, help="Gen-0 folder: adds the gen0 feature sets")
    ap.add_argument("--models", default=",".join(MODELS), help="learned_v1 model classes to try")
    ap.add_argument("--feature-sets", default=";".join(FEATURE_SETS), help="';'-separated learned_v1 feature sets")
    ap.add_argument("--protocols", default="generator,domain,fresh,withdrawn", help="which protocols to run")
    ap.add_argument("--withdrawn-pairs", type=int, default=WITHDRAWN_PAIRS,
                    help="pairs per file the withdrawn protocol trains and calibrates on (the rest: fresh articles)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the group halves, folds and fit/calibration splits")
    ap.add_argument("--select", action="store_true",
                    help="choose each fold's regularisation as `detect train` does (grouped CV over the fold's fit "
                         "texts, train_learned's defaults) instead of the class's middle setting")
    ap.add_argument("--keep-layout", action="store_true", help="keep line breaks (a label leak in this data)")
    ap.add_argument("--out", type=Path, default=None, help="write all figures as JSON")
    args = ap.parse_args()
    if args.model is not None and not args.model.is_dir():
        sys.exit(f"error: {args.model}: no Gen-0 model folder; train one with `collapseguard gen0 train`")
    if args.features_cache is not None and not args.features_cache.is_file():
        sys.exit(f"error: {args.features_cache}: no such features cache; drop --features-cache to compute features")
    c = Corpus(load_pairs(args.data, args.pairs, args.keep_layout))
    import torch

    torch.set_num_threads(1)
    sets = [fs for fs in args.feature_sets.split(";") if "gen0" not in fs or args.model]
    needed = {f for fs in sets for f in fs.split(",")}
    blocks = feature_blocks(c.texts, needed, args.features_cache, args.cache, args.model)
    tag = " (in-fold CV)" if args.select else ""
    scorers = {f"{model} [{fs}]{tag}": learned_scorer(blocks, fs, model, c.groups, args.select)
               for fs in sets for model in args.models.split(",")}
    protocols = args.protocols.split(",")
    t0 = time.perf_counter()
    results: dict = {p: run_protocol(c, p, scorers, args.seed) for p in ("generator", "domain", "fresh") if p in protocols}
    if "withdrawn" in protocols:
        name = next(iter(scorers))
        results["withdrawn"] = {"scorer": name, **withdrawn_protocol(c, scorers[name], args.withdrawn_pairs)}
    print(f"cross-validation: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print_tables(results)
    if args.out:
        from collapseguard.io.atomic import write_text_atomic

        meta = {"pairs_per_file": args.pairs, "fpr": FPR, "n_pairs": len(c.rows), "n_texts": len(c.texts),
                "n_groups": int(len(np.unique(c.groups))), "seed": args.seed,
                "selection": {**train_defaults(), "grouped_by": "source group within the fit part"} if args.select
                else "middle setting"}
        write_text_atomic(args.out, json.dumps({**meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
