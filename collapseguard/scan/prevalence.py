"""The synthetic share of a corpus from the share of flags, corrected for the policy's error rates.

A share of flags is not a prevalence: with false-positive rate f and true-positive rate t, the
expected flag share is p = pi t + (1 - pi) f, so pi = (p - f) / (t - f) (Rogan and Gladen 1978).
The 95% interval carries the uncertainty of all three measured figures: p, f and t each get a
Jeffreys Beta posterior and the estimator is evaluated on 20,000 joint draws (seeded, so the
interval is reproducible). Without a measured TPR, t <= 1 gives a one-sided lower bound
pi >= (p - f) / (1 - f).

The estimator assumes the calibration's FPR and TPR hold on this corpus, so that its flag share
lies between them. When the flag share lies outside [FPR, TPR] beyond sampling error (more than
97.5% of the joint draws fall on one side), the interval would collapse onto a clip (0 or 1) and
print certainty that the data contradict: the result is then ``kind = "assumption_failed"``, no
estimate, and a note naming the side. A corpus-level estimate that needs no per-record accuracy
is `collapseguard.scan.distributional` (policy ``[prevalence] method = "distributional"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collapseguard.errors import CollapseguardError

DRAWS = 20_000


def _beta(rng, k: int, n: int, size: int) -> np.ndarray:
    return rng.beta(k + 0.5, n - k + 0.5, size)


def rogan_gladen(p: float, f: float, t: float) -> float:
    """Point estimate, clipped to [0, 1]; NaN when t <= f (the detectors cannot tell the classes apart)."""
    return float(np.clip((p - f) / (t - f), 0.0, 1.0)) if t > f else float("nan")


def synthetic_share(flagged: int, decided: int, fpr: tuple[int, int] | None, tpr: tuple[int, int] | None,
                    seed: int = 0) -> dict:
    """The prevalence estimate with its 95% interval; `fpr`, `tpr` are (k, n) from the calibration."""
    p = flagged / decided if decided else float("nan")
    out = {"flag_share": p, "flagged": flagged, "decided": decided}
    if decided == 0:
        return {**out, "estimate": None, "low": None, "high": None, "kind": "none",
                "note": "no record was decided; nothing to estimate"}
    if fpr is None or fpr[1] == 0:
        return {**out, "estimate": None, "low": None, "high": None, "kind": "flag_share_only",
                "note": "no calibrated FPR: the flag share is not a prevalence; calibrate the policy"}
    rng = np.random.default_rng(seed)
    p_d = _beta(rng, flagged, decided, DRAWS)
    f_d = _beta(rng, fpr[0], fpr[1], DRAWS)
    f_hat = fpr[0] / fpr[1]
    if tpr is None or tpr[1] == 0:
        lower = np.clip((p_d - f_d) / (1.0 - f_d), 0.0, 1.0)
        return {**out, "estimate": None, "low": float(np.quantile(lower, 0.05)), "high": None,
                "kind": "lower_bound", "fpr": f_hat,
                "note": "no TPR measured (calibrate with --machine): one-sided 95% lower bound, assuming TPR <= 1"}
    t_d = _beta(rng, tpr[0], tpr[1], DRAWS)
    t_hat = tpr[0] / tpr[1]
    ok = t_d > f_d
    raw = (p_d[ok] - f_d[ok]) / (t_d[ok] - f_d[ok])  # unclipped, over the draws where TPR is above FPR
    pi = np.clip(raw, 0.0, 1.0)
    est = rogan_gladen(p, f_hat, t_hat)
    if len(pi) < DRAWS // 2 or np.isnan(est):
        return {**out, "estimate": None, "low": None, "high": None, "kind": "unidentified", "fpr": f_hat,
                "tpr": t_hat, "note": "TPR is not clearly above FPR: the share cannot be estimated"}
    failed = assumption_failure(p, f_hat, t_hat, np.mean(raw > 1.0), np.mean(raw < 0.0))
    if failed:
        return {**out, "estimate": None, "low": None, "high": None, "kind": "assumption_failed", "fpr": f_hat,
                "tpr": t_hat, "note": failed}
    return {**out, "estimate": est, "low": float(np.quantile(pi, 0.025)), "high": float(np.quantile(pi, 0.975)),
            "kind": "rogan_gladen", "fpr": f_hat, "tpr": t_hat,
            "note": "Rogan-Gladen estimate; 95% interval carries the sampling error of the flag share, FPR and TPR"}


def assumption_failure(p: float, f: float, t: float, above: float, below: float) -> str | None:
    """Why the calibrated rates cannot describe this corpus (`above`/`below`: the share of draws
    whose unclipped estimate is above 1 / below 0), or None when they can."""
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    if above > 0.975:
        return (f"assumption failed: the flag share {pct(p)} is above the calibrated TPR {pct(t)} beyond sampling "
                "error, so the calibrated rates do not describe this corpus (the detectors flag more here than on "
                "the calibration's machine text); no prevalence can be read from the flags")
    if below > 0.975:
        return (f"assumption failed: the flag share {pct(p)} is below the calibrated FPR {pct(f)} beyond sampling "
                "error, so the calibrated rates do not describe this corpus (its human text is flagged less than "
                "the calibration's); no prevalence can be read from the flags")
    return None


METHODS = ("rogan_gladen", "distributional", "both")
PREVALENCE_KEYS = {"method", "human_reference", "machine_reference", "reference_column", "unit", "min_units",
                   "draws", "calibrate", "max_mismatch"}


@dataclass
class PrevalenceSpec:
    """The policy's `[prevalence]` table: which estimators `scan` reports, and the distributional
    estimator's references (paths relative to the policy file) and settings."""

    method: str = "rogan_gladen"
    human_reference: list[str] = field(default_factory=list)
    machine_reference: list[str] = field(default_factory=list)
    reference_column: str | None = None
    unit: str = "sentence"
    min_units: int = 5
    draws: int = 1000
    calibrate: bool = True
    max_mismatch: float = 3.0

    @property
    def distributional(self) -> bool:
        return self.method in ("distributional", "both")

    @property
    def rogan_gladen(self) -> bool:
        return self.method in ("rogan_gladen", "both")


