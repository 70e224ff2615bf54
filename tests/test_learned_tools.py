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
