"""The guarded LM loop: the real guard (ledger, KGW watermark, Gen-0 perplexity; scan, filter,
curate) between each generation's crawl and the next model's training data."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("datasketch")
pytest.importorskip("cryptography")
os.environ["HF_HUB_OFFLINE"] = "1"

import pyarrow.parquet as pq  # noqa: E402
from lm_loop_helpers import kill_at_third_training, values  # noqa: E402

from collapseguard.simulate.lm.generate import DecodingConfig  # noqa: E402
from collapseguard.simulate.lm.guard import GUARD_METRICS, GuardConfig  # noqa: E402
from collapseguard.simulate.lm.loop import LMConfig, run_lm_loop  # noqa: E402
from collapseguard.simulate.lm.train import TrainConfig  # noqa: E402

KEY = 987654321
TINY = dict(block_size=12, max_blocks=16, test_blocks=20, generations=2, human_fraction=0.5, device="cpu", threads=1,
            train=TrainConfig(epochs=1, batch_size=8), decoding=DecodingConfig("beam", num_beams=2))
GUARD = GuardConfig("default", watermark_share=0.5, ledger_share=0.5, fpr=0.1)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    out = tmp_path_factory.mktemp("guarded") / "run"
    run_lm_loop(LMConfig(guard=GUARD, **TINY), out)
    return out


def test_per_generation_rates_are_the_truth_recounted_from_the_files(guarded):
    df = values(guarded)
    for g in (1, 2):
        gdir = guarded / "seed_0" / f"gen_{g:03d}"
        m = json.loads((gdir / "metrics.json").read_text())
        truth = pq.read_table(gdir / "guard" / "crawl_truth.parquet").to_pandas()
        attrs = pq.read_table(gdir / "guard" / "scan" / "attributes" / "part-00000.parquet.parquet").to_pandas()
        crawl = pq.read_table(gdir / "guard" / "crawl" / "part-00000.parquet").to_pandas()
        assert list(crawl.columns) == ["text", "source"]  # the guard never sees the truth
        assert list(attrs["sha256"]) == list(truth["sha256"])  # row-aligned with the truth
        syn = (truth["origin"] == "synthetic").to_numpy()
        flagged = (attrs["decision"] == "synthetic").to_numpy()
        kept = (attrs["decision"] == "human").to_numpy()
        assert syn.sum() == 8 and (~syn).sum() == 8  # human fraction 0.5 of 16 blocks
        assert m["guard_tpr"] == pytest.approx(flagged[syn].mean())
        assert m["guard_fpr"] == pytest.approx(flagged[~syn].mean())
        assert m["human_lost"] == pytest.approx((~kept[~syn]).mean())
        assert m["share_before"] == pytest.approx(0.5)
        passed = pq.read_table(gdir / "guard" / "passed.parquet").to_pandas()
        assert sorted(passed["sha256"]) == sorted(truth["sha256"][kept])  # replace: it trains on what passed
        train = pq.read_table(gdir / "corpus.parquet").to_pandas()
        assert sorted(train["sha256"]) == sorted(passed["sha256"]) and m["train_blocks"] == kept.sum()
        assert m["share_after"] == pytest.approx((train["origin"] == "synthetic").mean())
        summary = json.loads((gdir / "guard" / "scan" / "summary.json").read_text())
        low = summary["synthetic_share"]["low"]
        assert m["share_low"] == pytest.approx(float("nan") if low is None else low, nan_ok=True)
        for name in GUARD_METRICS:
            assert not df.query("generation == @g and metric == @name").empty, name
    assert df.query("generation == 0 and metric == 'guard_tpr'").empty  # generation 0 trains on the human corpus


def test_logged_outputs_are_caught_by_the_ledger_and_the_watermark_marks_the_share(guarded):
    g1 = guarded / "seed_0" / "gen_001"
    samples = pq.read_table(guarded / "seed_0" / "gen_000" / "samples.parquet").to_pandas()
    held = pq.read_table(guarded / "seed_0" / "gen_000" / "heldout_samples.parquet").to_pandas()
    assert len(held) == 20  # the held-out prompts' continuations: the next guard's labelled machine text
    for col in ("watermarked", "logged"):  # half of the 16 + 20 documents each
        assert samples[col].sum() + held[col].sum() == 18
    logged = set(samples.loc[samples["logged"], "text"])
    attrs = pq.read_table(g1 / "guard" / "scan" / "attributes" / "part-00000.parquet.parquet").to_pandas()
    truth = pq.read_table(g1 / "guard" / "crawl_truth.parquet").to_pandas()
    hits = truth["text"].isin(logged).to_numpy()
    assert hits.any()
    assert all("minhash_v1" in r for r in attrs["reason"][hits])  # a logged output is in the ledger: caught
    policy = (g1 / "guard" / "collapseguard.toml").read_text()
    assert all(name in policy for name in ("minhash_v1", "kgw_v1", "gen0_ppl_v1"))
    assert "../../gen_000/model" in policy  # the Gen-0 detector is the loop's own generation-0 model


def test_the_watermark_key_stays_out_of_outputs(tmp_path):
    out = tmp_path / "run"
    run_lm_loop(LMConfig(guard=GUARD, watermark_key=KEY, **{**TINY, "generations": 1}), out)
    for p in out.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".md", ".toml", ".parquet"):
            assert str(KEY).encode() not in p.read_bytes(), p
    assert not (out / "keys" / "watermark.key").exists()  # a given key is never written
    assert oct((out / "keys" / "pool.key").stat().st_mode & 0o777) == "0o600"


def test_guarded_resume_after_kill_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    config = LMConfig(guard=replace(GUARD, restore_human=0.0), watermark_key=KEY, **TINY)
    full = tmp_path / "full"
    run_lm_loop(config, full)
    calls = kill_at_third_training(monkeypatch)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_lm_loop(config, out)
    assert (out / "seed_0" / "gen_002" / "guard").is_dir() and not (out / "seed_0" / "gen_002" / "DONE").exists()
    calls.clear()
    run_lm_loop(config, out)
    assert len(calls) == 1  # only generation 2 was trained again
    np.testing.assert_array_equal(values(full)["value"], values(out)["value"])
    # restore: curate refills the crawl to its full size with verified human blocks
    for g in (1, 2):
        m = json.loads((out / "seed_0" / f"gen_{g:03d}" / "metrics.json").read_text())
        assert m["train_blocks"] == 16
        assert m["human_restored"] == pytest.approx(1 - (16 * (1 - m["human_lost"]) * 0.5 + 8 * (1 - m["guard_tpr"])) / 16)
        manifest = json.loads((out / "seed_0" / f"gen_{g:03d}" / "guard" / "curated" / "manifest.json").read_text())
        assert "signatures" in manifest  # signed with the run's key


def test_guard_options_are_checked(tmp_path):
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    base = ["simulate", "run", "--world", "lm", "--out", str(tmp_path / "x")]
    res = CliRunner().invoke(cli, base + ["--watermark-share", "0.5"])
    assert res.exit_code == 2 and "need --guard" in res.output
    res = CliRunner().invoke(cli, base + ["--guard", "default", "--ledger-share", "1.5"])
    assert res.exit_code == 2 and "--ledger-share must lie in [0, 1]" in res.output
    res = CliRunner().invoke(cli, base + ["--guard", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "no such guard policy file" in res.output
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(cli, ["simulate", "sweep", "--guard", "default", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "add --world lm" in res.output
    res = CliRunner().invoke(cli, ["simulate", "sweep", "--world", "lm", "--contamination", "1.0", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "--contamination must lie in [0, 1)" in res.output
    assert not (tmp_path / "y").exists()


def test_filter_model_matches_the_statistical_worlds_policy():
    from collapseguard.simulate.lm.guard_sweep import filter_share
    from collapseguard.simulate.policy import Policy

    for c, t, f in ((0.5, 0.9, 0.05), (0.9, 0.6, 0.2), (0.2, 1.0, 0.0)):
        model, _, human = Policy("replace", 1 - c, filter_tpr=t, filter_fpr=f).split(10**7)
        assert filter_share(c, t, f) == pytest.approx(model / (model + human), abs=1e-6)


def test_guarded_sweep_writes_paired_comparison_report_and_plots(tmp_path):
    from collapseguard.simulate.lm.guard_sweep import GuardSweepConfig, run_guard_sweep

    base = LMConfig(seeds=2, **{**TINY, "generations": 1})
    config = GuardSweepConfig(contaminations=(0.5,), guards=("none", "default"), watermark_shares=(0.5,),
                              ledger_shares=(0.5,), guard_fpr=0.1, base=base)
    summary = run_guard_sweep(config, tmp_path / "sweep", workers=1)
    df = pq.read_table(tmp_path / "sweep" / "results.parquet").to_pandas()
    assert {"contamination", "guard", "watermark_share", "ledger_share", "seed", "generation", "metric"} <= set(df.columns)
    kl = df[df.metric == "kl_to_truth"].pivot_table(index=["guard", "seed"], columns="generation", values="value")
    rise = kl[1] - kl[0]
    prevented = [rise["none"][s] - rise["default"][s] for s in (0, 1)]
    row = next(r for r in summary["cells"] if r["guard"] == "default")
    assert row["prevented_kl"][0] == pytest.approx(np.mean(prevented))
    share = 1 - rise.xs("default").mean() / rise.xs("none").mean()
    if rise.xs("none").mean() > 0:
        assert row["prevented_share"] == pytest.approx(share)
    assert row["degradation_kl_to_truth"][1] <= row["degradation_kl_to_truth"][0] <= row["degradation_kl_to_truth"][2]
    # same seed, same generation-0 model: the paired comparison starts from one point
    assert kl[0]["default"][0] == pytest.approx(kl[0]["none"][0])
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "kl rise prevented" in report.lower() and "filter model" in report.lower()
    for png in ("collapse_curves.png", "degradation.png"):
        assert (tmp_path / "sweep" / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_sweep_worker_dies_with_its_parent():
    """A killed sweep leaves no cell running behind it: a worker is sent SIGTERM when its parent dies."""
    child = ("from collapseguard.simulate.lm.guard_sweep import die_with_parent; die_with_parent(); "
             "import time; print('ready', flush=True); time.sleep(60)")
    parent = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
              "stdout=subprocess.PIPE, text=True); c.stdout.readline(); print(c.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent, child], stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(pid)


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_guard_folder_the_run_did_not_write_is_refused_never_deleted(tmp_path):
    from collapseguard.errors import CollapseguardError
    from collapseguard.simulate.lm.guard import start_attempt

    theirs = tmp_path / "guard"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(CollapseguardError, match="not written by a guarded run"):
        start_attempt(theirs)
    assert (theirs / "notes.txt").read_text() == "mine"
    ours = tmp_path / "ours"
    start_attempt(ours)
    (ours / "half-written.parquet").write_text("x")
    start_attempt(ours)  # a killed attempt of ours: started afresh
    assert [p.name for p in ours.iterdir()] == [".collapseguard-guard-attempt"]
