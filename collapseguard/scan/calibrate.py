"""Calibrate a guard policy as a whole: per-detector thresholds whose union keeps the promised FPR.

The human texts are split (seeded) into a fitting part and a held-out part, whole source groups
(`detectors.grouping`: versions of one article, near-duplicates) on one side. Detectors with a
fixed `threshold` in the policy keep it; the others share one quantile level alpha, the largest
for which the union rule's FPR on the fitting part is at most the target F (alpha = F / k is the
Bonferroni floor; correlated detectors allow more). The achieved union FPR is then measured on
the held-out part, with its Clopper-Pearson interval. With labelled machine text, each
detector's TPR and the union's TPR are recorded too, with their intervals.

Per slice (`slices="auto"`, the default): the fitting part is cut into domain x length slices
(`collapseguard.detectors.mondrian`) and each slice gets its own alpha and thresholds, at the
conformal level over its sources (at most (n + 1) F - 1 of its n sources fire; a source fires
when any of its texts does), so the promise holds per slice for texts of new sources.
A record outside every calibrated slice abstains with its reason; the held-out FPR and the TPR
are then among the decided records, each beside its abstain share.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from collapseguard.detectors.calibration import (
    check_calibration_size,
    check_fpr,
    clopper_pearson,
    identity_differences,
    texts_sha256,
)
from collapseguard.errors import CollapseguardError
from collapseguard.io.atomic import write_text_atomic
from collapseguard.io.shapes import NUMBER, ListOf, MapOf, Optional, check_shape, is_version

FORMAT = "collapseguard_policy_calibration"
VERSION = 1


@dataclass
class Rate:
    """k of n, with the 95% Clopper-Pearson interval."""

    k: int
    n: int
    rate: float | None
    ci95: list[float]

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        return cls(int(k), int(n), (k / n) if n else None, list(clopper_pearson(int(k), int(n))))


@dataclass
class PolicyCalibration:
    """Thresholds for every detector of a policy and what they achieved."""

    fpr_target: float
    alpha: float
    detectors: list[dict]
    union_fpr_fit: dict
    union_fpr_heldout: dict
    union_tpr: dict | None
    human_sha256: str
    machine_sha256: str | None
    holdout: float
    seed: int
    notes: list[str] = field(default_factory=list)
    domain: dict | None = None
    slices: dict | None = None  # per-slice thresholds (`detectors.mondrian`); entries hold `thresholds`
    abstain: dict | None = None  # abstain shares of the held-out human and the machine texts

    def record_thresholds(self, texts: list) -> tuple[np.ndarray, list[str]]:
        """Per record: its thresholds (n, detectors) and why it abstains ('' when it has a slice).

        Without slices every record gets the pooled thresholds; `None` texts (unreadable) get them
        too (the caller abstains on those already)."""
        pooled = np.asarray(self.thresholds(), dtype=float)
        out = np.tile(pooled, (len(texts), 1))
        reasons = [""] * len(texts)
        idx = [i for i, t in enumerate(texts) if t is not None]
        if not self.slices or not idx:
            return out, reasons
        from collapseguard.detectors.mondrian import assign, text_features, word_counts

        sub = [texts[i] for i in idx]
        entries, why = assign(self.slices, text_features(sub), word_counts(sub))
        for i, e, r in zip(idx, entries, why, strict=True):
            if e is None:
                out[i], reasons[i] = np.nan, r
            else:
                out[i] = e["thresholds"]
        return out, reasons

    def thresholds(self) -> list[float]:
        return [d["threshold"] for d in self.detectors]

    def fpr(self) -> Rate:
        return Rate(**self.union_fpr_heldout)

    def tpr(self) -> Rate | None:
        return None if self.union_tpr is None else Rate(**self.union_tpr)


def fires(scores: np.ndarray, thresholds) -> np.ndarray:
    """(n,) True where any detector's score is above its threshold (NaN never fires); `thresholds`
    (detectors,) or per record (n, detectors)."""
    with np.errstate(invalid="ignore"):
        return (scores > np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape)).any(axis=1)


def decided(scores: np.ndarray) -> np.ndarray:
    """(n,) True where at least one detector gave a score."""
    return (~np.isnan(scores)).any(axis=1)


def thresholds_at(alpha: float, scores: np.ndarray, fixed: list[float | None]) -> list[float]:
    """Per detector: its fixed threshold, or the (1 - alpha) quantile of its non-NaN scores."""
    out = []
    for j, t in enumerate(fixed):
        col = scores[:, j][~np.isnan(scores[:, j])]
        if t is not None:
            out.append(float(t))
        elif len(col) == 0:
            out.append(float("inf"))
        else:
            out.append(float(np.quantile(col, 1.0 - alpha, method="higher")))
    return out


def split_alpha(scores: np.ndarray, fixed: list[float | None], fpr: float) -> float:
    """The largest alpha in [0, fpr] whose thresholds keep the union FPR on `scores` at most `fpr`."""
    ok = decided(scores)

    def union(alpha):
        return fires(scores[ok], thresholds_at(alpha, scores, fixed)).mean() if ok.any() else 0.0

    if union(0.0) > fpr:
        raise CollapseguardError(f"the fixed thresholds alone flag {union(0.0):.3%} of the human texts, above fpr {fpr}; "
                                 "raise them or drop `threshold` from the policy to calibrate them")
    lo, hi = 0.0, fpr
    if union(hi) <= fpr:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if union(mid) <= fpr else (lo, mid)
    return lo


def holdout_split(sources: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out and fitting indices, whole source groups on one side (versions of an article, a
    text and its near-duplicates are not independent draws); refused when one side would be empty."""
    from collapseguard.detectors.grouping import group_split

    held = group_split(sources, holdout, seed)
    if not held.any():  # too few texts for the fraction: one source still goes to the held-out part
        held = sources == sources[np.random.default_rng(seed).integers(len(sources))]
    if held.all():
        raise CollapseguardError(
            f"the {len(sources)} human texts come from {len(np.unique(sources))} source(s): a held-out part of whole "
            "sources needs texts of more sources (different articles, not versions of one)")
    return np.flatnonzero(held), np.flatnonzero(~held)