def parse_prevalence(table, source: str) -> PrevalenceSpec:
    """A PrevalenceSpec from the `[prevalence]` table (absent = Rogan-Gladen only); every bad value
    is one line naming the key and a valid example."""
    from collapseguard.scan.distributional import UNITS

    where = f"{source}: [prevalence]"
    if table is None:
        return PrevalenceSpec()
    if not isinstance(table, dict):
        raise CollapseguardError(f"{where} must be a table, e.g. [prevalence] with method = \"both\"")
    unknown = sorted(set(table) - PREVALENCE_KEYS)
    if unknown:
        raise CollapseguardError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(PREVALENCE_KEYS))}")
    method = table.get("method", "rogan_gladen")
    if method not in METHODS:
        raise CollapseguardError(f"{where}: method must be one of {', '.join(METHODS)}, got {method!r}")
    unit = table.get("unit", "sentence")
    if unit not in UNITS:
        raise CollapseguardError(f"{where}: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    spec = PrevalenceSpec(method, _paths(table, "human_reference", where), _paths(table, "machine_reference", where),
                          table.get("reference_column"), unit, _count(table, "min_units", 5, 1, where),
                          _count(table, "draws", 1000, 100, where), table.get("calibrate", True))
    if spec.reference_column is not None and not isinstance(spec.reference_column, str):
        raise CollapseguardError(f"{where}: reference_column must be a string, got {spec.reference_column!r}")
    mm = table.get("max_mismatch", 3.0)
    if isinstance(mm, bool) or not isinstance(mm, (int, float)) or not mm > 0:
        raise CollapseguardError(f"{where}: max_mismatch must be a positive number, got {mm!r}")
    spec.max_mismatch = float(mm)
    if not isinstance(spec.calibrate, bool):
        raise CollapseguardError(f"{where}: calibrate must be true or false, got {spec.calibrate!r}")
    if spec.distributional and not (spec.human_reference and spec.machine_reference):
        raise CollapseguardError(f"{where}: method {method!r} needs human_reference and machine_reference, e.g. "
                                 "human_reference = \"ref/human.jsonl\", machine_reference = \"ref/machine.jsonl\"")
    return spec


def _paths(table: dict, key: str, where: str) -> list[str]:
    value = table.get(key, [])
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CollapseguardError(f"{where}: {key} must be a path or a list of paths, got {table.get(key)!r}")
    return value


def _count(table: dict, key: str, default: int, least: int, where: str) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise CollapseguardError(f"{where}: {key} must be an integer >= {least}, got {value!r}")
    return value
