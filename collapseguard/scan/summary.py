"""The scan summary: counts per shard and detector, the synthetic share with its interval, plots.

Everything in `summary.json` / `summary.md` / the PNGs depends only on the inputs, the policy and
the calibration (no timings, no absolute paths), so a resumed run writes the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from collapseguard.scan.prevalence import synthetic_share
from collapseguard.scan.shard import attributes_path, write_json

ESTIMATORS = {"rogan_gladen": ("rogan_gladen",), "distributional": ("distributional",),
              "both": ("rogan_gladen", "distributional")}  # per [prevalence] method: the estimates reported


def summarize(policy, cal, key: dict, markers: list[dict], out: Path, distributional: dict | None = None) -> dict:
    """Totals over `markers`, per-shard rows, and the prevalence estimates: `synthetic_share`
    (Rogan-Gladen, from the flags) and, when the policy asks for it, `distributional_share`
    (from word use, `scan.distributional.corpus_share`)."""
    columns = policy.column_names()
    total = {"records": 0, "synthetic": 0, "human": 0, "abstain": 0}
    detectors = {c: {"flagged": 0, "abstained": 0} for c in columns}
    shards = []
    for m in markers:
        total["records"] += m["records"]
        for d, n in m["decisions"].items():
            total[d] += n
        for c in columns:
            for k in ("flagged", "abstained"):
                detectors[c][k] += m["detectors"][c][k]
        shards.append({"shard": m["shard"], "records": m["records"], **m["decisions"],
                       "detectors": m["detectors"], "input_sha256": m["input_sha256"]})
    fpr, tpr = cal.fpr(), cal.tpr()
    share = synthetic_share(total["synthetic"], total["synthetic"] + total["human"],
                            (fpr.k, fpr.n) if fpr.n else None, (tpr.k, tpr.n) if tpr and tpr.n else None)
    limit = policy.max_synthetic_share
    method = policy.prevalence.method if policy.prevalence else "rogan_gladen"
    shares = {"rogan_gladen": share, "distributional": distributional}
    figures = [over_limit(shares[m], limit) for m in ESTIMATORS[method]]
    return {
        "collapseguard_scan_summary": 1, **key, "text_column": policy.text_column, "records": total["records"],
        "decisions": {k: total[k] for k in ("synthetic", "human", "abstain")},
        "abstain_share": total["abstain"] / total["records"] if total["records"] else None,
        "calibration_abstain": getattr(cal, "abstain", None),
        "detectors": {c: {**detectors[c], "threshold": t} for c, t in zip(columns, cal.thresholds())},
        "fpr_target": None if math.isnan(cal.fpr_target) else cal.fpr_target,
        "synthetic_share": share, "distributional_share": distributional, "prevalence_method": method,
        "max_synthetic_share": limit, "over_limit": combine_over_limit(figures), "empty_shards": [s["shard"] for s in shards if s["records"] == 0],
        "shards": shards,
    }


def over_limit(share: dict | None, limit: float | None) -> bool | None:
    """Over the policy's limit: the estimate (or the lower bound, or the flag share when that is
    all there is, as when the calibrated rates failed on this corpus); None when there is no
    figure (no limit, or a distributional estimate that failed)."""
    if limit is None or share is None:
        return None
    figure = {"rogan_gladen": share.get("estimate"), "distributional": share.get("estimate"),
              "lower_bound": share.get("low"), "flag_share_only": share.get("flag_share"),
              "assumption_failed": share.get("flag_share")}.get(share["kind"])
    return None if figure is None else bool(figure > limit)


def unproven_within(summary: dict) -> bool:
    """A limit is set and records were scanned, but no estimate can show the share is within it."""
    return (summary.get("max_synthetic_share") is not None and summary.get("records", 0) > 0
            and summary.get("over_limit") is None)


def combine_over_limit(figures: list[bool | None]) -> bool | None:
    """With both estimators: over when either is over, within when both have a figure within."""
    if any(f is True for f in figures):
        return True
    return None if not figures or any(f is None for f in figures) else False


def write_summary(summary: dict, policy, cal, out: Path) -> None:
    write_json(out / "summary.json", summary)
    partial = out / "summary.md.partial"
    partial.write_text(markdown(summary), encoding="utf-8")
    partial.replace(out / "summary.md")
    plot_histograms(summary, policy, out)


def fmt_share(share: dict) -> str:
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    if share["kind"] in ("rogan_gladen", "distributional"):
        return f"{pct(share['estimate'])} (95% interval {pct(share['low'])} – {pct(share['high'])})"
    if share["kind"] == "lower_bound":
        return f"at least {pct(share['low'])} (one-sided 95% bound; no TPR measured)"
    if share.get("flag_share") is not None and not math.isnan(share["flag_share"]):
        return f"unknown (flag share {pct(share['flag_share'])}; {share['note']})"
    return f"unknown ({share['note']})"


def share_lines(s: dict) -> list[str]:
    """The summary.md lines of the estimates the policy asks for, each saying what it is."""
    shown = ESTIMATORS[s.get("prevalence_method", "rogan_gladen")]
    lines = []
    if "rogan_gladen" in shown:
        lines += [f"- synthetic share (Rogan-Gladen, from the flag share and the calibrated FPR/TPR): "
                  f"{fmt_share(s['synthetic_share'])}", f"  - {s['synthetic_share']['note']}"]
    if "distributional" in shown and s.get("distributional_share"):
        d = s["distributional_share"]
        lines += [f"- synthetic share (distributional, from word use against the references; no per-record "
                  f"decisions): {fmt_share(d)}", f"  - {d['note']}"]
    return lines


def one_line(s: dict) -> str:
    """The estimates for the command line, each named."""
    shown = ESTIMATORS[s.get("prevalence_method", "rogan_gladen")]
    parts = []
    if "rogan_gladen" in shown:
        parts.append(f"synthetic share (Rogan-Gladen, from flags) {fmt_share(s['synthetic_share'])}")
    if "distributional" in shown and s.get("distributional_share"):
        parts.append(f"synthetic share (distributional, from word use) {fmt_share(s['distributional_share'])}")
    return "; ".join(parts)


def fmt_abstain(s: dict) -> str:
    """The scan's abstain share beside the calibration's (the FPR and TPR count decided records only)."""
    share = "n/a" if s.get("abstain_share") is None else f"{100 * s['abstain_share']:.2f}%"
    cal = s.get("calibration_abstain") or {}
    if "human_heldout" in cal:
        share += f" (calibration: {100 * cal['human_heldout']:.2f}% of held-out human text"
        share += f", {100 * cal['machine']:.2f}% of machine text)" if "machine" in cal else ")"
    return share


def markdown(s: dict) -> str:
    lines = ["# Scan summary", "",
             f"- records: {s['records']:,} (synthetic {s['decisions']['synthetic']:,}, human {s['decisions']['human']:,}, "
             f"abstain {s['decisions']['abstain']:,})",
             f"- abstained: {fmt_abstain(s)}",
             *share_lines(s)]
    drift = s.get("calibration_drift") or {}
    if drift.get("warning"):
        lines.append(f"- **warning**: {drift['warning']}")
    if drift.get("abstained"):
        lines.append('- every record abstained (`on_drift = "abstain"`): the FPR promise does not reach this text')
    if s["max_synthetic_share"] is not None:
        verdict = {True: "OVER", False: "within"}.get(s["over_limit"], "not shown within (no estimate)")
        lines.append(f"- limit: {100 * s['max_synthetic_share']:.2f}% — {verdict}")
    lines += [f"- policy fingerprint: `{s['policy_fingerprint'][:16]}`, calibration: `{s['calibration_hash'][:16]}`", "",
              "| detector | threshold | flagged | abstained |", "|---|---:|---:|---:|"]
    lines += [f"| `{c}` | {d['threshold']:.4g} | {d['flagged']:,} | {d['abstained']:,} |" for c, d in s["detectors"].items()]
    lines += ["", "| shard | records | synthetic | human | abstain |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['shard']} | {r['records']:,} | {r['synthetic']:,} | {r['human']:,} | {r['abstain']:,} |" for r in s["shards"]]
    lines += ["", *[f"![{c}](hist_{c}.png)" for c in s["detectors"]], ""]
    return "\n".join(lines)


def plot_histograms(summary: dict, policy, out: Path) -> None:
    """One PNG per detector: its scores over all shards, threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pyarrow.parquet as pq

    for col, det in summary["detectors"].items():
        values = [pq.read_table(attributes_path(out, r["shard"]), columns=[col])
                  .column(0).drop_null().to_numpy() for r in summary["shards"]]
        scores = np.concatenate(values) if values else np.array([])
        scores = scores[np.isfinite(scores)]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if len(scores):
            ax.hist(scores, bins=50, color="#4c72b0")
        if np.isfinite(det["threshold"]):
            ax.axvline(det["threshold"], color="#c44e52", linestyle="--", label=f"threshold {det['threshold']:.3g}")
            ax.legend()
        ax.set(title=f"{col}: {len(scores):,} scored, {det['flagged']:,} flagged", xlabel="score", ylabel="records")
        fig.tight_layout()
        partial = out / f"hist_{col}.png.partial"
        fig.savefig(partial, format="png", metadata={"Software": None})
        plt.close(fig)
        partial.replace(out / f"hist_{col}.png")


def dumps(summary: dict) -> str:
    return json.dumps(summary, indent=1, sort_keys=True)
