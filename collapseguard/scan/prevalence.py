"""The synthetic share of a corpus from the share of flags, corrected for the policy's error rates.

A share of flags is not a prevalence: with false-positive rate f and true-positive rate t, the
expected flag share is p = pi t + (1 - pi) f, so pi = (p - f) / (t - f) (Rogan and Gladen 1978).
The 95% interval carries the uncertainty of all three measured figures: p, f and t each get a
Jeffreys Beta posterior and the estimator is evaluated on 20,000 joint draws (seeded, so the
interval is reproducible). Without a measured TPR, t <= 1 gives a one-sided lower bound
pi >= (p - f) / (1 - f).
"""

from __future__ import annotations

import numpy as np

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
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(t_d > f_d, np.clip((p_d - f_d) / (t_d - f_d), 0.0, 1.0), np.nan)
    pi = pi[~np.isnan(pi)]
    est = rogan_gladen(p, f_hat, t_hat)
    if len(pi) < DRAWS // 2 or np.isnan(est):
        return {**out, "estimate": None, "low": None, "high": None, "kind": "unidentified", "fpr": f_hat,
                "tpr": t_hat, "note": "TPR is not clearly above FPR: the share cannot be estimated"}
    return {**out, "estimate": est, "low": float(np.quantile(pi, 0.025)), "high": float(np.quantile(pi, 0.975)),
            "kind": "rogan_gladen", "fpr": f_hat, "tpr": t_hat,
            "note": "Rogan-Gladen estimate; 95% interval carries the sampling error of the flag share, FPR and TPR"}