def calibrate_policy(policy, human: list, fpr: float, machine: list | None = None, holdout: float = 0.3,
                     seed: int = 0, score=None, record_domain: bool = True, slices: str = "auto") -> PolicyCalibration:
    """Calibrate `policy` on human texts (and measure TPR on machine texts when given).

    The calibration keeps a domain record of its human texts (style, length, language; MiniLM
    centroid with the embeddings extra), so a scan of text far from it warns that the FPR may
    not hold."""
    fpr = check_fpr(fpr)
    if not 0.0 < holdout < 1.0:
        raise CollapseguardError(f"--holdout must be between 0 and 1 (exclusive), got {holdout}")
    if len(human) < 2:
        raise CollapseguardError(f"{len(human)} human text(s); calibration needs held-out human text (hundreds at least)")
    from collapseguard.detectors.grouping import source_groups

    sources = source_groups(human)
    held, fit = holdout_split(sources, holdout, seed)
    check_calibration_size(len(fit), fpr, f"fitting human texts (of {len(human)}, --holdout {holdout:g})")
    score = score or (lambda texts: policy.score(texts))
    h_scores = score(human)
    fixed = [spec.threshold for spec in policy.detectors]
    alpha = split_alpha(h_scores[fit], fixed, fpr)
    thresholds = thresholds_at(alpha, h_scores[fit], fixed)
    m_scores = score(machine) if machine else None
    rows = []
    for j, (ident, t) in enumerate(zip(policy.identities(), thresholds)):
        row = {**ident, "threshold": t, "fixed": fixed[j] is not None,
               "fpr_heldout": asdict(_rate(h_scores[held][:, [j]], [t]))}
        if m_scores is not None:
            row["tpr"] = asdict(_rate(m_scores[:, [j]], [t]))
        rows.append(row)
    notes = []
    domain = None
    if record_domain:
        from collapseguard.detectors.drift import domain_record

        domain = domain_record([human[i] for i in fit])
    if len(fit) * fpr < 10:
        notes.append(f"only {len(fit)} fitting human texts for fpr {fpr}: thresholds are coarse; use >= {int(np.ceil(10 / fpr))}")
    cal = PolicyCalibration(
        fpr_target=fpr, alpha=alpha, detectors=rows,
        union_fpr_fit=asdict(_rate(h_scores[fit], thresholds)),
        union_fpr_heldout=asdict(_rate(h_scores[held], thresholds)),
        union_tpr=None if m_scores is None else asdict(_rate(m_scores, thresholds)),
        human_sha256=texts_sha256(human), machine_sha256=texts_sha256(machine) if machine else None,
        holdout=holdout, seed=seed, notes=notes, domain=domain,
    )
    if slices != "none":
        add_policy_slices(cal, [human[i] for i in fit], h_scores[fit], fixed, slices, machine, sources[fit])
    if cal.slices:
        held_t, _ = cal.record_thresholds([human[i] for i in held])
        cal.union_fpr_heldout = asdict(_rate(h_scores[held], held_t))
        cal.abstain = {"human_heldout": 1 - cal.union_fpr_heldout["n"] / len(held)}
        if m_scores is not None:
            cal.union_tpr = asdict(_rate(m_scores, cal.record_thresholds(machine)[0]))
            cal.abstain["machine"] = 1 - cal.union_tpr["n"] / len(machine)
    return cal


