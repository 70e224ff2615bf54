"""learned_v1 and source overlap: train records its sources; calibrate, evaluate and policy calibrate
refuse text from the training articles (unless --allow-overlap, which is recorded); model
selection runs on folds that keep source groups whole."""

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from bad_input import invoke, jsonl  # noqa: E402

import collapseguard.detectors.learned as learned  # noqa: E402
from collapseguard.detectors.learned import grouped_cv  # noqa: E402

VOCAB = [f"w{i}" for i in range(4000)]


def article(rng, n=160) -> list[str]:
    return list(rng.choice(VOCAB, n))


def detect_dev_like(n_articles: int, seed: int):
    """Per article: human cuts at two lengths (two 'generator files') and machine texts that
    continue its first 20 words, as in detect-dev."""
    rng = np.random.default_rng(seed)
    arts = [article(rng) for _ in range(n_articles)]
    human_a = [" ".join(a[:120]) for a in arts]
    human_b = [" ".join(a[:90]) for a in arts]  # the same article cut at another length
    machine = [" ".join(a[:20] + [w.upper() for w in rng.choice(VOCAB[:50], 80)]) + " ." for a in arts]
    return human_a, human_b, machine


def run(*args):
    return invoke(args)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    human_a, human_b, machine = detect_dev_like(40, 0)
    fresh_h, _, fresh_m = detect_dev_like(30, 1)
    files = {"h_train": jsonl(root / "h_train.jsonl", human_a), "m_train": jsonl(root / "m_train.jsonl", machine),
             "h_same": jsonl(root / "h_same.jsonl", human_b[:25] + fresh_h[:15]),
             "h_fresh": jsonl(root / "h_fresh.jsonl", fresh_h), "m_fresh": jsonl(root / "m_fresh.jsonl", fresh_m)}
    r = run("detect", "train", "--human", files["h_train"], "--machine", files["m_train"], "--features", "style",
            "--model", "logistic", "--out", root / "det", "--json")
    assert r.exit_code == 0, r.output
    return root, files, json.loads(r.stdout)


def test_train_records_sources_and_grouped_cv(trained):
    root, _, summary = trained
    assert summary["source_groups"] == 40  # 80 texts, one group per article
    meta = json.loads((root / "det" / "learned.json").read_text())
    assert (root / "det" / "sources.npz").is_file() and meta["sources"]["groups"] == 40
    cv = meta["cv"]
    assert cv["folds"] == 5 and cv["grouped_by"] == "source"
    assert [c["value"] for c in cv["candidates"]] == [0.01, 0.1, 1.0]
    assert all(len(c["auroc_folds"]) == 5 and 0 <= c["tpr_at_1pct"] <= 1 for c in cv["candidates"])
    assert cv["chosen"] == max(cv["candidates"], key=lambda c: (c["auroc"], c["auroc"]))
    assert meta["strength"] == {"C": cv["chosen"]["value"]} and summary["cv_candidates"] == cv["candidates"]


def test_calibrating_on_the_training_articles_is_refused_with_numbers(trained):
    root, files, _ = trained
    det = ["--detector", "learned_v1", "--model", root / "det"]
    r = run("detect", "calibrate", "--human", files["h_same"], *det, "--fpr", "0.05", "--out", root / "cal.json")
    assert r.exit_code == 2
    assert "25 of 40 calibration texts (62.5%) share a source" in r.output and "--allow-overlap" in r.output
    assert not (root / "cal.json").exists()
    r = run("detect", "calibrate", "--human", files["h_same"], *det, "--fpr", "0.05", "--out", root / "cal.json",
            "--allow-overlap", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["overlap"]["overlap"] == 25
    recorded = json.loads((root / "cal.json").read_text())["training_overlap"]
    assert recorded["overlap"] == 25 and recorded["allowed"] is True and recorded["texts"] == 40


def test_fresh_articles_pass_and_evaluate_checks_both_classes(trained):
    root, files, _ = trained
    det = ["--detector", "learned_v1", "--model", root / "det"]
    r = run("detect", "calibrate", "--human", files["h_fresh"], *det, "--fpr", "0.05", "--out", root / "cal_fresh.json",
            "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["overlap"]["overlap"] == 0
    r = run("detect", "evaluate", "--human", files["h_fresh"], "--machine", files["m_train"], *det, "--json")
    assert r.exit_code == 2 and "40 of 70 evaluation texts" in r.output
    r = run("detect", "evaluate", "--human", files["h_fresh"], "--machine", files["m_train"], *det, "--json",
            "--allow-overlap")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["overlap"]["overlap"] == 40 and ev["overlap"]["allowed"] is True
    r = run("detect", "evaluate", "--human", files["h_fresh"], "--machine", files["m_fresh"], *det, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["overlap"]["overlap"] == 0


def test_policy_calibrate_refuses_training_articles(trained):
    root, files, _ = trained
    policy = root / "collapseguard.toml"
    policy.write_text('text_column = "text"\n[[detectors]]\nname = "learned_v1"\noptions = { model_dir = "det" }\n')
    r = run("policy", "calibrate", "--policy", policy, "--human", files["h_same"], "--fpr", "0.05",
            "--out", root / "pcal.json")
    assert r.exit_code == 2 and "25 of 40 calibration texts" in r.output and not (root / "pcal.json").exists()
    r = run("policy", "calibrate", "--policy", policy, "--human", files["h_same"], "--fpr", "0.05",
            "--out", root / "pcal.json", "--allow-overlap", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["overlap"]["overlap"] == 25
    notes = json.loads((root / "pcal.json").read_text())["notes"]
    assert any("--allow-overlap: 25 of 40" in n for n in notes)


def test_grouped_cv_never_scores_a_group_it_trained_on():
    """Groups of identical rows with a random label per group and no signal: a model that memorises
    rows scores well only when folds split groups; grouped folds must give chance."""
    rng = np.random.default_rng(0)
    n_groups, size = 200, 8
    centres = rng.normal(size=(n_groups, 5))
    labels = rng.permutation(np.repeat([0.0, 1.0], n_groups // 2))
    x = np.repeat(centres, size, axis=0) + rng.normal(scale=1e-3, size=(n_groups * size, 5))
    y = np.repeat(labels, size)
    groups = np.repeat(np.arange(n_groups), size)
    grouped = grouped_cv(x, y, groups, [("gbm", 100)])[0]
    assert grouped["auroc"] < 0.65
    per_text = grouped_cv(x, y, np.arange(len(y)), [("gbm", 100)])[0]  # every text its own group: leaks
    assert per_text["auroc"] > 0.9


def test_grouped_cv_folds_keep_groups_whole(monkeypatch):
    """Every fit sees no row of a group it is then scored on (rows carry their group in column 0)."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), rng.integers(1, 6, 30))
    x = np.column_stack([groups, rng.normal(size=len(groups))]).astype(float)
    y = (rng.random(len(groups)) < 0.5).astype(float)
    seen = []
    real_fit, real_decision = learned.fit_model, learned.decision

    def fit_spy(x_fit, *a, **k):
        seen.append(set(x_fit[:, 0].tolist()))
        return real_fit(x_fit, *a, **k)

    def decision_spy(x_test, *a, **k):
        assert not seen[-1] & set(x_test[:, 0].tolist())
        return real_decision(x_test, *a, **k)

    monkeypatch.setattr(learned, "fit_model", fit_spy)
    monkeypatch.setattr(learned, "decision", decision_spy)
    rows = grouped_cv(x, y, groups, [("logistic", 0.1), ("logistic", 1.0)])
    assert len(seen) == 10 and len(rows) == 2
