"""`combined_v1`: one score from several detectors, calibrated like any other detector.

Two methods:
- ``logistic``: a logistic regression on the standardised member scores, fitted on labelled
  human and machine texts; the score is the fitted log-odds of "machine".
- ``fisher``: Fisher's method on empirical p-values, each member's p-value taken against its
  own human reference scores: ``-2 * sum_i log p_i`` (chi-square with 2k dof under
  independence; used here only as a monotone score, the threshold comes from calibration).

Fit on one human split and calibrate on another: the combined detector's calibration must not
see the texts it was fitted on. A text abstains (NaN) when any member abstains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.detectors.calibration import detector_identity
from collapseguard.errors import CollapseguardError, check_choice

METHODS = ("logistic", "fisher")


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
    def member_scores(self, texts) -> np.ndarray:
        """(n, k) matrix of member scores."""
        texts = list(texts)
        return np.column_stack([np.asarray(m.score(texts), dtype=float) for m in self.members])

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

    def score(self, texts) -> np.ndarray:
        return self.combine(self.member_scores(texts))

    def identity(self) -> dict:
        params = hashlib.sha256(json.dumps(self.params, sort_keys=True).encode()).hexdigest()
        return {"name": self.name, "config": {"method": self.config.method, "params_sha256": params,
                                              "members": [detector_identity(m) for m in self.members]}}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


def _complete_rows(matrix) -> np.ndarray:
    x = np.asarray(matrix, dtype=float)
    if x.ndim != 2:
        raise CollapseguardError(f"member scores must be a (texts, detectors) matrix, got shape {x.shape}")
    x = x[~np.isnan(x).any(axis=1)]
    if len(x) == 0:
        raise CollapseguardError("every fitting text abstained in some member detector; pass longer texts")
    return x
