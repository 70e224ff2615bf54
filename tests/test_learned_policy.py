"""learned_v1 inside a guard policy: policy calibrate, then scan flags the planted machine records."""

import json

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("pyarrow")

import pyarrow.parquet as pq  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402

WORDS = ("a tidal marsh holds reeds where plovers feed and tides rise slowly over the mud , "
         "while herons wait . the river bends ; it was said that they would come").split()


def human(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(20, 60)))) for _ in range(n)]


def machine(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join([" ".join(rng.choice(WORDS[:8], size=8)) + " ."] * int(rng.integers(3, 6))) for _ in range(n)]


def jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


def test_learned_v1_in_a_policy(tmp_path):
    jsonl(tmp_path / "h_train.jsonl", human(60, 1))
    jsonl(tmp_path / "m_train.jsonl", machine(60, 2))
    run("detect", "train", "--human", tmp_path / "h_train.jsonl", "--machine", tmp_path / "m_train.jsonl",
        "--features", "style", "--out", tmp_path / "det")
    policy = tmp_path / "collapseguard.toml"
    policy.write_text('text_column = "text"\ncalibration = "cal.json"\nmax_synthetic_share = 0.05\n'
                      '[[detectors]]\nname = "learned_v1"\noptions = { model_dir = "det" }\n')
    jsonl(tmp_path / "h_cal.jsonl", human(300, 3))
    jsonl(tmp_path / "m_cal.jsonl", machine(50, 4))
    run("policy", "calibrate", "--policy", policy, "--human", tmp_path / "h_cal.jsonl", "--machine",
        tmp_path / "m_cal.jsonl", "--fpr", "0.05", "--out", tmp_path / "cal.json")
    (tmp_path / "data").mkdir()
    jsonl(tmp_path / "data" / "a.jsonl", human(80, 5) + machine(20, 6))
    run("scan", tmp_path / "data", "--out", tmp_path / "scan", "--policy", policy, "--json")
    decisions = pq.read_table(tmp_path / "scan" / "attributes" / "a.jsonl.parquet").column("decision").to_pylist()
    assert sum(d == "synthetic" for d in decisions[80:]) >= 18
    assert sum(d == "synthetic" for d in decisions[:80]) <= 12
