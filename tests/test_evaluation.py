"""Evaluation metrics against sklearn and closed forms; the combined detector."""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import combine_pvalues
from sklearn.metrics import roc_auc_score

from collapseguard.detectors.base import Detector
from collapseguard.detectors.calibration import calibrate, check_matches
from collapseguard.detectors.combine import (
    CombinedDetector,
    empirical_p_values,
    load_combined,
    save_combined,
)
from collapseguard.detectors.evaluation import auroc, evaluate_by, evaluate_scores, length_bucket
from collapseguard.errors import CollapseguardError


def test_auroc_equals_sklearn_with_ties_and_nans():
    rng = np.random.default_rng(0)
    h = np.round(rng.normal(size=300), 1)
    m = np.round(rng.normal(0.7, 1, size=200), 1)
    y = np.r_[np.zeros(300), np.ones(200)]
    ref = roc_auc_score(y, np.r_[h, m])
    assert auroc(h, m) == pytest.approx(ref, abs=1e-12)
    assert auroc(np.r_[h, np.nan], np.r_[np.nan, m]) == pytest.approx(ref, abs=1e-12)


def test_tpr_at_fpr_matches_closed_form_for_shifted_normals():
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    h, m = rng.normal(size=100_000), rng.normal(2.0, 1.0, size=100_000)
    ev = evaluate_scores(h, m)
    for f in (0.05, 0.01):
        assert ev.tpr_at_fpr[f"{f:g}"] == pytest.approx(norm.sf(norm.isf(f) - 2.0), abs=0.01)
        assert ev.fpr_achieved[f"{f:g}"] <= f
    assert ev.auroc == pytest.approx(norm.cdf(2.0 / np.sqrt(2)), abs=0.005)


def test_abstained_machine_texts_are_never_detections():
    ev = evaluate_scores([0.0, 1.0, 2.0], [np.nan, 10.0], fprs=(0.34,))
    assert ev.tpr_at_fpr["0.34"] == 0.5 and ev.abstained_machine == 1


def test_reference_human_sets_the_threshold_and_slices_partition():
    rng = np.random.default_rng(2)
    s = np.r_[rng.normal(size=400), rng.normal(1.5, 1, size=400)]
    y = np.r_[np.zeros(400, bool), np.ones(400, bool)]
    dom = np.array(["a", "b"] * 400)
    rows = evaluate_by(s, y, {"domain": dom}, reference_human=rng.normal(size=1000))
    by = {(r["slice"], r["group"]): r for r in rows}
    assert by[("domain", "a")]["n_human"] + by[("domain", "b")]["n_human"] == by[("all", "all")]["n_human"]
    assert by[("domain", "a")]["thresholds"] == by[("all", "all")]["thresholds"]
    assert by[("domain", "a")]["auroc"] == pytest.approx(roc_auc_score(y[dom == "a"], s[dom == "a"]))


def test_length_buckets():
    assert length_bucket("a " * 10) == "0-50 words"
    assert length_bucket("a " * 150) == "100-200 words"
    assert length_bucket("a " * 999) == ">=200 words"


@dataclass
class ColConfig:
    column: int = 0


class ColumnDetector(Detector):
    """Toy member: the text holds space-separated numbers; this member scores column i."""

    name = "toy_col_v1"

    def __init__(self, column):
        self.config = ColConfig(column)

    def score(self, texts):
        return np.array([float(t.split()[self.config.column]) for t in texts])


def make(rng, n, shift):
    a, b = rng.normal(shift, 1, n), rng.normal(shift, 1, n)
    return [f"{x} {y}" for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize("method", ["logistic", "fisher"])
def test_combined_beats_each_member_and_calibrates(method):
    rng = np.random.default_rng(3)
    members = [ColumnDetector(0), ColumnDetector(1)]
    det = CombinedDetector(members, method).fit(make(rng, 2000, 0), make(rng, 2000, 1))
    h_test, m_test = make(rng, 2000, 0), make(rng, 2000, 1)
    combined = auroc(det.score(h_test), det.score(m_test))
    for mem in members:
        assert combined > auroc(mem.score(h_test), mem.score(m_test)) + 0.02
    cal = calibrate(det, make(rng, 3000, 0), 0.05)
    check_matches(cal, det)
    held_out = det.score(make(rng, 5000, 0))
    assert np.mean(held_out > cal.threshold) == pytest.approx(0.05, abs=0.015)
    other = CombinedDetector([ColumnDetector(0), ColumnDetector(0)], method).fit(h_test, m_test)
    with pytest.raises(CollapseguardError, match="different detector configuration"):
        check_matches(cal, other)


def test_fisher_statistic_equals_scipy_combine_pvalues():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(500, 3))
    det = CombinedDetector([ColumnDetector(i) for i in range(3)], "fisher").fit_scores(ref)
    x = rng.normal(size=(20, 3))
    p = np.column_stack([empirical_p_values(x[:, i], ref[:, i]) for i in range(3)])
    expected = [combine_pvalues(row, method="fisher").statistic for row in p]
    assert det.combine(x) == pytest.approx(expected)
    x[0, 1] = np.nan
    assert np.isnan(det.combine(x)[0])


def test_saved_combined_scores_the_same_and_refuses_other_members(tmp_path):
    rng = np.random.default_rng(5)
    det = CombinedDetector([ColumnDetector(0), ColumnDetector(1)], "logistic").fit(make(rng, 500, 0), make(rng, 500, 1))
    save_combined(det, tmp_path / "comb.json")
    again = load_combined(tmp_path / "comb.json", [ColumnDetector(0), ColumnDetector(1)])
    probe = make(rng, 50, 0.5)
    assert again.score(probe) == pytest.approx(det.score(probe))
    assert again.fingerprint() == det.fingerprint()
    with pytest.raises(CollapseguardError, match=r"members\.1\.config\.column: 1 \(fit\) vs 0 \(detector\)"):
        load_combined(tmp_path / "comb.json", [ColumnDetector(0), ColumnDetector(0)])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CollapseguardError, match="not a combined-detector JSON"):
        load_combined(tmp_path / "bad.json", [ColumnDetector(0)])
