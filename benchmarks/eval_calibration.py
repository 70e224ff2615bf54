"""Does "FPR <= f" hold on every slice? Pooled vs per-slice (Mondrian) thresholds, and the drift check.

Data (--data DIR holding detect-dev/, detect-dev-gpt3to4/, wikitext-2/): every human and
machine text of detect-dev (xsum, squad, writing x 5 open generators) and detect-dev-gpt3to4
(xsum, writing, pubmed x davinci, gpt-3.5-turbo, gpt-4), whitespace-normalised, grouped by source
article (`detectors.grouping.source_groups`: the generator files of a domain reuse the same
articles, machine texts continue the human opening); plus WikiText-2 valid/test paragraphs
(>= 40 words, no headings) as unseen human text.

Detector: learned_v1's own model (`learned.fit_model` / `decision`, --model class) on
--features (embeddings and style from the --cache npz of precomputed features, static distilled
and computed here; style alone is computed here when no cache is given).

Scenarios (every split by source-article group, seeded):
- seen: train on 50% of the detect-dev article groups, calibrate on 25%, test on the other 25%
  (article-disjoint, seen domains), on WikiText-2 valid and test, and on detect-dev-gpt3to4
  (only articles outside train/calibration; pubmed is a new domain).
- leave-one-domain-out: train and calibrate on two detect-dev domains (same 50/25 split),
  test on the third.
Per test set and calibration method (pooled conformal threshold; per-slice thresholds with
support abstention, `detectors.mondrian`): the abstain share, the FPR among the decided human
texts, the TPR among the decided machine texts (and the TPR over all machine texts, abstains
counted as misses -- what the abstains cost).

Drift (`detectors.drift`): false alarms on same-distribution pairs (WikiText-2 valid vs test;
two article-disjoint halves of each detect-dev domain, over --drift-seeds splits) and, for each
scenario's test set, whether it fires next to the pooled threshold's actual FPR.

    nice .venv/bin/python benchmarks/eval_calibration.py --cache /work/cache/features.npz --out calib.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DOMAINS = ("xsum", "squad", "writing")


def load(data: Path) -> list[dict]:
    """Rows {text, label (1 machine), set, domain, generator}; WikiText-2 paragraphs are human."""
    from collapseguard.detectors.learned import normalise_whitespace

    rows = []
    for folder in ("detect-dev", "detect-dev-gpt3to4"):
        files = sorted((data / folder).glob("*.raw_data.json"))
        if not files:
            sys.exit(f"error: no *.raw_data.json under {data / folder}; pass --data DIR (the folder holding {folder}/)")
        for f in files:
            domain, generator = f.name.removesuffix(".raw_data.json").split("_", 1)
            blob = json.loads(f.read_text(encoding="utf-8"))
            for key, label in (("original", 0), ("sampled", 1)):
                rows += [{"text": normalise_whitespace(t), "label": label, "set": folder, "domain": domain,
                          "generator": generator} for t in blob[key]]
    for split in ("valid", "test"):
        path = data / "wikitext-2" / f"wiki.{split}.tokens"
        if not path.is_file():
            sys.exit(f"error: {path} missing; pass --data DIR (the folder holding wikitext-2/)")
        for line in path.read_text(encoding="utf-8").splitlines():
            if len(line.split()) >= 40 and not line.strip().startswith("="):
                rows.append({"text": normalise_whitespace(line), "label": 0, "set": f"wikitext-{split}",
                             "domain": "wikipedia", "generator": "human"})
    return rows


def features(texts: list[str], cache: Path | None, kinds: list[str]) -> dict[str, np.ndarray]:
    """{kind: (n, k)} from the cache npz (rows by sha256 of the text), or style computed here."""
    if cache is None:
        if kinds != ["style"]:
            sys.exit("error: --features other than style need --cache FILE.npz")
        from collapseguard.detectors.style import style_features

        return {"style": style_features(texts)}
    with np.load(cache, allow_pickle=False) as z:
        index = {s: i for i, s in enumerate(z["sha"].tolist())}
        shas = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = sum(s not in index for s in shas)
        if missing:
            sys.exit(f"error: {missing} texts are not in {cache}; rebuild the cache")
        rows = np.array([index[s] for s in shas])
        out = {k: np.asarray(z[k][rows], dtype=np.float64) for k in ("embeddings", "style")}
    if "static" in kinds:  # the token table is distilled here (~25 s), then thousands of texts/s
        from collapseguard.detectors.learned import FeatureExtractor

        out["static"] = FeatureExtractor("static").static_embedder().encode(texts).astype(np.float64)
    return out


def rate(k: int, n: int) -> dict:
    from collapseguard.detectors.calibration import clopper_pearson

    return {"k": int(k), "n": int(n), "rate": k / n if n else None, "ci95": list(clopper_pearson(int(k), int(n)))}


def outcome(decisions: np.ndarray, labels: np.ndarray) -> dict:
    """Abstain share, FPR among decided human texts, TPR among decided (and all) machine texts."""
    out = {}
    for name, lab in (("human", 0), ("machine", 1)):
        d = decisions[labels == lab]
        if len(d) == 0:
            continue
        decided = d != "abstain"
        flagged = int((d == "machine").sum())
        out[name] = {"n": len(d), "abstain": float(1 - decided.mean()),
                     ("fpr" if lab == 0 else "tpr"): rate(flagged, int(decided.sum()))}
        if lab == 1:
            out[name]["tpr_all"] = flagged / len(d)
    return out


def scenario(name, rows, x, slice_feats, train, calib, tests, fpr, model, mode):
    """Fit on `train`, calibrate on `calib` (pooled and per slice), report every test set."""
    from collapseguard.detectors.calibration import (
        add_slices,
        calibrate_scores,
        decide,
        decide_with_reasons,
    )
    from collapseguard.detectors.evaluation import auroc
    from collapseguard.detectors.learned import decision, fit_model

    y = np.array([r["label"] for r in rows])
    params = fit_model(x[train], y[train], model)
    score = decision(x, params, model)
    ch = calib & (y == 0)
    cal = calibrate_scores(score[ch], fpr, detector="learned", fingerprint="", identity={}, sha256="")
    texts = [r["text"] for r in rows]
    dom = np.array([r["domain"] for r in rows]) if mode == "group" else None  # --group-column domain
    add_slices(cal, score[ch], [texts[i] for i in np.flatnonzero(ch)], None if dom is None else dom[ch],
               mode="auto" if mode == "group" else mode, features=slice_feats[ch])
    out = {"scenario": name, "n_train": int(train.sum()), "n_calib_human": int(ch.sum()),
           "slices": [{k: v for k, v in s.items() if k != "fpr_ci95"} for s in slice_rows(cal.slices)],
           "pooled_threshold": cal.threshold, "tests": []}
    for tname, mask in tests.items():
        idx = np.flatnonzero(mask)
        pooled = decide(score[idx], cal)
        mond, reasons = decide_with_reasons(score[idx], cal, [texts[i] for i in idx], None if dom is None else dom[idx],
                                            features=slice_feats[idx])
        h, m = score[idx][y[idx] == 0], score[idx][y[idx] == 1]
        row = {"test": tname, "auroc": auroc(h, m) if len(m) else None,
               "pooled": outcome(pooled, y[idx]), "mondrian": outcome(mond, y[idx]),
               "abstain_reasons": reason_counts(reasons, mond)}
        out["tests"].append(row)
        print(line(name, row, fpr), file=sys.stderr, flush=True)
    return out, cal, score


def slice_rows(model):
    from collapseguard.detectors.mondrian import slice_rows as rows

    return rows(model) if model else []


def reason_counts(reasons, decisions) -> dict:
    out: dict[str, int] = {}
    for r, d in zip(reasons, decisions):
        if d == "abstain":
            key = r.split(" (")[0]
            out[key] = out.get(key, 0) + 1
    return out


def line(name, row, fpr) -> str:
    def fmt(o):
        h, m = o.get("human"), o.get("machine")
        s = f"FPR {h['fpr']['rate']:.3f} abst {h['abstain']:.2f}" if h and h["fpr"]["n"] else "FPR -"
        if m and m["tpr"]["n"]:
            s += f" | TPR {m['tpr']['rate']:.3f} (all {m['tpr_all']:.3f}) abst {m['abstain']:.2f}"
        return s
    return f"[{name}] {row['test']}: pooled {fmt(row['pooled'])} || mondrian {fmt(row['mondrian'])}"


def drift_pairs(rows, groups, feats, seeds: int) -> list[dict]:
    """Same-distribution pairs: WikiText-2 valid vs test; article-disjoint halves of each domain."""
    from collapseguard.detectors.drift import domain_record_from_features, drift_report
    from collapseguard.detectors.grouping import group_split

    out = []
    sets = np.array([r["set"] for r in rows])
    dom = np.array([r["domain"] for r in rows])
    y = np.array([r["label"] for r in rows])
    texts = [r["text"] for r in rows]

    def check(a, b, seed):
        rng = np.random.default_rng(seed)
        a = np.sort(rng.permutation(a)[:1000])
        b = np.sort(rng.permutation(b)[:1000])
        rec = domain_record_from_features(feats[a], None, [texts[i] for i in a])
        return drift_report(rec, feats[b], None, [texts[i] for i in b])

    va, te = np.flatnonzero(sets == "wikitext-valid"), np.flatnonzero(sets == "wikitext-test")
    reps = [check(va, te, s) for s in range(seeds)]
    out.append(pair_row("WikiText-2 valid vs test", reps))
    for d in DOMAINS:
        m = np.flatnonzero((sets == "detect-dev") & (dom == d) & (y == 0))
        reps = []
        for s in range(seeds):
            half = group_split(groups[m], 0.5, seed=s)
            reps.append(check(m[half], m[~half], s))
        out.append(pair_row(f"detect-dev {d}: article-disjoint halves", reps))
    return out


def pair_row(name, reps) -> dict:
    row = {"pair": name, "runs": len(reps), "alarms": int(sum(r["warn"] for r in reps)),
           "auc_median": float(np.median([r["auc"] for r in reps if r["auc"] is not None])),
           "auc_max": float(np.max([r["auc"] for r in reps if r["auc"] is not None])),
           "outside_max": float(np.max([r["outside_share"] for r in reps if r["auc"] is not None]))}
    print(f"[drift] {name}: {row['alarms']}/{row['runs']} alarms, AUC median {row['auc_median']:.3f} "
          f"max {row['auc_max']:.3f}, outside share max {row['outside_max']:.3f}", file=sys.stderr, flush=True)
    return row


def drift_hits(rows, feats, calib_h, tests, score, cal) -> list[dict]:
    """Record on the calibration human texts; per test set: warning vs the pooled threshold's actual FPR."""
    from collapseguard.detectors.drift import domain_record_from_features, drift_report

    y = np.array([r["label"] for r in rows])
    texts = [r["text"] for r in rows]
    rng = np.random.default_rng(0)
    a = np.sort(rng.permutation(np.flatnonzero(calib_h))[:1000])
    rec = domain_record_from_features(feats[a], None, [texts[i] for i in a])
    out = []
    for tname, mask in tests.items():
        h = np.flatnonzero(mask & (y == 0))
        b = np.sort(rng.permutation(h)[:1000])
        rep = drift_report(rec, feats[b], None, [texts[i] for i in b])
        s = score[h]
        fpr = float(np.mean(s > cal.threshold))
        out.append({"test": tname, "n_human": len(h), "actual_fpr": fpr, "warn": rep["warn"], "auc": rep["auc"],
                    "outside_share": rep.get("outside_share"), "reasons": rep["reasons"]})
        print(f"[drift-hit] {tname}: actual FPR {fpr:.3f} warn {rep['warn']} AUC {rep['auc']} "
              f"outside {rep.get('outside_share')}", file=sys.stderr, flush=True)
    return out


