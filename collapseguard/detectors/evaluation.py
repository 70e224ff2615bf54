"""Evaluate a detector's scores on labelled human and machine text.

- AUROC: the Mann-Whitney probability that a machine score beats a human score (ties count
  half), over the texts that were scored; abstentions are reported separately.
- TPR at FPR f: the threshold is the (1 - f) quantile of the *reference* human scores (the
  evaluated human scores by default, or a disjoint calibration split), and TPR is the share of
  all machine texts strictly above it; an abstention is never a detection. The FPR the
  threshold actually gives on the evaluated human texts is reported next to it.
- Slices: the same figures per group (domain, generator, length bucket).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from collapseguard.detectors.calibration import threshold_for_fpr

DEFAULT_FPRS = (0.05, 0.01, 0.001)
LENGTH_BUCKETS = ((0, 50), (50, 100), (100, 200), (200, None))  # in words
MIN_SLICE_TEXTS = 10  # a slice with fewer scored texts of either class reports AUROC null


def auroc(human_scores, machine_scores) -> float:
    """Area under the ROC curve (machine = positive), NaNs excluded; equals sklearn's roc_auc_score."""
    from scipy.stats import rankdata

    h = _finite(human_scores)
    m = _finite(machine_scores)
    if len(h) == 0 or len(m) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([m, h]))  # average ranks for ties
    u = ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2
    return float(u / (len(m) * len(h)))


def _finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return a[~np.isnan(a)]


@dataclass
class Evaluation:
    """Figures for one set of human and machine scores."""

    n_human: int
    n_machine: int
    abstained_human: int
    abstained_machine: int
    auroc: float
    tpr_at_fpr: dict = field(default_factory=dict)
    fpr_achieved: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_scores(human_scores, machine_scores, fprs=DEFAULT_FPRS, reference_human=None) -> Evaluation:
    """AUROC and TPR at each FPR; thresholds from `reference_human` (default: these human scores)."""
    h = np.asarray(human_scores, dtype=float)
    m = np.asarray(machine_scores, dtype=float)
    ref = h if reference_human is None else np.asarray(reference_human, dtype=float)
    ev = Evaluation(len(h), len(m), int(np.isnan(h).sum()), int(np.isnan(m).sum()), auroc(h, m))
    hf = _finite(h)
    for f in fprs:
        key = f"{f:g}"
        if len(_finite(ref)) == 0 or len(m) == 0:
            ev.tpr_at_fpr[key] = ev.fpr_achieved[key] = ev.thresholds[key] = float("nan")
            continue
        t = threshold_for_fpr(ref, f)
        ev.thresholds[key] = t
        ev.tpr_at_fpr[key] = float(np.mean(np.nan_to_num(m, nan=-np.inf) > t))
        ev.fpr_achieved[key] = float(np.mean(hf > t)) if len(hf) else float("nan")
    return ev


def length_bucket(text: str) -> str:
    """A label like '50-100 words' for the text's whitespace word count."""
    n = len(text.split())
    for lo, hi in LENGTH_BUCKETS:
        if hi is None or n < hi:
            return f">={lo} words" if hi is None else f"{lo}-{hi} words"
    raise AssertionError("unreachable")


def evaluate_by(scores, is_machine, groups: dict, fprs=DEFAULT_FPRS, reference_human=None) -> list[dict]:
    """Rows {slice, group, **Evaluation} for each slice name -> per-text group labels, plus 'all'."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(is_machine, dtype=bool)
    rows = [{"slice": "all", "group": "all", **evaluate_scores(s[~y], s[y], fprs, reference_human).to_dict()}]
    for slice_name, labels in groups.items():
        labels = np.asarray(labels, dtype=object)
        for g in sorted(set(labels.tolist()), key=str):
            sel = labels == g
            ev = evaluate_scores(s[sel & ~y], s[sel & y], fprs, reference_human).to_dict()
            n_h, n_m = len(_finite(s[sel & ~y])), len(_finite(s[sel & y]))
            if min(n_h, n_m) < MIN_SLICE_TEXTS:
                ev["auroc"] = None
                ev["note"] = (f"AUROC not reported: {n_h} scored human and {n_m} scored machine texts "
                              f"(needs >= {MIN_SLICE_TEXTS} of each)")
            rows.append({"slice": slice_name, "group": g, **ev})
    return rows
