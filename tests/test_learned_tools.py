"""Evaluation tools around learned_v1: --all-scores in one pass, --threads, small slices, the detect-dev script's --data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402
from collapseguard.detectors.lm.tiny import build_tiny_gpt2  # noqa: E402

WORDS = "a tidal marsh holds reeds where plovers feed and tides rise slowly over mud".split()
ROOT = Path(__file__).resolve().parents[1]


def texts(n, seed, lo=20, hi=40):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi)))) for _ in range(n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    build_tiny_gpt2(root / "model", texts(100, 0), vocab_size=300, n_positions=128)
    (root / "t.txt").write_text("\n".join(texts(12, 1)) + "\n", encoding="utf-8")
    return root


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_all_scores_equal_one_pass_per_score(setup):
    r = run("detect", "score", setup / "t.txt", "--model", setup / "model", "--all-scores", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    for score in ("fast_detectgpt", "log_prob", "log_rank", "entropy"):
        r1 = run("detect", "score", setup / "t.txt", "--model", setup / "model", "--score", score, "--json")
        assert r1.exit_code == 0, r1.output
        single = [json.loads(line)["gen0_ppl_v1"] for line in r1.stdout.splitlines()]
        np.testing.assert_allclose([row[f"gen0_ppl_v1.{score}"] for row in rows], single, rtol=1e-9)
    assert [row["gen0_ppl_v1"] for row in rows] == [row["gen0_ppl_v1.fast_detectgpt"] for row in rows]


def test_threads_is_checked(setup):
    r = run("detect", "score", setup / "t.txt", "--model", setup / "model", "--threads", "0")
    assert r.exit_code == 2 and "--threads" in r.output


def test_small_slices_report_null_auroc(setup):
    raw = setup / "xsum_gpt2-xl.raw_data.json"
    raw.write_text(json.dumps({"original": texts(6, 2), "sampled": texts(6, 3)}))
    r = run("detect", "evaluate", "--human", raw, "--machine", raw, "--model", setup / "model", "--min-tokens", "4", "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    domain = [s for s in ev["slices"] if s["slice"] == "domain"][0]
    assert domain["auroc"] is None and "needs >= 10" in domain["note"]


def test_eval_detect_dev_errors_when_the_data_is_missing(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_detect_dev.py"), "--data", str(tmp_path),
                        "--model", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "no detect-dev" in p.stderr and str(tmp_path) in p.stderr


def detect_dev_folder(root: Path) -> Path:
    """A tiny detect-dev-shaped folder: every generator file of a domain cuts the same articles at
    its own length, and each machine text continues its human text's opening words."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(3000)]
    layout = {"detect-dev": {"xsum": ("genA", "genB"), "squad": ("genA", "genB")},
              "detect-dev-gpt3to4": {"pubmed": ("genC",), "xsum": ("genC",)}}
    articles = {d: [list(rng.choice(vocab, 120)) for _ in range(24)] for d in ("xsum", "squad", "pubmed")}
    for folder, domains in layout.items():
        (root / folder).mkdir(parents=True)
        for domain, gens in domains.items():
            for k, gen in enumerate(gens):
                cut = 90 + 10 * k + (5 if folder != "detect-dev" else 0)
                human = [" ".join(a[:cut]) for a in articles[domain]]
                machine = [" ".join(a[:15]) + "\n" + " ".join(rng.choice(vocab[:300], 70)) for a in articles[domain]]
                blob = {"original": human, "sampled": machine}
                (root / folder / f"{domain}_{gen}.raw_data.json").write_text(json.dumps(blob), encoding="utf-8")
    return root


def test_eval_detect_dev_runs_grouped_protocols(tmp_path):
    data = detect_dev_folder(tmp_path / "data")
    out = tmp_path / "cv.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_detect_dev.py"), "--data", str(data),
                        "--feature-sets", "style", "--models", "logistic", "--withdrawn-pairs", "12",
                        "--cache", str(tmp_path / "cache"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    blob = json.loads(out.read_text())
    assert blob["n_groups"] == 3 * 24  # one group per article, across files and folders
    res = blob["results"]
    assert sorted(res["generator"]["logistic [style]"]["folds"]) == ["genA", "genB", "genC"]
    assert sorted(res["domain"]["logistic [style]"]["folds"]) == ["pubmed", "squad", "xsum"]
    assert len(res["fresh"]["logistic [style]"]["folds"]) == 5
    for protocol in ("generator", "domain", "fresh"):
        for fold in res[protocol]["logistic [style]"]["folds"].values():
            assert 0.0 <= fold["fpr"] <= 1.0 and fold["n_human"] > 0
    assert res["withdrawn"]["calib pairs whose article is in the fit split"] > 0.5  # the leak (2 files: ~2/3)
    assert res["withdrawn"]["fresh detect-dev articles"]["n_human"] > 0
    assert "withdrawn protocol" in p.stdout and "worst FPR" in p.stdout


def test_eval_detect_dev_select_chooses_inside_each_fit_part_by_source_group(tmp_path):
    """--select runs `detect train`'s grouped CV on each outer fold's fit texts: the inner folds count
    source groups (72 articles in all), not texts, and the choice is one of the class's grid."""
    from collapseguard.detectors.learned import CV_FOLDS, STRENGTH_GRID

    data = detect_dev_folder(tmp_path / "data")
    out = tmp_path / "cv.json"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_detect_dev.py"), "--data", str(data),
                        "--feature-sets", "style", "--models", "logistic", "--protocols", "fresh", "--select",
                        "--cache", str(tmp_path / "cache"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    blob = json.loads(out.read_text())
    assert blob["selection"]["cv_folds"] == CV_FOLDS and blob["selection"]["criterion"] == "auroc"
    folds = blob["results"]["fresh"]["logistic [style] (in-fold CV)"]["folds"]
    assert len(folds) == 5
    for fold in folds.values():
        sel = fold["selection"]
        assert sel["grouped_by"] == "source" and sel["folds"] == CV_FOLDS
        assert CV_FOLDS <= sel["n_groups"] < 72 < 2 * fold["n_fit_pairs"]  # groups of the fit part only
        assert [c["value"] for c in sel["candidates"]] == list(STRENGTH_GRID["logistic"])
        assert sel["chosen"]["value"] in STRENGTH_GRID["logistic"]
    assert "strength chosen by grouped CV inside each fold's fit part" in p.stdout
