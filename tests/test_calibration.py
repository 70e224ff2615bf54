"""Calibration: thresholds, exact intervals, decisions, persistence and fingerprint checks."""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from collapseguard.detectors.base import Detector
from collapseguard.detectors.calibration import (
    calibrate,
    calibrate_scores,
    check_matches,
    clopper_pearson,
    decide,
    load_calibration,
    save_calibration,
)
from collapseguard.errors import CollapseguardError


@dataclass
class LenConfig:
    offset: float = 0.0
    min_chars: int = 1


class LengthDetector(Detector):
    """A toy detector: score = len(text) + offset; abstains on short texts."""

    name = "toy_len_v1"

    def __init__(self, config):
        self.config = config

    def score(self, texts):
        return np.array([len(t) + self.config.offset if len(t) >= self.config.min_chars else np.nan for t in texts])


def cal_from(scores, fpr):
    return calibrate_scores(scores, fpr, detector="x", fingerprint="f", identity={}, sha256="h")


@pytest.mark.parametrize("k,n", [(0, 50), (3, 50), (17, 400), (50, 50)])
def test_clopper_pearson_equals_scipy_exact_interval(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ref.low, ref.high), abs=1e-10)


def test_threshold_keeps_achieved_fpr_at_or_below_target():
    rng = np.random.default_rng(0)
    for fpr in (0.05, 0.01, 0.001):
        cal = cal_from(rng.normal(size=5000), fpr)
        assert cal.achieved_fpr <= fpr
        assert cal.fpr_ci95[0] <= cal.achieved_fpr <= cal.fpr_ci95[1]


def test_true_fpr_on_held_out_normal_draws_falls_in_interval_about_95_percent():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(300):
        cal = cal_from(rng.normal(size=2000), 0.05)
        true_fpr = norm.sf(cal.threshold)  # closed form for held-out N(0, 1) human scores
        covered.append(cal.fpr_ci95[0] <= true_fpr <= cal.fpr_ci95[1])
    assert 0.90 <= np.mean(covered) <= 1.0
    held_out = rng.normal(size=200_000)
    assert np.mean(held_out > cal.threshold) == pytest.approx(norm.sf(cal.threshold), abs=0.003)


def test_abstentions_are_excluded_and_decided_as_abstain():
    scores = np.array([np.nan, 1.0, 2.0, 3.0, np.nan, 4.0])
    cal = cal_from(scores, 0.25)
    assert cal.n == 4 and cal.n_abstained == 2
    d = decide([np.nan, cal.threshold, cal.threshold + 1, -5.0], cal)
    assert list(d) == ["abstain", "human", "machine", "human"]


def test_all_abstained_is_an_error():
    with pytest.raises(CollapseguardError, match="abstained"):
        cal_from([np.nan, np.nan], 0.1)


def test_p_values_of_held_out_human_scores_are_uniform():
    rng = np.random.default_rng(2)
    cal = cal_from(rng.normal(size=4000), 0.01)
    p = cal.p_values(rng.normal(size=20000))
    for q in (0.01, 0.05, 0.5):
        assert np.mean(p <= q) == pytest.approx(q, abs=0.01)
    assert np.isnan(cal.p_values([np.nan]))[0]


def test_calibrate_save_load_roundtrip_and_hash(tmp_path):
    det = LengthDetector(LenConfig())
    texts = ["a" * i for i in range(1, 200)]
    cal = calibrate(det, texts, 0.05)
    assert cal.n == 199 and cal.detector == "toy_len_v1"
    path = tmp_path / "cal.json"
    save_calibration(cal, path)
    again = load_calibration(path)
    assert again == cal
    assert calibrate(det, texts[::-1], 0.05).texts_sha256 != cal.texts_sha256
    check_matches(again, LengthDetector(LenConfig()))


def test_other_configuration_is_refused_naming_the_difference(tmp_path):
    cal = calibrate(LengthDetector(LenConfig()), ["abc", "de", "fghi"], 0.5)
    with pytest.raises(CollapseguardError, match=r"offset: 0\.0 \(calibration\) vs 2\.0"):
        check_matches(cal, LengthDetector(LenConfig(offset=2.0)))


def test_bad_calibration_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CollapseguardError, match="not a calibration JSON"):
        load_calibration(bad)
    bad.write_text('{"threshold": 1}')
    with pytest.raises(CollapseguardError, match="not a collapseguard calibration"):
        load_calibration(bad)
    with pytest.raises(CollapseguardError, match="fpr must be"):
        cal_from([1.0, 2.0], 1.5)
