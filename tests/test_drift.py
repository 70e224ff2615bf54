"""The calibration's domain record and the out-of-domain warning, on made-up and real shifted corpora."""

import json
from pathlib import Path

import numpy as np
import pytest

from collapseguard.detectors.calibration import Calibration, decide, load_calibration
from collapseguard.detectors.drift import check_texts, domain_record, drift_warning

NEWS = ("the council said on tuesday that the plan , which was approved in march , would cost more than "
        "expected and that the minister had been told of the delay by officials from the department").split()
CHAT = ("lol i know right ! you did what ? no way ... i was like omg :) haha you should totally come too !! "
        "what do you think ? i dunno").split()
DETECT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "detect-dev"


def corpus(words, n, seed, lo=25, hi=60):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(lo, hi)))) for _ in range(n)]


def calibration_with(record) -> Calibration:
    return Calibration("x", "f", {}, 0.01, 0.0, 0.01, [0.0, 0.1], 100, 0, "s", domain=record)


def test_same_distribution_does_not_warn_and_a_shifted_one_does():
    record = domain_record(corpus(NEWS, 400, 0), embeddings=False)
    same = check_texts(record, corpus(NEWS, 300, 1))
    assert not same["warn"] and same["outside_share"] < 0.1
    shifted = check_texts(record, corpus(CHAT, 300, 2))
    assert shifted["warn"] and shifted["outside_share"] > 0.5
    cal = calibration_with(record)
    assert drift_warning(cal, corpus(NEWS, 300, 3)) is None
    msg = drift_warning(cal, corpus(CHAT, 300, 4))
    assert "classifier tells them" in msg and "0.01" in msg and "\n" not in msg


def test_a_partly_shifted_corpus_warns_with_its_share():
    record = domain_record(corpus(NEWS, 400, 0), embeddings=False)
    mixed = corpus(NEWS, 200, 5) + corpus(CHAT, 100, 6)
    rep = check_texts(record, mixed)
    assert rep["warn"] and 0.25 < rep["outside_share"] < 0.5  # a third is chat, plus the ~5% tail


def test_length_shift_alone_warns():
    record = domain_record(corpus(NEWS, 400, 0), embeddings=False)
    rep = check_texts(record, corpus(NEWS, 100, 7, lo=400, hi=500))
    assert rep["warn"] and any("median length" in r for r in rep["reasons"])


def test_calibrations_without_a_record_do_not_warn():
    assert drift_warning(calibration_with(None), corpus(CHAT, 50, 8)) is None


def test_per_group_thresholds_in_decide():
    cal = calibration_with(None)
    cal.groups = {"a": {"threshold": 1.0}, "b": {"threshold": 3.0}}
    out = decide(np.array([2.0, 2.0, 2.0, np.nan]), cal, ["a", "b", "c", "a"])
    assert out.tolist() == ["machine", "human", "machine", "abstain"]  # c: unseen -> pooled 0.0


