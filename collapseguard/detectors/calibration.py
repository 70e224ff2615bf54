"""Calibrate a detector's threshold to a false-positive rate on held-out human text.

threshold = the (1 - fpr) quantile of the human scores (abstentions excluded, the `higher`
order statistic, so at most a share `fpr` of the calibration set lies strictly above it); a
text is called "machine" when its score is strictly above the threshold. The achieved FPR on
the calibration set comes with a 95% Clopper-Pearson interval. The calibration records the
detector's name, fingerprint and identity, so applying it to another configuration is refused.
`add_slices` adds per-slice (Mondrian) thresholds, and `decide_with_reasons` applies them:
text outside every calibrated slice abstains with its reason (`collapseguard.detectors.mondrian`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from collapseguard.detectors.base import config_dict
from collapseguard.errors import CollapseguardError
from collapseguard.io.atomic import write_text_atomic
from collapseguard.io.shapes import NUMBER, ListOf, MapOf, Optional, check_shape, is_version

FORMAT_VERSION = 1
MACHINE, HUMAN, ABSTAIN = "machine", "human", "abstain"


@dataclass
class Calibration:
    """A threshold for one detector configuration and how it was obtained."""

    detector: str
    fingerprint: str
    identity: dict
    fpr_target: float
    threshold: float
    achieved_fpr: float
    fpr_ci95: list[float]
    n: int
    n_abstained: int
    texts_sha256: str
    # learned_v1: how many human texts share a source with its training text (--allow-overlap).
    training_overlap: dict | None = field(default=None, repr=False)
    human_scores: list[float] = field(default_factory=list, repr=False)
    # What the human texts looked like (`collapseguard.detectors.drift`); None in older files.
    domain: dict | None = field(default=None, repr=False)
    # Per-group thresholds (--group-column): group -> {threshold, achieved_fpr, fpr_ci95, n, domain}.
    groups: dict | None = field(default=None, repr=False)
    # Per-slice (Mondrian) thresholds and the support of the human texts (`detectors.mondrian`).
    slices: dict | None = field(default=None, repr=False)

    def threshold_for(self, group) -> float:
        """The group's own threshold when calibrated per group, else the pooled one."""
        if self.groups and group in self.groups:
            return float(self.groups[group]["threshold"])
        return self.threshold

    def p_values(self, scores) -> np.ndarray:
        """Empirical p-values (1 + #human >= s) / (n + 1) against the calibration scores; NaN stays NaN."""
        ref = np.sort(np.asarray(self.human_scores, dtype=float))
        s = np.asarray(scores, dtype=float)
        greater_eq = len(ref) - np.searchsorted(ref, s, side="left")
        p = (1.0 + greater_eq) / (len(ref) + 1.0)
        return np.where(np.isnan(s), np.nan, p)


def detector_identity(detector) -> dict:
    """What a calibration must match: the detector's own identity() or its name and config."""
    if hasattr(detector, "identity"):
        return detector.identity()
    return {"name": detector.name, "config": config_dict(detector.config)}


