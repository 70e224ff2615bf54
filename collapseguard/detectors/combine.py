"""`combined_v1`: one score from several detectors, calibrated like any other detector.

Two methods:
- ``logistic``: a logistic regression on the standardised member scores, fitted on labelled
  human and machine texts; the score is the fitted log-odds of "machine".
- ``fisher``: Fisher's method on empirical p-values, each member's p-value taken against its
  own human reference scores: ``-2 * sum_i log p_i`` (chi-square with 2k dof under
  independence; used here only as a monotone score, the threshold comes from calibration).

A member contributes every signed score it offers through ``features(texts)`` (the Gen-0
detector: Fast-DetectGPT, log-prob, log-rank, entropy, and Binoculars with an observer), or
else its ``score(texts)``. Fit on one human split and calibrate on another: the combined
detector's calibration must not see the texts it was fitted on. A text abstains (NaN) when any
member abstains. `save_combined` / `load_combined` keep the fitted parameters with the
members' identities, so a fit is applied only to the detectors it was fitted with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.detectors.calibration import detector_identity, identity_differences
from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.atomic import write_text_atomic
from collapseguard.io.readers import read_json_file

METHODS = ("logistic", "fisher")
FORMAT_VERSION = 1


@dataclass
class CombineConfig:
    """method: logistic | fisher; members: the member detectors' names (for the record)."""

    method: str = "logistic"
    members: tuple = ()

    def __post_init__(self):
        check_choice("combination method", self.method, METHODS)


def empirical_p_values(scores, reference) -> np.ndarray:
    """(1 + #reference >= s) / (n + 1) per score: small when s is high for human text."""
    ref = np.sort(np.asarray(reference, dtype=float))
    ref = ref[~np.isnan(ref)]
    s = np.asarray(scores, dtype=float)
    p = (1.0 + len(ref) - np.searchsorted(ref, s, side="left")) / (len(ref) + 1.0)
    return np.where(np.isnan(s), np.nan, p)


def fisher_statistic(p_values) -> np.ndarray:
    """-2 sum log p over the last axis: (n, k) -> (n,)."""
    return -2.0 * np.log(np.asarray(p_values, dtype=float)).sum(axis=-1)


class CombinedDetector(Detector):
    """Combines member detectors' scores; call `fit` (or `fit_scores`) before scoring."""

    name = "combined_v1"

    def __init__(self, members: list, method: str = "logistic"):
        if not members:
            raise CollapseguardError("a combined detector needs at least one member detector")
        self.members = list(members)
        self.config = CombineConfig(method, tuple(m.name for m in self.members))
        self.params: dict | None = None

    # --- fitting -----------------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        """One name per column of `member_scores`: ``member.feature``, or the member's name."""
        return [name for m in self.members for name in _member_feature_names(m)]

    def member_scores(self, texts, progress=None) -> np.ndarray:
        """(n, k) matrix of the members' signed scores."""
        texts = list(texts)
        return np.column_stack([_member_matrix(m, texts, progress) for m in self.members])

    def count_windows(self, texts) -> int:
        """Forward windows the members will run (for progress bars); 0 when none reports them."""
        return sum(m.count_windows(texts) for m in self.members if hasattr(m, "count_windows"))

    def fit(self, human_texts, machine_texts=None) -> CombinedDetector:
        h = self.member_scores(human_texts)
        m = self.member_scores(machine_texts) if machine_texts is not None else None
        return self.fit_scores(h, m)

    def fit_scores(self, human: np.ndarray, machine: np.ndarray | None = None) -> CombinedDetector:
        """Fit from member-score matrices (n, k); rows with any NaN are left out."""
        human = _complete_rows(human)
        if self.config.method == "fisher":
            self.params = {"reference": [sorted(col.tolist()) for col in human.T]}
            return self
        if machine is None:
            raise CollapseguardError("the logistic combination needs machine texts to fit; pass machine_texts or use method='fisher'")
        machine = _complete_rows(machine)
        from sklearn.linear_model import LogisticRegression

        x = np.vstack([human, machine])
        y = np.r_[np.zeros(len(human)), np.ones(len(machine))]
        mean, std = x.mean(0), x.std(0)
        std[std == 0] = 1.0
        model = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / std, y)
        self.params = {"mean": mean.tolist(), "std": std.tolist(),
                       "coef": model.coef_[0].tolist(), "intercept": float(model.intercept_[0])}
        return self

    # --- scoring -----------------------------------------------------------------------------
    def combine(self, matrix: np.ndarray) -> np.ndarray:
        """Combined scores (n,) from member scores (n, k); NaN where any member abstained."""
        if self.params is None:
            raise CollapseguardError("combined detector is not fitted; call fit(human_texts, machine_texts) first")
        x = np.asarray(matrix, dtype=float)
        if self.config.method == "fisher":
            p = np.column_stack([empirical_p_values(x[:, i], ref) for i, ref in enumerate(self.params["reference"])])
            out = fisher_statistic(p)
        else:
            z = (x - np.asarray(self.params["mean"])) / np.asarray(self.params["std"])
            out = z @ np.asarray(self.params["coef"]) + self.params["intercept"]
        return np.where(np.isnan(x).any(axis=1), np.nan, out)

    def score(self, texts, progress=None) -> np.ndarray:
        return self.combine(self.member_scores(texts, progress))

    def identity(self) -> dict:
        params = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return {"name": self.name, "config": {"method": self.config.method, "params_sha256": params,
                                              "members": [detector_identity(m) for m in self.members]}}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