def test_cli_per_group_calibration_and_warning(tmp_path):
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    pytest.importorskip("sklearn")
    rows = [{"text": t, "domain": "news"} for t in corpus(NEWS, 200, 10)] + \
           [{"text": t, "domain": "chat"} for t in corpus(CHAT, 200, 11)]
    cal_file, h, m = tmp_path / "cal.jsonl", tmp_path / "h.jsonl", tmp_path / "m.jsonl"
    cal_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    h.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus(NEWS, 60, 12)))
    m.write_text("".join(json.dumps({"text": " ".join([t[:60]] * 4)}) + "\n" for t in corpus(NEWS, 60, 13)))
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a])  # noqa: E731
    r = run("detect", "train", "--human", h, "--machine", m, "--features", "style", "--out", tmp_path / "det")
    assert r.exit_code == 0, r.output
    det = ["--detector", "learned_v1", "--model", tmp_path / "det"]
    r = run("detect", "calibrate", "--human", cal_file, *det, "--group-column", "domain", "--no-domain-embeddings",
            "--fpr", "0.05", "--out", tmp_path / "cal.json", "--json")
    assert r.exit_code == 0, r.output
    cal = load_calibration(tmp_path / "cal.json")
    assert set(cal.groups) == {"news", "chat"} and cal.groups["news"]["n"] == 200 and cal.domain["n"] == 400
    shifted = tmp_path / "shifted.jsonl"
    shifted.write_text("".join(json.dumps({"text": t, "domain": "news"}) + "\n" for t in corpus(CHAT, 100, 14)))
    r = run("detect", "score", shifted, *det, "--calibration", tmp_path / "cal.json", "--group-column", "domain",
            "--out", tmp_path / "s.parquet", "--json")
    assert r.exit_code == 0, r.output
    assert "group 'news'" in r.stderr and "may not hold" in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["drift_warnings"]
    r = run("detect", "evaluate", "--human", shifted, "--machine", m, *det, "--calibration", tmp_path / "cal.json", "--json",
            "--allow-overlap")  # m is the training machine text
    assert r.exit_code == 0, r.output
    assert "may not hold" in r.stderr and json.loads(r.stdout)["drift_warnings"]
    news_cal = tmp_path / "news_cal.jsonl"
    news_cal.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus(NEWS, 200, 15)))
    r = run("detect", "calibrate", "--human", news_cal, *det, "--no-domain-embeddings", "--out", tmp_path / "news.json")
    assert r.exit_code == 0, r.output
    r = run("detect", "evaluate", "--human", h, "--machine", m, *det, "--calibration", tmp_path / "news.json", "--json",
            "--allow-overlap")  # h and m are the training texts
    assert r.exit_code == 0, r.output
    # evaluate checks the human texts: news like the calibration, but 60 are too few for a verdict, and it says so
    (note,) = json.loads(r.stdout)["drift_warnings"]
    assert "no drift verdict: 60 scored" in note and ">= 100" in note
    big = tmp_path / "big.jsonl"
    big.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus(NEWS, 150, 16)))
    r = run("detect", "evaluate", "--human", big, "--machine", m, *det, "--calibration", tmp_path / "news.json", "--json",
            "--allow-overlap")  # m is the training machine text
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["drift_warnings"] == []


@pytest.mark.skipif(not DETECT_DEV.is_dir(), reason="detect-dev data not present (../shared/data/detect-dev)")
def test_real_held_out_domain_warns_and_held_out_text_of_the_same_domains_does_not():
    def humans(domain, lo, hi):
        blob = json.loads((DETECT_DEV / f"{domain}_gpt2-xl.raw_data.json").read_text(encoding="utf-8"))
        return blob["original"][lo:hi]

    record = domain_record(humans("xsum", 0, 150) + humans("squad", 0, 150), embeddings=False)
    assert not check_texts(record, humans("xsum", 150, 250) + humans("squad", 150, 250))["warn"]
    assert check_texts(record, humans("writing", 0, 200))["warn"]


def test_false_alarms_on_same_distribution_pairs_are_rare_over_40_seeds():
    from collapseguard.detectors.drift import domain_record_from_features, drift_report
    from collapseguard.detectors.style import style_features

    texts = corpus(NEWS, 4000, 20) + corpus(NEWS, 4000, 21, lo=60, hi=120)
    feats = style_features(texts)
    alarms = 0
    for seed in range(40):
        idx = np.random.default_rng(seed).permutation(len(texts))
        a, b = idx[:300], idx[300:600]
        rec = domain_record_from_features(feats[a], None, [texts[i] for i in a])
        alarms += drift_report(rec, feats[b], None, [texts[i] for i in b])["warn"]
    assert alarms <= 3


def test_versions_of_one_article_do_not_fake_a_shift():
    """Five cuts of each article (as detect-dev's generator files): halves split by source, so a
    classifier cannot win by recognising the articles it was fitted on."""
    def versions(seed):
        out = []
        for t in corpus(NEWS, 80, seed, lo=150, hi=200):
            words = t.split()
            out += [" ".join(words[:k]) for k in (100, 115, 130, 145, 150)]
        return out

    alarms = [check_texts(domain_record(versions(2 * s), embeddings=False), versions(2 * s + 1)) for s in range(5)]
    assert not any(r["warn"] for r in alarms) and max(r["auc"] for r in alarms) < 0.65


def test_too_few_texts_give_no_verdict_and_say_so():
    record = domain_record(corpus(NEWS, 400, 0), embeddings=False)
    rep = check_texts(record, corpus(CHAT, 90, 9))
    assert rep["verdict"] == "too few texts" and not rep["warn"] and rep["auc"] is None
    msg = drift_warning(calibration_with(record), corpus(CHAT, 90, 9))
    assert msg.startswith("no drift verdict: 90 scored and 400 calibration texts") and "untested" in msg
