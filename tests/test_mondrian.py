"""Per-slice (Mondrian) thresholds: the FPR promise per slice, and abstains outside the calibration's support."""

import numpy as np
import pytest
from bad_input import invoke, jsonl

from collapseguard.detectors import mondrian
from collapseguard.detectors.calibration import (
    add_slices,
    calibrate_scores,
    decide,
    decide_with_reasons,
    decision_rates,
    load_calibration,
    save_calibration,
)
from collapseguard.errors import CollapseguardError

NEWS = ("the council said on tuesday that the plan which was approved in march would cost more than expected "
        "and that the minister had been told of the delay by officials from the department").split()
CHAT = "lol i know right ! you did what ? no way i was like omg haha you should totally come too ! what do you think".split()


def run(*args):
    """Run the CLI and require success."""
    res = invoke(args)
    assert res.exit_code == 0, (res.output, repr(res.exception))
    return res


def corpus(words, n, seed, lo=60, hi=200):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(lo, hi)))) + "." for _ in range(n)]


def two_domain_world(seed, n_news, n_chat):
    """Human texts of two styles; the detector scores chat 2.5 higher (it 'likes' that style)."""
    rng = np.random.default_rng(seed)
    texts = corpus(NEWS, n_news, seed) + corpus(CHAT, n_chat, seed + 1)
    scores = np.r_[rng.normal(0, 1, n_news), rng.normal(2.5, 1, n_chat)]
    return texts, scores


def calibration(scores, texts, fpr=0.01, **kw):
    cal = calibrate_scores(scores, fpr, detector="toy", fingerprint="f", identity={}, sha256="s")
    notes = add_slices(cal, scores, texts, **kw)
    return cal, notes


def test_conformal_threshold_needs_enough_texts_and_keeps_the_rate():
    assert mondrian.min_texts(0.01) == 99 and mondrian.min_texts(0.05) == 19
    assert mondrian.conformal_threshold(np.arange(98.0), 0.01) is None
    assert mondrian.conformal_threshold(np.arange(99.0), 0.01) == 98.0  # the maximum of 99
    rng = np.random.default_rng(0)
    flagged = [np.mean(rng.normal(size=5000) > mondrian.conformal_threshold(rng.normal(size=300), 0.05))
               for _ in range(200)]
    assert np.mean(flagged) <= 0.05 + 0.004  # exchangeable draws: at most f on average


def test_pooled_calibration_breaks_the_minority_slice_and_per_slice_holds_it():
    texts, scores = two_domain_world(0, 4000, 600)
    cal, notes = calibration(scores, texts)
    assert notes == [] and cal.slices["by"] == "cluster" and len(cal.slices["domains"]) >= 2
    new_texts, new_scores = two_domain_world(7, 3000, 3000)
    is_chat = np.r_[np.zeros(3000, bool), np.ones(3000, bool)]
    pooled = decide(new_scores, cal)
    per_slice, reasons = decide_with_reasons(new_scores, cal, new_texts)
    pooled_chat_fpr = np.mean(pooled[is_chat] == "machine")
    assert pooled_chat_fpr > 0.05  # the pooled 1% threshold flags far more of the chat humans
    for part in (is_chat, ~is_chat):
        d = per_slice[part]
        decided = d != "abstain"
        assert decided.mean() > 0.9
        assert np.mean(d[decided] == "machine") <= 0.02  # <= 2x the promise on each slice
    assert all(r for r, d in zip(reasons, per_slice) if d == "abstain")


def test_text_outside_the_support_abstains_with_its_reason_never_machine():
    texts, scores = two_domain_world(1, 1500, 0)
    cal, _ = calibration(scores, texts)
    far = corpus(["ZZZ", "123", "@@", "###"], 50, 3)  # nothing like the calibration text
    short = corpus(NEWS, 50, 4, lo=3, hi=8)
    d, reasons = decide_with_reasons(np.full(100, 1e9), cal, far + short)  # scores far above every threshold
    assert set(d) == {"abstain"}
    assert all("out of support" in r or "too short" in r for r in reasons[:50])
    assert all("too short" in r for r in reasons[50:])


def test_group_column_slices_and_unseen_or_small_groups_abstain():
    texts, scores = two_domain_world(2, 600, 600)
    groups = ["news"] * 600 + ["chat"] * 550 + ["tiny"] * 50
    cal, _ = calibration(scores, texts, groups=groups)
    assert cal.slices["by"] == "group" and "unsupported" in cal.slices["domains"]["tiny"]
    d, reasons = decide_with_reasons(np.full(3, 1e9), cal, texts[:1] + texts[-2:], ["news", "tiny", "other"])
    assert d.tolist() == ["machine", "abstain", "abstain"]
    assert "group 'tiny' not calibrated (only 50" in reasons[1] and "group 'other' not calibrated" in reasons[2]