def texts_sha256(texts) -> str:
    """sha256 over the texts in order (each length-prefixed, UTF-8)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes in n trials (beta quantiles, as
    `scipy.stats.beta.ppf(q, a, b)` computes them: `betaincinv(a, b, q)`, without importing scipy.stats)."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.special import betaincinv

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, a))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - a))
    return (lo, hi)


def threshold_for_fpr(human_scores, fpr: float) -> float:
    """The (1 - fpr) quantile of the non-NaN human scores (an observed value; `higher` method)."""
    s = np.asarray(human_scores, dtype=float)
    s = s[~np.isnan(s)]
    if len(s) == 0:
        raise CollapseguardError("no human text was scored (all abstained); pass longer or more calibration texts")
    return float(np.quantile(s, 1.0 - fpr, method="higher"))


def min_calibration_size(fpr: float) -> int:
    """The fewest scored human texts that can support `fpr`: with n exchangeable human scores a new
    human text lies above the largest of them with probability 1/(n + 1), so no threshold set on
    them promises an FPR below 1/(n + 1); `fpr` needs n >= 1/fpr - 1."""
    return max(1, math.ceil(1.0 / fpr - 1.0 - 1e-9))


def check_calibration_size(n: int, fpr: float, what: str = "scored human texts") -> None:
    """Refuse a calibration on fewer texts than `fpr` needs (min_calibration_size), with the numbers."""
    need = min_calibration_size(fpr)
    if n < need:
        raise CollapseguardError(
            f"{n} {what} cannot support fpr {fpr:g}: even the largest score as threshold leaves an FPR of "
            f"1/(n+1) = {1 / (n + 1):.3g}; pass at least {need} human texts (>= {math.ceil(10 / fpr)} advised) "
            f"or a larger --fpr (>= {1 / (n + 1):.3g})")


def check_fpr(fpr: float) -> float:
    if not 0.0 < fpr < 1.0:
        raise CollapseguardError(f"fpr must be between 0 and 1 (exclusive), got {fpr}; e.g. --fpr 0.01")
    return float(fpr)


def calibrate_scores(scores, fpr: float, *, detector: str, fingerprint: str, identity: dict,
                     sha256: str) -> Calibration:
    """A Calibration from already computed human scores (NaN = abstained)."""
    fpr = check_fpr(fpr)
    s = np.asarray(scores, dtype=float)
    valid = s[~np.isnan(s)]
    threshold = threshold_for_fpr(valid, fpr)
    k, n = int((valid > threshold).sum()), len(valid)
    check_calibration_size(n, fpr)
    if n < math.ceil(10.0 / fpr):
        import logging

        logging.getLogger(__name__).warning(
            "only %d scored human texts for fpr=%g: the threshold is uncertain (see fpr_ci95); use >= %d",
            n, fpr, math.ceil(10.0 / fpr),
        )
    return Calibration(
        detector=detector, fingerprint=fingerprint, identity=identity, fpr_target=fpr, threshold=threshold,
        achieved_fpr=k / n, fpr_ci95=list(clopper_pearson(k, n)), n=n, n_abstained=int(len(s) - n),
        texts_sha256=sha256, human_scores=[float(x) for x in valid],
    )


def calibrate(detector, human_texts, fpr: float, progress=None) -> Calibration:
    """Score held-out human texts and set the threshold at their (1 - fpr) quantile."""
    texts = list(human_texts)
    scores = detector.score(texts, progress=progress) if progress is not None else detector.score(texts)
    return calibrate_scores(
        scores, fpr, detector=detector.name, fingerprint=detector.fingerprint(),
        identity=detector_identity(detector), sha256=texts_sha256(texts),
    )


def identity_differences(a, b, saved: str = "calibration", prefix: str = "") -> list[str]:
    """Human-readable `field: saved-value (saved) vs current-value (detector)` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in identity_differences(a.get(k), b.get(k), saved, f"{prefix}{k}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in identity_differences(x, y, saved, f"{prefix}{i}.")]
    return [] if a == b else [f"{prefix.rstrip('.')}: {a!r} ({saved}) vs {b!r} (detector)"]


def check_matches(calibration: Calibration, detector, source: str = "calibration") -> None:
    """Refuse to apply `calibration` to a detector with another fingerprint, naming what differs."""
    if calibration.fingerprint == detector.fingerprint():
        return
    diffs = identity_differences(calibration.identity, detector_identity(detector)) or ["fingerprint"]
    raise CollapseguardError(
        f"{source}: made for a different detector configuration ({'; '.join(diffs)}); "
        "use the same options or recalibrate with `collapseguard detect calibrate`"
    )


def decide(scores, calibration: Calibration, groups=None) -> np.ndarray:
    """Per score: 'machine' (above the threshold), 'human', or 'abstain' (NaN score).

    With per-text `groups` and a per-group calibration, each text meets its group's threshold
    (the pooled one for groups the calibration has not seen).
    """
    s = np.asarray(scores, dtype=float)
    if groups is not None and calibration.groups:
        thresholds = np.array([calibration.threshold_for(g) for g in groups], dtype=float)
    else:
        thresholds = calibration.threshold
    out = np.where(s > thresholds, MACHINE, HUMAN).astype(object)
    out[np.isnan(s)] = ABSTAIN
    return out


def add_slices(calibration: Calibration, scores, texts, groups=None, mode: str = "auto", features=None,
               sources=None, machine_texts=None) -> list[str]:
    """Give `calibration` per-slice thresholds (domain x length, `detectors.mondrian`) from the human
    `scores` of `texts`; returns notes. Too few texts for even one slice: no slices (a note says so).

    Thresholds are conformal over *sources* (`detectors.grouping.source_groups` unless given):
    each source counts once, with its highest score, so versions of one article do not pass for
    independent draws and the promise holds for texts of new articles. A slice with fewer than
    1/f - 1 sources gets no threshold: its texts abstain."""
    from collapseguard.detectors import mondrian

    if mode == "none":
        return []
    s = np.asarray(scores, dtype=float)
    keep = ~np.isnan(s)
    need = mondrian.min_texts(calibration.fpr_target)
    if keep.sum() < need:
        return [f"only {int(keep.sum())} scored human texts: fpr {calibration.fpr_target:g} needs >= {need} per "
                "slice, so no per-slice thresholds (the pooled threshold holds only on average)"]
    texts = [t for t, k in zip(texts, keep, strict=True) if k]
    feats = mondrian.text_features(texts) if features is None else np.asarray(features)[keep]
    g = None if groups is None else [x for x, k in zip(groups, keep, strict=True) if k]
    s = s[keep]
    from collapseguard.detectors.grouping import source_groups, source_maxima

    if sources is None:
        src = source_groups(texts)
    else:
        src = np.asarray(sources)[keep]

    def threshold_of(rows):
        best = source_maxima(s[rows, None], src[rows])[:, 0]  # one score per source
        t = mondrian.conformal_threshold(best, calibration.fpr_target)
        if t is None:
            return {"threshold": None, "n_sources": len(best)}
        k = int((s[rows] > t).sum())
        return {"threshold": t, "n_sources": len(best), "achieved_fpr": k / len(rows),
                "fpr_ci95": list(clopper_pearson(k, len(rows)))}

    words = mondrian.word_counts(texts)
    machine = mondrian.text_features(list(machine_texts)) if machine_texts else None
    model = mondrian.fit_slices(feats, words, calibration.fpr_target, threshold_of, groups=g, mode=mode,
                                machine_features=machine)
    entries, _ = mondrian.assign(model, feats, words, g)
    model["calibration_abstain_share"] = sum(e is None for e in entries) / len(entries)
    calibration.slices = model
    return []


def decision_rates(decisions, is_machine) -> dict:
    """Abstain share, FPR among the decided human texts and TPR among the decided machine texts
    (with intervals); `tpr_all` counts machine abstains as misses (what the abstains cost)."""
    d = np.asarray(decisions, dtype=object)
    y = np.asarray(is_machine, dtype=bool)
    out = {}
    for name, sel, rate in (("human", ~y, "fpr"), ("machine", y, "tpr")):
        if not sel.any():
            continue
        decided = d[sel] != ABSTAIN
        k, n = int((d[sel] == MACHINE).sum()), int(decided.sum())
        out[name] = {"n": int(sel.sum()), "abstain_share": float(1 - decided.mean()), rate: k / n if n else None,
                     f"{rate}_ci95": list(clopper_pearson(k, n))}
        if name == "machine":
            out[name]["tpr_all"] = k / int(sel.sum())
    return out


def decide_with_reasons(scores, calibration: Calibration, texts=None, groups=None, features=None):
    """Decisions and, per text, why it abstained ('' otherwise).

    With per-slice thresholds and the texts, each text meets its slice's threshold, and a text
    outside every calibrated slice (too short, unseen group, out of support) abstains, never
    'machine'. Without them, `decide`.
    """
    s = np.asarray(scores, dtype=float)
    if not calibration.slices or texts is None:
        out = decide(s, calibration, groups)
        return out, ["detector abstained" if d == ABSTAIN else "" for d in out]
    from collapseguard.detectors import mondrian

    feats = mondrian.text_features(texts) if features is None else np.asarray(features)
    entries, reasons = mondrian.assign(calibration.slices, feats, mondrian.word_counts(texts), groups)
    out = np.empty(len(s), dtype=object)
    for i, e in enumerate(entries):
        if np.isnan(s[i]):
            out[i], reasons[i] = ABSTAIN, "detector abstained"
        elif e is None:
            out[i] = ABSTAIN
        else:
            out[i] = MACHINE if s[i] > e["threshold"] else HUMAN
    return out, reasons


def save_calibration(calibration: Calibration, path: str | Path) -> None:
    """Write the calibration as JSON, atomically."""
    blob = {"collapseguard_calibration": FORMAT_VERSION, **asdict(calibration)}
    write_text_atomic(path, json.dumps(blob, indent=1, sort_keys=True) + "\n")


def calibration_shape() -> dict:
    """The fields `load_calibration` needs, with their types (io.shapes)."""
    from collapseguard.detectors.drift import record_shape

    domain = Optional(record_shape())
    return {"detector": str, "fingerprint": str, "identity": dict, "fpr_target": NUMBER, "threshold": NUMBER,
            "achieved_fpr": NUMBER, "fpr_ci95": ListOf(NUMBER, 2), "n": int, "n_abstained": int,
            "texts_sha256": str, "human_scores": Optional(ListOf(NUMBER)), "domain": domain,
            "groups": Optional(MapOf({"threshold": NUMBER, "domain": domain})), "slices": Optional(dict)}


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration JSON written by `save_calibration`."""
    from collapseguard.io.readers import read_json_file

    blob = read_json_file(path, "calibration", "make one with `collapseguard detect calibrate`")
    if not isinstance(blob, dict) or not is_version(blob.pop("collapseguard_calibration", None), FORMAT_VERSION):
        raise CollapseguardError(f"{path}: not a collapseguard calibration (format {FORMAT_VERSION}); recalibrate")
    check_shape(blob, calibration_shape(), path, "recalibrate with `collapseguard detect calibrate`")
    try:
        cal = Calibration(**blob)
    except TypeError as exc:
        raise CollapseguardError(f"{path}: calibration fields do not match ({exc}); recalibrate") from None
    if cal.slices is not None:
        from collapseguard.detectors.mondrian import check_model

        check_model(cal.slices, path, "recalibrate with `collapseguard detect calibrate`")
    return cal