def _member_feature_names(member) -> list[str]:
    if hasattr(member, "features"):
        return [f"{member.name}.{f}" for f in member.feature_names()]
    return [member.name]


def _member_matrix(member, texts: list[str], progress) -> np.ndarray:
    """(n, k) signed scores of one member; progress goes to members that report windows."""
    kwargs = {"progress": progress} if progress is not None and hasattr(member, "count_windows") else {}
    if hasattr(member, "features"):
        return np.asarray(member.features(texts, **kwargs), dtype=float)
    return np.asarray(member.score(texts, **kwargs), dtype=float).reshape(-1, 1)


def save_combined(detector: CombinedDetector, path) -> None:
    """Write a fitted combined detector (method, parameters, members' identities) as JSON, atomically."""
    if detector.params is None:
        raise CollapseguardError("combined detector is not fitted; nothing to save")
    blob = {"collapseguard_combined": FORMAT_VERSION, "method": detector.config.method,
            "features": detector.feature_names(), "params": detector.params,
            "members": [detector_identity(m) for m in detector.members]}
    write_text_atomic(path, json.dumps(blob, indent=1, sort_keys=True) + "\n")


def load_combined(path, members: list) -> CombinedDetector:
    """A combined detector from `save_combined`'s file, over `members` built with the same options."""
    blob = read_json_file(path, "combined-detector", "fit one with `collapseguard detect combine`")
    if not isinstance(blob, dict) or blob.get("collapseguard_combined") != FORMAT_VERSION:
        raise CollapseguardError(f"{path}: not a combined-detector file (version {FORMAT_VERSION}); refit with `collapseguard detect combine`")
    det = CombinedDetector(members, blob["method"])
    saved, current = blob["members"], [detector_identity(m) for m in members]
    if saved != current:
        diffs = identity_differences({"members": saved}, {"members": current}, "fit") or ["members"]
        raise CollapseguardError(f"{path}: fitted with other member detectors ({'; '.join(diffs)}); "
                                 "pass the same detector options or refit with `collapseguard detect combine`")
    det.params = blob["params"]
    return det


def _complete_rows(matrix) -> np.ndarray:
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2:
        raise CollapseguardError(f"member scores must be a (texts, detectors) matrix, got shape {x.shape}")
    x = x[~np.isnan(x).any(axis=1)]
    if len(x) == 0:
        raise CollapseguardError("every fitting text abstained in some member detector; pass longer texts")
    return x
