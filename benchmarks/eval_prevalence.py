"""Does the distributional prevalence estimate hold on text from generators it was not given?

Per domain of /work/shared/data/detect-dev (+ detect-dev-gpt3to4 where it has the domain), the
texts of every file are joined into source groups (`detectors.grouping.source_groups`: one
article cut at several lengths, and each machine text with the human text it continues, stay
together) and the groups are split in half. The references come from one half: human texts and
the machine texts of the reference generators. Mixes come from the other half: human texts (one
per group) and machine texts of one held-out generator, at 0, 5, 20 and 50% machine documents.
The truth is the share of the mix's *sentences* that are machine text (the estimator's unit);
the document share is listed beside it. A cross-domain block fits the references on one domain
and estimates a mix from another.

    PYTHONPATH=. python benchmarks/eval_prevalence.py [--data /work/shared/data] [--out prevalence.json]
    # the machine reference with GPT-3 davinci and GPT-3.5 too, GPT-4 held out (xsum, writing):
    PYTHONPATH=. python benchmarks/eval_prevalence.py --reference gpt2-xl,opt-2.7b,gpt-neo-2.7B,davinci,gpt-3.5-turbo \
        --domains xsum,writing --calibrated-only --no-cross
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from collapseguard.detectors.grouping import group_split, source_groups
from collapseguard.scan.distributional import estimate_share, fit_references, split_units

REFERENCE = ("gpt2-xl", "opt-2.7b", "gpt-neo-2.7B")
HELD_OUT = {"detect-dev": ("gpt-j-6B", "gpt-neox-20b"), "detect-dev-gpt3to4": ("davinci", "gpt-3.5-turbo", "gpt-4")}
DOMAINS = ("xsum", "writing", "squad")
SHARES = (0.0, 0.05, 0.2, 0.5)
MAX_DOCS = 200


def load_domain(data: Path, domain: str) -> dict[str, dict]:
    files = {}
    for folder in ("detect-dev", "detect-dev-gpt3to4"):
        for path in sorted((data / folder).glob(f"{domain}_*.raw_data.json")):
            files[path.name[len(domain) + 1:-len(".raw_data.json")]] = json.loads(path.read_text(encoding="utf-8"))
    return files


def split_domain(files: dict[str, dict], reference=REFERENCE):
    """Reference human/machine texts (one half of the source groups) and, for the other half, the
    human texts (one per group) and every generator's machine texts."""
    texts, meta = [], []
    for gen, blob in files.items():
        for side in ("original", "sampled"):
            texts += blob[side]
            meta += [(gen, side)] * len(blob[side])
    groups = source_groups(texts)
    ref_side = group_split(groups, 0.5, seed=0)
    ref_h = [t for t, (g, s), r in zip(texts, meta, ref_side) if r and s == "original" and g in reference]
    ref_m = [t for t, (g, s), r in zip(texts, meta, ref_side) if r and s == "sampled" and g in reference]
    mix_h, seen = [], set()
    for t, (_, s), r, grp in zip(texts, meta, ref_side, groups):
        if not r and s == "original" and grp not in seen:
            seen.add(grp)
            mix_h.append(t)
    mix_m = {g: [t for t, (gg, s), r in zip(texts, meta, ref_side) if not r and s == "sampled" and gg == g]
             for g in files if g not in reference}
    return ref_h, ref_m, mix_h, mix_m


def mixes(human: list[str], machine: list[str], seed: int = 0):
    """(share, texts, truth as sentence share) per target document share."""
    rng = np.random.default_rng(seed)
    n = min(MAX_DOCS, len(human), 2 * len(machine))
    for share in SHARES:
        k = int(round(share * n))
        h = [human[i] for i in rng.choice(len(human), n - k, replace=False)]
        m = [machine[i] for i in rng.choice(len(machine), k, replace=False)]
        sh = sum(len(split_units(t, "sentence")) for t in h)
        sm = sum(len(split_units(t, "sentence")) for t in m)
        yield share, h + m, sm / max(sh + sm, 1)


def evaluate(model, human, machine, label: dict, draws: int) -> list[dict]:
    rows = []
    for share, texts, truth in mixes(human, machine):
        r = estimate_share(model, texts, draws=draws)
        ok = r["kind"] == "distributional"
        rows.append({**label, "doc_share": share, "truth": truth, "documents": len(texts), "kind": r["kind"],
                     "estimate": r["estimate"], "mle": r.get("mle", r["estimate"]), "low": r["low"], "high": r["high"],
                     "mismatch": r["mismatch"], "covers": ok and r["low"] <= truth <= r["high"],
                     "error": abs(r["estimate"] - truth) if ok else None, "width": r["high"] - r["low"] if ok else None})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data")
    ap.add_argument("--out", default="prevalence.json")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--reference", default=",".join(REFERENCE), help="generators of the machine reference")
    ap.add_argument("--domains", default=",".join(DOMAINS))
    ap.add_argument("--calibrated-only", action="store_true", help="skip the uncalibrated (paper's) rows")
    ap.add_argument("--no-cross", action="store_true", help="skip the cross-domain rows")
    args = ap.parse_args()
    data, rows, models, pools = Path(args.data), [], {}, {}
    started = time.perf_counter()
    for domain in args.domains.split(","):
        ref_h, ref_m, mix_h, mix_m = split_domain(load_domain(data, domain), tuple(args.reference.split(",")))
        for calibrate in (True,) if args.calibrated_only else (True, False):
            model = fit_references(ref_h, ref_m, "sentence", 5, calibrate)
            if calibrate:
                models[domain], pools[domain] = model, (mix_h, mix_m)
            for gen, machine in mix_m.items():
                label = {"domain": domain, "reference_domain": domain, "generator": gen, "calibrate": calibrate,
                         "reference_docs": [len(ref_h), len(ref_m)]}
                rows += evaluate(model, mix_h, machine, label, args.draws)
    for ref_domain, mix_domain in () if args.no_cross else (("xsum", "writing"), ("writing", "xsum"), ("squad", "xsum")):
        mix_h, mix_m = pools[mix_domain]
        label = {"domain": mix_domain, "reference_domain": ref_domain, "generator": "gpt-j-6B", "calibrate": True}
        rows += evaluate(models[ref_domain], mix_h, mix_m["gpt-j-6B"], label, args.draws)
    Path(args.out).write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}, indent=1))
    print(table(rows))


def table(rows: list[dict]) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    lines = ["| reference → mix | generator | calibrated | docs | truth % (sentences) | estimate % [95% interval] | "
             "mismatch | covers | error ≤ 3 | width ≤ 10 |", "|---|---|---|---:|---:|---|---:|---|---|---|"]
    for r in rows:
        if r["kind"] == "distributional":
            est = f"{pct(r['estimate'])} [{pct(r['low'])}, {pct(r['high'])}]"
            marks = ["yes" if r["covers"] else "**no**", "yes" if r["error"] <= 0.03 else "no",
                     "yes" if r["width"] <= 0.10 else "no"]
        else:
            est, marks = f"assumption_failed (MLE would be {pct(r['mle'])})", ["–", "–", "–"]
        lines.append(f"| {r['reference_domain']} → {r['domain']} | {r['generator']} | {'yes' if r['calibrate'] else 'no'} | "
                     f"{r['documents']} | {pct(r['truth'])} | {est} | {r['mismatch']:.2f} | {' | '.join(marks)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