def drift_with_machine(rows, feats, groups, calib_h, test, seeds: int = 5) -> list[str]:
    """Does machine text in a scanned corpus (seen domains, article-disjoint) make the drift test
    fire? Table rows: share of machine texts in a 600-text sample -> alarms over `seeds` samples."""
    from collapseguard.detectors.drift import domain_record_from_features, drift_report

    y = np.array([r["label"] for r in rows])
    texts = [r["text"] for r in rows]
    a = np.sort(np.random.default_rng(0).permutation(np.flatnonzero(calib_h))[:1000])
    rec = domain_record_from_features(feats[a], None, [texts[i] for i in a])
    h, m = np.flatnonzero(test & (y == 0)), np.flatnonzero(test & (y == 1))
    out = ["| machine share of the scanned texts | alarms | held-out AUC median |", "|---:|---:|---:|"]
    for share in (0.0, 0.1, 0.2, 0.5):
        n = min(600, len(h))
        reps = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            b = np.sort(np.r_[rng.choice(h, n - int(share * n), replace=False), rng.choice(m, int(share * n), replace=False)])
            reps.append(drift_report(rec, feats[b], None, [texts[i] for i in b]))
        out.append(f"| {share:.0%} | {sum(r['warn'] for r in reps)}/{seeds} | "
                   f"{np.median([r['auc'] for r in reps]):.3f} |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=None, help="npz with sha, embeddings, style per text")
    ap.add_argument("--features", default="static,style", help="detector features (style alone needs no cache)")
    ap.add_argument("--model", default="mlp", help="learned_v1 model class: logistic, mlp, gbm")
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--slices", default="auto", help="auto (clusters x length), length, or group (the true domain "
                    "as --group-column: domain x length)")
    ap.add_argument("--slice-features", default="style", help="what slices cluster and support on: style "
                    "(what `detect calibrate` uses) or embeddings (from the cache)")
    ap.add_argument("--drift-seeds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--tables", type=Path, default=None, help="print the tables of an earlier --out JSON and stop")
    ap.add_argument("--splits", type=Path, nargs="+", default=None, help="print the mean and range over the --out "
                    "JSONs of several --seed runs (other grouped splits) and stop")
    ap.add_argument("--drift-mixes", action="store_true", help="only: does machine text in the scanned texts make "
                    "the drift test fire (seen domains, 0-50%% machine)?")
    args = ap.parse_args(argv)
    if args.tables:
        print(markdown(json.loads(args.tables.read_text()), args.fpr))
        return
    if args.splits:
        print(splits_markdown([json.loads(p.read_text()) for p in args.splits], args.fpr))
        return

    from collapseguard.detectors.grouping import group_split, source_groups

    rows = load(args.data)
    texts = [r["text"] for r in rows]
    kinds = args.features.split(",")
    feats = features(texts, args.cache, sorted(set(kinds) | {"style"}))
    x = np.column_stack([feats[k] for k in kinds])
    style = feats["style"]
    from collapseguard.detectors.mondrian import domain_features

    slice_feats = domain_features(style) if args.slice_features == "style" else feats[args.slice_features]
    groups = source_groups(texts)
    sets = np.array([r["set"] for r in rows])
    dom = np.array([r["domain"] for r in rows])
    dd = sets == "detect-dev"
    # 50% train / 25% calibration / 25% test of the detect-dev article groups.
    train = dd & group_split(groups, 0.5, seed=args.seed)
    calib = dd & ~train & group_split(groups, 0.5, seed=args.seed + 1)
    test = dd & ~train & ~calib
    if args.drift_mixes:
        print("\n".join(drift_with_machine(rows, style, groups, calib & (np.array([r["label"] for r in rows]) == 0),
                                           test)))
        return
    used = set(groups[train | calib].tolist())
    fresh = np.array([g not in used for g in groups])
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "scenarios": []}
    tests = {f"detect-dev {d} (article-disjoint)": test & (dom == d) for d in DOMAINS}
    tests.update({f"WikiText-2 {s}": sets == f"wikitext-{s}" for s in ("valid", "test")})
    tests.update({f"gpt3to4 {d} (unseen articles)": (sets == "detect-dev-gpt3to4") & (dom == d) & fresh
                  for d in ("xsum", "writing", "pubmed")})
    res, cal, score = scenario("seen", rows, x, slice_feats, train, calib, tests, args.fpr, args.model, args.slices)
    res["drift"] = drift_hits(rows, style, calib & (np.array([r["label"] for r in rows]) == 0), tests, score, cal)
    results["scenarios"].append(res)
    for held in DOMAINS:
        keep = dom != held
        t = {f"held-out domain {held}": dd & (dom == held)}
        res, cal, score = scenario(f"without {held}", rows, x, slice_feats, train & keep, calib & keep, t, args.fpr,
                                   args.model, args.slices)
        res["drift"] = drift_hits(rows, style, calib & keep & (np.array([r["label"] for r in rows]) == 0), t, score, cal)
        results["scenarios"].append(res)
    results["drift_false_alarms"] = drift_pairs(rows, groups, style, args.drift_seeds)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(markdown(results, args.fpr))