def add_policy_slices(cal: PolicyCalibration, texts: list, scores: np.ndarray, fixed: list, mode: str,
                      machine: list | None = None, sources: np.ndarray | None = None) -> None:
    """Per-slice thresholds from the fitting texts: each slice's own alpha at the conformal level
    over its *sources* (each source counts once, with its highest score per detector: it fires
    when any of its texts does); labelled machine texts widen the support (`mondrian.fit_slices`)."""
    from collapseguard.detectors import mondrian
    from collapseguard.detectors.grouping import source_maxima

    need = mondrian.min_texts(cal.fpr_target)
    ok = decided(scores)
    if ok.sum() < need:
        cal.notes.append(f"only {int(ok.sum())} scored fitting human texts: fpr {cal.fpr_target:g} needs >= {need} per "
                         "slice, so no per-slice thresholds (the pooled ones hold only on average)")
        return
    texts = [t for t, k in zip(texts, ok, strict=True) if k]
    scores = scores[ok]
    sources = np.arange(len(texts)) if sources is None else np.asarray(sources)[ok]

    def thresholds_of(rows):
        per_source = source_maxima(scores[rows], sources[rows])
        n = len(per_source)
        level = max(0.0, ((n + 1) * cal.fpr_target - 1) / n)  # at most (n + 1) F - 1 of n sources may fire
        alpha = split_alpha(per_source, fixed, level)
        t = thresholds_at(alpha, per_source, fixed)
        return {"threshold": None, "thresholds": t, "alpha": alpha, "n_sources": n,
                "achieved_fpr": float(fires(scores[rows], t).mean())}

    cal.slices = mondrian.fit_slices(mondrian.text_features(texts), mondrian.word_counts(texts), cal.fpr_target,
                                     thresholds_of, mode=mode,
                                     machine_features=mondrian.text_features(machine) if machine else None)


def _rate(scores: np.ndarray, thresholds) -> Rate:
    """The union rule's rate among the decided records; `thresholds` (detectors,) or per record
    (n, detectors), a NaN row marking a record that abstains."""
    t = np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape)
    ok = decided(scores) & ~np.isnan(t).all(axis=1)
    return Rate.of(int(fires(scores[ok], t[ok]).sum()), int(ok.sum()))


def save_policy_calibration(cal: PolicyCalibration, path) -> None:
    write_text_atomic(path, json.dumps({FORMAT: VERSION, **asdict(cal)}, indent=1, sort_keys=True) + "\n")


def calibration_hash(path) -> str:
    """sha256 of the calibration file's bytes (what manifests record)."""
    from pathlib import Path

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibration_shape() -> dict:
    """The fields `read_policy_calibration` needs, with their types (io.shapes)."""
    from collapseguard.detectors.drift import record_shape

    rate = {"k": int, "n": int, "rate": Optional(NUMBER), "ci95": ListOf(NUMBER, 2)}
    return {"fpr_target": NUMBER, "alpha": NUMBER,
            "detectors": ListOf({"name": str, "column": str, "identity": dict, "threshold": NUMBER, "fixed": bool,
                                 "fpr_heldout": Optional(rate), "tpr": Optional(rate)}),
            "union_fpr_fit": rate, "union_fpr_heldout": rate, "union_tpr": Optional(rate), "human_sha256": str,
            "machine_sha256": Optional(str), "holdout": NUMBER, "seed": int, "notes": Optional(ListOf(str)),
            "domain": Optional(record_shape()), "abstain": Optional(MapOf(NUMBER)), "slices": Optional(dict)}


