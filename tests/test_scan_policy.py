"""Guard policy parsing, the union decision rule, policy-wide calibration and the prevalence estimate."""

from __future__ import annotations

import numpy as np
import pytest

from collapseguard.errors import CollapseguardError
from collapseguard.scan.calibrate import fires, split_alpha, thresholds_at
from collapseguard.scan.policy import Unreadable, decide, load_policy, screen_texts
from collapseguard.scan.prevalence import rogan_gladen, synthetic_share


def write(tmp_path, text):
    p = tmp_path / "collapseguard.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("body, message", [
    ('[[detectors]]\nname = "minhash_vl"\n', "did you mean 'minhash_v1'"),
    ('text_column = "text"\n', "no detectors"),
    ('[[detectors]]\nname = "kgw_v1"\noptions = { hashing_key = 5 }\n', "secrets come from the environment"),
    ('max_synthetic_share = 1.5\n[[detectors]]\nname = "kgw_v1"\n', "max_synthetic_share must be a number in [0, 1]"),
    ('colum = "x"\n[[detectors]]\nname = "kgw_v1"\n', "unknown key(s) colum"),
    ('[[detectors]]\nname = "kgw_v1"\nthreshold = "high"\n', "threshold must be a number"),
    ('[[detectors]\n', "not valid TOML"),
])
def test_bad_policies_are_refused_with_the_field(tmp_path, body, message):
    with pytest.raises(CollapseguardError, match=None) as err:
        load_policy(write(tmp_path, body))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_paths_resolve_against_the_policy_file_and_names_are_versioned(tmp_path):
    p = write(tmp_path, 'calibration = "c.json"\n[[detectors]]\nname = "kgw_v1"\n[[detectors]]\nname = "kgw_v1"\n')
    pol = load_policy(p)
    assert pol.calibration_path == tmp_path / "c.json"
    assert pol.column_names() == ["kgw_v1", "kgw_v1_2"]
    assert pol.trusted_key_paths == []


def test_union_rule_names_every_detector_that_fired():
    scores = np.array([[0.9, 5.0], [0.1, 5.0], [0.1, 0.0], [np.nan, np.nan], [np.nan, 0.0]])
    decision, reason = decide(scores, [0.5, 4.0], ["minhash_v1", "kgw_v1"], [None, None, None, None, "not UTF-8 (byte 3)"])
    assert decision == ["synthetic", "synthetic", "human", "abstain", "abstain"]
    assert reason == ["minhash_v1,kgw_v1", "kgw_v1", "", "every detector abstained", "not UTF-8 (byte 3)"]


def test_screen_texts_turns_bad_records_into_reasons():
    texts, reasons = screen_texts(["ok", None, 5, "x" * 11, Unreadable("not UTF-8 (byte 0)")], max_chars=10)
    assert texts == ["ok", None, None, None, None]
    assert reasons == [None, "empty (null)", "not text (int)", "too long (11 chars > max_chars 10)", "not UTF-8 (byte 0)"]


def test_split_keeps_the_union_fpr_and_beats_bonferroni_on_correlated_detectors():
    rng = np.random.default_rng(0)
    base = rng.normal(size=20000)
    correlated = np.stack([base, base + 0.01 * rng.normal(size=20000), rng.normal(size=20000)], 1)
    fpr = 0.03
    alpha = split_alpha(correlated, [None, None, None], fpr)
    th = thresholds_at(alpha, correlated, [None, None, None])
    assert fires(correlated, th).mean() <= fpr
    assert alpha > fpr / 3  # two nearly identical detectors cost one share, not two
    held = np.stack([b := rng.normal(size=20000), b + 0.01 * rng.normal(size=20000), rng.normal(size=20000)], 1)
    assert abs(fires(held, th).mean() - fpr) < 0.006  # and it holds on fresh human scores


def test_fixed_thresholds_that_alone_exceed_the_target_are_refused():
    scores = np.array([[1.0], [1.0], [0.0], [0.0]])
    with pytest.raises(CollapseguardError, match="fixed thresholds alone flag"):
        split_alpha(scores, [0.5], 0.1)


def test_rogan_gladen_interval_covers_the_truth():
    """Simulated scans with known prevalence, FPR and TPR: the 95% interval covers pi ~95% of the time."""
    rng = np.random.default_rng(1)
    pi, f, t, n, n_cal = 0.2, 0.02, 0.7, 2000, 600
    hits = 0
    for rep in range(200):
        synthetic = rng.random(n) < pi
        flagged = np.where(synthetic, rng.random(n) < t, rng.random(n) < f).sum()
        kf, kt = rng.binomial(n_cal, f), rng.binomial(n_cal, t)
        s = synthetic_share(int(flagged), n, (kf, n_cal), (kt, n_cal), seed=rep)
        hits += s["low"] <= pi <= s["high"]
    assert 0.90 <= hits / 200 <= 0.995


def test_share_without_tpr_is_a_lower_bound_and_without_fpr_is_not_a_prevalence():
    s = synthetic_share(300, 1000, (10, 1000), None)
    assert s["kind"] == "lower_bound" and s["estimate"] is None
    assert s["low"] < (0.3 - 0.01) / 0.99
    assert synthetic_share(300, 1000, None, None)["kind"] == "flag_share_only"
    assert rogan_gladen(0.3, 0.01, 0.9) == pytest.approx((0.3 - 0.01) / 0.89)


def test_drifted_text_abstains_by_default_and_the_choice_is_in_the_fingerprint(tmp_path, monkeypatch):
    from collapseguard.scan.policy import GuardPolicy

    monkeypatch.setattr(GuardPolicy, "identities", lambda self: [])
    body = '[[detectors]]\nname = "kgw_v1"\n'
    default = load_policy(write(tmp_path, body))
    assert default.on_drift == "abstain"
    abstain = load_policy(write(tmp_path, 'on_drift = "abstain"\n' + body))
    warn = load_policy(write(tmp_path, 'on_drift = "warn"\n' + body))
    assert default.fingerprint() == abstain.fingerprint() != warn.fingerprint()
    with pytest.raises(CollapseguardError, match="on_drift"):
        load_policy(write(tmp_path, 'on_drift = "ignore"\n' + body))
