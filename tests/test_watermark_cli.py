"""`collapseguard watermark detect`: output, bad input, and the key never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402
from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector  # noqa: E402

KEY = "918273645"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from test_watermark import WORDS, make_tokenizer

    root = tmp_path_factory.mktemp("wmcli")
    tok = make_tokenizer(root / "tok")
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS, size=40)) for _ in range(3)] + ["kalo"]
    shard = root / "shard.jsonl"
    shard.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return root, tok, texts, shard


def run(*args, env=None):
    return CliRunner().invoke(cli, ["watermark", "detect", *args], env=env)


def test_json_rows_equal_the_library(setup):
    root, tok, texts, shard = setup
    res = run(str(shard), "--tokenizer", str(root / "tok"), "--hashing-key", KEY, "--min-tokens", "5", "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    expected = KGWDetector(KGWConfig(hashing_key=int(KEY), min_tokens_scored=5), tokenizer=tok).detect(texts)
    assert len(rows) == len(texts)
    for row, exp in zip(rows[:3], expected[:3], strict=True):
        assert row["z_score"] == pytest.approx(exp["z_score"]) and row["p_value"] == pytest.approx(exp["p_value"])
        assert row["num_tokens_scored"] == exp["num_tokens_scored"]
    assert rows[3]["z_score"] is None and rows[3]["prediction"] is None  # too short: abstain
    assert KEY not in res.output


def test_table_output_and_key_from_env(setup):
    root, _, texts, shard = setup
    res = run(str(shard), "--tokenizer", str(root / "tok"), "--seeding-scheme", "selfhash", "--context-width", "4",
              env={"COLLAPSEGUARD_WATERMARK_KEY": KEY})  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].split("\t")[:3] == ["source", "index", "z_score"] and len(lines) == len(texts) + 1
    assert KEY not in res.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tokenizer", "/nonexistent/tok", "--hashing-key", KEY], "tokenizer directory not found"),
        (["--hashing-key", "s3cr3t-key"], "not an integer"),
        (["--greenlist-ratio", "1.5", "--hashing-key", KEY], "greenlist_ratio"),
        ([], "no hashing key"),
    ],
)
def test_bad_settings_exit_2_with_one_line(setup, args, message):
    root, _, _, shard = setup
    full = [str(shard), "--tokenizer", str(root / "tok"), *args] if "--tokenizer" not in args else [str(shard), *args]
    res = run(*full)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert "s3cr3t-key" not in res.output and len(res.output.strip().splitlines()) == 1


def test_non_utf8_and_missing_file_exit_2(setup):
    root, _, _, _ = setup
    bad = root / "bad.txt"
    bad.write_bytes(b"kalo mine\n\xff\xfe broken\n")
    res = run(str(bad), "--tokenizer", str(root / "tok"), "--hashing-key", KEY, "--json")
    assert res.exit_code == 2 and "UTF-8" in res.output
    res = run(str(root / "nope.jsonl"), "--tokenizer", str(root / "tok"), "--hashing-key", KEY)
    assert res.exit_code == 2 and "no such file" in res.output


def test_huge_and_empty_records_do_not_stop_the_run(setup):
    root, _, _, _ = setup
    shard = root / "big.jsonl"
    big = ("kalo mine suta " * 700_000)[: 10 * 2**20]  # a 10 MB record
    shard.write_text(json.dumps({"text": big}) + "\n" + json.dumps({"text": ""}) + "\n", encoding="utf-8")
    res = run(str(shard), "--tokenizer", str(root / "tok"), "--hashing-key", KEY, "--json")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["truncated"] is True and rows[0]["num_tokens_scored"] > 0
    assert rows[1]["z_score"] is None


def test_top_level_help_imports_no_numpy_and_key_names_agree():
    from collapseguard.cli import watermark as cli_watermark
    from collapseguard.detectors.watermark import synthid

    assert cli_watermark.SYNTHID_KEYS_ENV == synthid.KEYS_ENV
    code = ("import sys; from collapseguard.cli.main import cli; "
            "cli.main(['--help'], prog_name='collapseguard', standalone_mode=False); "
            "print(sorted(m for m in ('numpy', 'torch', 'scipy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