def read_policy_calibration(path) -> PolicyCalibration:
    from collapseguard.io.readers import read_json_file

    fix = "make one with `collapseguard policy calibrate`"
    blob = read_json_file(path, "policy calibration", fix)
    if not isinstance(blob, dict) or not is_version(blob.pop(FORMAT, None), VERSION):
        raise CollapseguardError(f"{path}: not a policy calibration (version {VERSION}); {fix}")
    check_shape(blob, calibration_shape(), path, fix)
    for name in ("union_fpr_fit", "union_fpr_heldout", "union_tpr"):
        rate = blob.get(name)
        if rate is not None and not 0 <= rate["k"] <= rate["n"]:
            raise CollapseguardError(f"{path}: {name} needs 0 <= k <= n, got k={rate['k']}, n={rate['n']}; {fix}")
    try:
        cal = PolicyCalibration(**blob)
    except TypeError as exc:
        raise CollapseguardError(f"{path}: calibration fields do not match ({exc}); {fix}") from None
    if cal.slices is not None:
        from collapseguard.detectors.mondrian import check_model

        check_model(cal.slices, path, fix, per_detector=len(cal.detectors))
    return cal


def load_policy_calibration(policy) -> PolicyCalibration:
    """The policy's calibration, refused when it was made for other detectors (naming the field).

    A policy without `calibration` works only when every detector has a fixed threshold; then no
    FPR is promised."""
    if policy.calibration_path is None:
        if all(s.threshold is not None for s in policy.detectors):
            return uncalibrated(policy)
        raise CollapseguardError(f"{policy.source}: no calibration; run `collapseguard policy calibrate` and set "
                                 "calibration = \"FILE\" in the policy (or give every detector a fixed threshold)")
    cal = read_policy_calibration(policy.calibration_path)
    check_calibration(cal, policy)
    return cal


def check_calibration(cal: PolicyCalibration, policy) -> None:
    saved = [{k: d[k] for k in ("name", "column", "identity")} for d in cal.detectors]
    current = policy.identities()
    if json.dumps(saved, sort_keys=True) != json.dumps(current, sort_keys=True):  # exact: true is not 1
        diffs = identity_differences({"detectors": saved}, {"detectors": current}) or ["detectors"]
        raise CollapseguardError(f"{policy.calibration_path}: made for other detectors ({'; '.join(diffs)}); "
                                 "recalibrate with `collapseguard policy calibrate`")
    for d, spec in zip(cal.detectors, policy.detectors):
        if d["fixed"] != (spec.threshold is not None):
            raise CollapseguardError(f"{policy.calibration_path}: {d['column']} is {'' if d['fixed'] else 'not '}fixed in "
                                     "the calibration but the policy says otherwise; recalibrate with `collapseguard policy calibrate`")
        if spec.threshold is not None and d["threshold"] != spec.threshold:
            raise CollapseguardError(f"{policy.calibration_path}: {d['column']} threshold {d['threshold']} differs from "
                                     f"the policy's fixed {spec.threshold}; recalibrate with `collapseguard policy calibrate`")


def uncalibrated(policy) -> PolicyCalibration:
    """Fixed thresholds only: decisions work, but no FPR or TPR is known."""
    rows = [{**ident, "threshold": spec.threshold, "fixed": True}
            for ident, spec in zip(policy.identities(), policy.detectors)]
    empty = asdict(Rate.of(0, 0))
    return PolicyCalibration(fpr_target=float("nan"), alpha=0.0, detectors=rows, union_fpr_fit=empty,
                             union_fpr_heldout=empty, union_tpr=None, human_sha256="", machine_sha256=None,
                             holdout=0.0, seed=0, notes=["no calibration: fixed thresholds, FPR unknown"])