def test_too_few_texts_for_any_threshold_are_refused_and_one_slice_round_trips(tmp_path):
    texts, scores = two_domain_world(3, 60, 0)
    with pytest.raises(CollapseguardError, match="99"):  # 60 texts cannot support 1%, pooled or per slice
        calibration(scores, texts)
    texts, scores = two_domain_world(3, 400, 0)
    cal, _ = calibration(scores, texts, mode="length")
    save_calibration(cal, tmp_path / "c.json")
    back = load_calibration(tmp_path / "c.json")
    assert back.slices == cal.slices and list(back.slices["domains"]) == ["all"]


def test_decision_rates_count_abstains_apart():
    d = np.array(["machine", "human", "abstain", "machine", "abstain", "human"], dtype=object)
    y = np.array([0, 0, 0, 1, 1, 1], bool)
    r = decision_rates(d, y)
    assert r["human"]["fpr"] == 0.5 and r["human"]["abstain_share"] == pytest.approx(1 / 3)
    assert r["machine"]["tpr"] == 0.5 and r["machine"]["tpr_all"] == pytest.approx(1 / 3)


def test_scan_abstains_on_short_and_unsupported_records_with_their_reason(tmp_path):
    """Through policy calibrate and scan: too short / out of support -> abstain with the reason, never synthetic."""
    import json

    import pyarrow.parquet as pq

    jsonl(tmp_path / "h.jsonl", corpus(NEWS, 60, 1))
    jsonl(tmp_path / "m.jsonl", [" ".join(["the plan would cost more ."] * 12) for _ in range(60)])
    run("detect", "train", "--human", tmp_path / "h.jsonl", "--machine", tmp_path / "m.jsonl", "--features", "style",
        "--out", tmp_path / "det")
    policy = tmp_path / "collapseguard.toml"
    policy.write_text('text_column = "text"\ncalibration = "cal.json"\n'
                      '[[detectors]]\nname = "learned_v1"\noptions = { model_dir = "det" }\n')
    jsonl(tmp_path / "h_cal.jsonl", corpus(NEWS, 400, 2))
    res = run("policy", "calibrate", "--policy", policy, "--human", tmp_path / "h_cal.jsonl", "--fpr", "0.05",
              "--out", tmp_path / "cal.json")
    assert "per slice" in res.output and "abstained" in res.output
    cal = json.loads((tmp_path / "cal.json").read_text())
    assert cal["slices"]["domains"] and cal["abstain"]["human_heldout"] < 0.1
    (tmp_path / "data").mkdir()
    short = corpus(NEWS, 10, 3, lo=3, hi=8)
    far = [" ".join(["ZZZZ 1234 @@ ###"] * 30) for _ in range(10)]  # scores very machine-like, unlike any human text
    jsonl(tmp_path / "data" / "a.jsonl", corpus(NEWS, 50, 4) + short + far)
    out = json.loads(run("scan", tmp_path / "data", "--out", tmp_path / "scan", "--policy", policy, "--json").stdout)
    table = pq.read_table(tmp_path / "scan" / "attributes" / "a.jsonl.parquet").to_pylist()
    assert all(r["decision"] == "abstain" and "too short" in r["reason"] for r in table[50:60])
    assert all(r["decision"] == "abstain" and ("out of support" in r["reason"] or "too short" in r["reason"])
               for r in table[60:])
    assert sum(r["decision"] == "abstain" for r in table[:50]) <= 3, [r["reason"] for r in table[:50] if r["reason"]]
    assert out["decisions"]["abstain"] >= 20 and out["abstain_share"] == out["decisions"]["abstain"] / 70
    assert "human_heldout" in out["calibration_abstain"]
    assert "abstained:" in (tmp_path / "scan" / "summary.md").read_text()


def test_detect_cli_reports_abstain_shares_beside_fpr_and_tpr(tmp_path):
    import json

    machine = lambda n, s: [" ".join(["the plan would cost more ."] * int(k)) for k in  # noqa: E731
                            np.random.default_rng(s).integers(12, 30, n)]
    jsonl(tmp_path / "h.jsonl", corpus(NEWS, 60, 1))
    jsonl(tmp_path / "m.jsonl", machine(60, 2))
    run("detect", "train", "--human", tmp_path / "h.jsonl", "--machine", tmp_path / "m.jsonl", "--features", "style",
        "--out", tmp_path / "det")
    det = ["--detector", "learned_v1", "--model", tmp_path / "det"]
    jsonl(tmp_path / "cal.jsonl", corpus(NEWS, 300, 3))
    out = json.loads(run("detect", "calibrate", "--human", tmp_path / "cal.jsonl", *det, "--no-domain-embeddings",
                         "--fpr", "0.05", "--out", tmp_path / "cal.json", "--json").stdout)
    assert out["slices"] and 0 <= out["abstain_share"] < 0.1 and out["slice_notes"] == []
    jsonl(tmp_path / "th.jsonl", corpus(NEWS, 100, 4) + corpus(NEWS, 20, 5, lo=3, hi=8))
    jsonl(tmp_path / "tm.jsonl", machine(100, 6))
    # the machine texts repeat the training template (one source): allowed here, the abstains are the point
    ev = json.loads(run("detect", "evaluate", "--human", tmp_path / "th.jsonl", "--machine", tmp_path / "tm.jsonl",
                        *det, "--calibration", tmp_path / "cal.json", "--allow-overlap", "--json").stdout)["calibrated"]
    assert ev["per_slice"] and ev["human"]["abstain_share"] >= 20 / 120 - 1e-9 and ev["human"]["fpr"] <= 0.1
    # this machine text is unlike any human calibration text: outside the support, it abstains (the cost,
    # reported as tpr_all), where a pooled threshold would have called it machine
    assert ev["machine"]["abstain_share"] == 1.0 and ev["machine"]["tpr"] is None and ev["machine"]["tpr_all"] == 0.0
    rows = [json.loads(x) for x in run("detect", "score", tmp_path / "th.jsonl", *det, "--calibration",
                                       tmp_path / "cal.json", "--json").stdout.splitlines() if x.startswith("{")]
    assert all(r["decision"] == "abstain" and "too short" in r["reason"] for r in rows[100:])


