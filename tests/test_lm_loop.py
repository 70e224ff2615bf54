"""The LM collapse loop end to end on the tiny preset: files, schema, resume, determinism."""

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

import pyarrow.parquet as pq  # noqa: E402
from lm_loop_helpers import kill_at_third_training, values  # noqa: E402

from collapseguard.simulate.lm.generate import DecodingConfig  # noqa: E402
from collapseguard.simulate.lm.loop import LMConfig, run_lm_loop  # noqa: E402
from collapseguard.simulate.lm.train import TrainConfig  # noqa: E402

TINY = dict(block_size=12, max_blocks=8, test_blocks=4, train=TrainConfig(epochs=1, batch_size=4),
            decoding=DecodingConfig("beam", num_beams=2), device="cpu", threads=1)


def test_cli_loop_writes_files_and_schema(tmp_path):
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    out = tmp_path / "run"
    args = ["simulate", "run", "--world", "lm", "--generations", "1", "--block-size", "12", "--max-blocks", "8",
            "--test-blocks", "4", "--epochs", "1", "--batch-size", "4", "--num-beams", "2", "--human-fraction", "0.25",
            "--device", "cpu", "--threads", "1", "--out", str(out), "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    t = pq.read_table(out / "results.parquet")
    assert t.column_names == ["world", "policy", "human_fraction", "seed", "generation", "metric", "value"]
    df = t.to_pandas()
    assert set(df["world"]) == {"lm"} and set(df["generation"]) == {0, 1} and set(df["seed"]) == {0}
    metrics = set(df["metric"])
    for m in ("test_perplexity", "gen0_perplexity_median", "repetition_rate", "distinct_2", "kl_to_truth",
              "tail_mass", "gen0_auroc", "train_tokens_per_s", "generation_tokens_per_s"):
        assert m in metrics
    for f in ("report.md", "perplexity.png", "gen0_histograms.png", "config.json"):
        assert (out / f).exists()
    report = (out / "report.md").read_text()
    assert "Seed 0:" in report and "share > gen-0 max" in report
    g1 = out / "seed_0" / "gen_001"
    corpus = pq.read_table(g1 / "corpus.parquet").to_pandas()
    # 25% of the 8 original blocks come back as human text, the rest was written by generation 0
    assert (corpus["origin"] == "human").sum() == 2 and (corpus["origin"] == "synthetic").sum() == 6
    assert set(corpus.loc[corpus["origin"] == "synthetic", "generator"]) == {"seed_0/gen_000/model"}
    assert set(corpus.loc[corpus["origin"] == "synthetic", "generation"]) == {0}
    assert corpus.loc[corpus["origin"] == "human", "generator"].isna().all()
    from collapseguard.io.columns import read_table

    prov = read_table(g1 / "corpus.parquet", "text")  # the provenance columns check out, sha256 included
    assert prov["generation"].count(None) == 2 and set(prov) >= {"origin", "generation", "generator", "sha256"}
    samples = pq.read_table(g1 / "samples.parquet").to_pandas()
    assert len(samples) == 8 and all(len(ids) == 12 for ids in samples["token_ids"])
    assert np.isclose(np.median(samples["gen0_perplexity"]),
                      df.query("generation == 1 and metric == 'gen0_perplexity_median'")["value"].item())
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(g1 / "model")
    tok = AutoTokenizer.from_pretrained(g1 / "model")
    assert len(tok) == model.config.vocab_size
    assert (g1 / "model" / "model.safetensors").exists()


def test_resume_after_kill_skips_finished_generations_and_is_deterministic(tmp_path, monkeypatch):
    config = LMConfig(generations=2, human_fraction=0.5, workflow="accumulate", **TINY)
    full = tmp_path / "full"
    run_lm_loop(config, full)
    # a finished shorter run extended with more --generations continues exactly
    ext = tmp_path / "extended"
    run_lm_loop(replace(config, generations=1), ext)
    run_lm_loop(config, ext)
    np.testing.assert_array_equal(values(full)["value"], values(ext)["value"])

    calls = kill_at_third_training(monkeypatch)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_lm_loop(config, out)
    assert (out / "seed_0" / "gen_001" / "DONE").exists() and not (out / "seed_0" / "gen_002").exists()
    calls.clear()
    run_lm_loop(config, out)
    assert len(calls) == 1  # only generation 2 was trained again
    # a fresh CPU run and a killed-then-resumed run with the same seed agree exactly
    np.testing.assert_array_equal(values(full)["value"], values(out)["value"])
    for g in (1, 2):
        f = Path("seed_0") / f"gen_{g:03d}" / "samples.parquet"
        assert pq.read_table(full / f).column("token_ids").to_pylist() == pq.read_table(out / f).column("token_ids").to_pylist()
    # accumulate: generation 1 trains on the 8 original blocks plus 8 fresh ones (4 human, 4 model)
    corpus = pq.read_table(full / "seed_0" / "gen_001" / "corpus.parquet").to_pandas()
    assert len(corpus) == 16 and (corpus["origin"] == "human").sum() == 12


def test_resume_refuses_other_settings(tmp_path):
    from collapseguard.errors import CollapseguardError
    from collapseguard.simulate.lm.loop import _check_out

    _check_out(tmp_path, LMConfig(generations=0, **TINY))
    _check_out(tmp_path, LMConfig(generations=0, **TINY))  # same settings: fine
    _check_out(tmp_path, LMConfig(generations=3, seeds=2, **TINY))  # more generations or seeds: extends the run
    with pytest.raises(CollapseguardError, match="other settings"):
        _check_out(tmp_path, LMConfig(generations=0, human_fraction=0.5, **TINY))


def test_mixing_policies_sizes_and_origins():
    from collapseguard.simulate.lm.loop import Blocks, mix

    rng = np.random.default_rng(0)
    original = Blocks.human(np.zeros((10, 4), dtype=np.int64))
    samples = Blocks.model(np.ones((10, 4), dtype=np.int64), 0, "gen_000/model", "{}")
    for workflow, n_data, n_human in (("replace", 10, 3), ("accumulate", 20, 13)):
        cfg = LMConfig(workflow=workflow, human_fraction=0.3)
        data, _ = mix(cfg, samples, original, original, original, rng)
        assert len(data) == n_data and (data.origin == "human").sum() == n_human
        assert (data.ids[data.origin == "synthetic"] == 1).all() and (data.ids[data.origin == "human"] == 0).all()
    cfg = LMConfig(workflow="subsample", human_fraction=0.0)
    data, pool = mix(cfg, samples, original, original, original, rng)
    assert len(pool) == 20 and len(data) == 10  # |D_0| blocks drawn from original + fresh