def markdown(results: dict, fpr: float) -> str:
    """The BENCHMARKS.md tables: FPR / TPR with abstain shares per test set; drift hits and false alarms."""
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = ["| scenario | test set | pooled FPR | per-slice FPR (decided) | human abstain | pooled TPR | "
             "per-slice TPR (decided / all) | machine abstain | with `on_drift = abstain`: FPR (decided) / TPR (all) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in results["scenarios"]:
        fired = {d["test"] for d in sc["drift"] if d["warn"]}
        for t in sc["tests"]:
            p, m = t["pooled"], t["mondrian"]
            ph, mh, pm, mm = p.get("human"), m.get("human"), p.get("machine"), m.get("machine")
            on_drift = ("all abstain (drift)" if t["test"] in fired else
                        f"{pct(mh['fpr']['rate'])} / {pct(mm['tpr_all']) if mm else '–'}")
            lines.append(f"| {sc['scenario']} | {t['test']} | {pct(ph['fpr']['rate'])} | {pct(mh['fpr']['rate'])} | "
                         f"{pct(mh['abstain'])} | {pct(pm['tpr']['rate']) if pm else '–'} | "
                         f"{(pct(mm['tpr']['rate']) + ' / ' + pct(mm['tpr_all'])) if mm else '–'} | "
                         f"{pct(mm['abstain']) if mm else '–'} | {on_drift} |")
    lines += ["", f"Drift warning next to the pooled {fpr:g} threshold's actual FPR (calibration record vs the "
              "test set's human texts):", "", "| scenario | test set | actual FPR | > 2x promise | warning | "
              "held-out AUC | share beyond calibration p95 |", "|---|---|---:|---|---|---:|---:|"]
    for sc in results["scenarios"]:
        for d in sc["drift"]:
            auc = "too few texts" if d["auc"] is None else f"{d['auc']:.2f}"
            lines.append(f"| {sc['scenario']} | {d['test']} | {pct(d['actual_fpr'])} | "
                         f"{'yes' if d['actual_fpr'] > 2 * fpr else 'no'} | {'**fires**' if d['warn'] else 'silent'} | "
                         f"{auc} | {pct(d['outside_share'])} |")
    lines += ["", "Same-distribution pairs (false alarms):", "", "| pair | alarms | held-out AUC median (max) | "
              "share beyond p95, max |", "|---|---:|---:|---:|"]
    for r in results["drift_false_alarms"]:
        lines.append(f"| {r['pair']} | {r['alarms']}/{r['runs']} | {r['auc_median']:.3f} ({r['auc_max']:.3f}) | "
                     f"{pct(r['outside_max'])} |")
    return "\n".join(lines)


def splits_markdown(runs: list[dict], fpr: float) -> str:
    """Per test set, over several grouped splits (one --out JSON each): per-slice FPR among decided
    human texts, human abstain and TPR over all machine texts as mean [min-max], the splits whose
    FPR exceeds 2x the promise, and how often the drift test fired (those records abstain under
    `on_drift = abstain`)."""
    cells: dict[tuple, dict[str, list]] = {}
    for run in runs:
        for sc in run["scenarios"]:
            fired = {d["test"] for d in sc["drift"] if d["warn"]}
            for t in sc["tests"]:
                h, m = t["mondrian"].get("human"), t["mondrian"].get("machine")
                c = cells.setdefault((sc["scenario"], t["test"]), {"fpr": [], "abstain": [], "tpr": [], "drift": []})
                if h["fpr"]["rate"] is not None:
                    c["fpr"].append(h["fpr"]["rate"])
                c["abstain"].append(h["abstain"])
                c["tpr"].append(m["tpr_all"] if m else None)
                c["drift"].append(t["test"] in fired)

    def spread(v):
        v = [x for x in v if x is not None]
        return "–" if not v else f"{100 * np.mean(v):.1f}% [{100 * min(v):.1f}–{100 * max(v):.1f}]"

    lines = [f"| scenario | test set | per-slice FPR (decided), mean [range] | splits > {2 * fpr:.0%} | human abstain | "
             "TPR (all machine) | drift fired |", "|---|---|---:|---:|---:|---:|---:|"]
    for (scenario, test), c in cells.items():
        over = sum(x > 2 * fpr for x in c["fpr"])
        lines.append(f"| {scenario} | {test} | {spread(c['fpr'])} | {over}/{len(c['fpr'])} | {spread(c['abstain'])} | "
                     f"{spread(c['tpr'])} | {sum(c['drift'])}/{len(c['drift'])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