def test_versions_of_one_source_count_once():
    """300 texts that are five cuts of 60 articles are 60 draws, too few for a 1% threshold: they abstain."""
    articles = corpus(NEWS, 60, 11, lo=150, hi=200)
    texts = [" ".join(a.split()[:k]) for a in articles for k in (100, 110, 120, 130, 140)]
    scores = np.repeat(np.random.default_rng(0).normal(size=60), 5)
    cal, _ = calibration(scores, texts, mode="length")
    (entry,) = cal.slices["domains"]["all"]["slices"]
    assert entry["threshold"] is None and entry["n_sources"] == 60
    d, reasons = decide_with_reasons(np.array([9.0]), cal, texts[:1])
    assert d.tolist() == ["abstain"] and "60 sources; fpr 0.01 needs >= 99" in reasons[0]
    cal, _ = calibration(scores, texts, mode="length", fpr=0.05)  # 60 sources support 5%
    assert cal.slices["domains"]["all"]["slices"][0]["threshold"] == np.sort(np.unique(scores))[57]


def test_policy_holdout_keeps_each_source_on_one_side():
    from collapseguard.scan.calibrate import holdout_split

    sources = np.repeat(np.arange(40), 5)  # 40 articles, 5 versions each
    held, fit = holdout_split(sources, 0.3, seed=1)
    assert not set(sources[held]) & set(sources[fit])
    assert 0.2 < len(held) / len(sources) < 0.4
    held, fit = holdout_split(np.arange(3), 0.3, seed=0)  # too few for 30%: one source still held out
    assert len(held) == 1 and len(fit) == 2
    with pytest.raises(CollapseguardError, match="1 source"):
        holdout_split(np.zeros(10, dtype=int), 0.3, seed=0)


def test_policy_slices_count_each_source_once():
    """301 versions of one low-scoring article must not buy 19 firing articles: the slice's
    threshold lets at most (n + 1) F - 1 of its n *sources* fire."""
    from types import SimpleNamespace

    from collapseguard.detectors.grouping import source_maxima
    from collapseguard.scan.calibrate import add_policy_slices, fires

    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(NEWS, 60)) for _ in range(400)]
    sources = np.r_[np.zeros(301, dtype=int), np.arange(1, 100)]
    scores = np.r_[np.zeros(301), rng.uniform(size=99)][:, None]
    cal = SimpleNamespace(fpr_target=0.05, notes=[], slices=None)
    add_policy_slices(cal, texts, scores, [None], "length", sources=sources)
    (entry,) = [e for dom in cal.slices["domains"].values() for e in dom["slices"]]
    assert entry["n_sources"] == 100
    firing = fires(source_maxima(scores, sources), entry["thresholds"]).sum()
    assert firing <= (100 + 1) * 0.05 - 1
    per_text = SimpleNamespace(fpr_target=0.05, notes=[], slices=None)
    add_policy_slices(per_text, texts, scores, [None], "length")  # every text its own source: many more fire
    (loose,) = [e for dom in per_text.slices["domains"].values() for e in dom["slices"]]
    assert fires(source_maxima(scores, sources), loose["thresholds"]).sum() > 3 * firing


def test_source_maxima_ignore_missing_scores():
    from collapseguard.detectors.grouping import source_maxima

    scores = np.array([[0.1, np.nan], [0.5, np.nan], [np.nan, 0.2], [0.3, 0.4]])
    out = source_maxima(scores, np.array([7, 7, 3, 3]))
    np.testing.assert_array_equal(out, [[0.3, 0.4], [0.5, np.nan]])


def test_detect_score_on_drift_abstain_touches_only_the_flagged_group():
    from collapseguard.cli.detect.common import abstain_on_drift

    decisions = ["machine", "human", "human", "machine"]
    reasons = ["", "", "", ""]
    checks = [("a", {"warn": True}), ("b", {"warn": False, "verdict": "too few texts"})]
    abstain_on_drift(checks, decisions, reasons, ["a", "b", "a", "b"])
    assert decisions == ["abstain", "human", "abstain", "machine"]
    assert reasons[0].startswith("drift:") and reasons[1] == ""
    abstain_on_drift([(None, {"warn": True})], decisions, reasons, None)
    assert set(decisions) == {"abstain"}
