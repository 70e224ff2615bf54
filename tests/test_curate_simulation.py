"""curate --from-simulation: the smallest human fraction whose degradation (median and upper 95%
bound over seeds, every generation up to G) stays within the limit, on a sweep made here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from provenance_data import run

FRACTIONS = ("0", "0.1", "0.3", "0.6", "1")
G = 8


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("curate_sim")
    args = ["simulate", "sweep", "--world", "gaussian", "--policy", "replace", "--policy", "accumulate",
            "--generations", 12, "--samples", 20, "--seeds", 40, "--seed", 3, "--out", root / "sweep"]
    for f in FRACTIONS:
        args += ["--human-fraction", f]
    run(*args)
    pool = root / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": f"record {i}"}) + "\n" for i in range(40)))
    return root


def expected_worst(results: pd.DataFrame, policy: str, generations: int) -> pd.DataFrame:
    """Per fraction, the worst (over generations 1..G) median and 97.5th percentile over seeds of
    w2_sq(g) - w2_sq(0), computed here from the table with pandas."""
    df = results[(results.policy == policy) & (results.metric == "w2_sq") & (results.generation <= generations)]
    base = df[df.generation == 0].set_index(["human_fraction", "seed"])["value"]
    later = df[df.generation > 0].set_index(["human_fraction", "seed"])
    later = later.assign(d=later["value"] - base.reindex(later.index).to_numpy()).reset_index()
    stats = later.groupby(["human_fraction", "generation"])["d"].quantile([0.5, 0.975]).unstack()
    return stats.groupby("human_fraction").max()


def test_picks_the_smallest_fraction_within_the_limit(sweep):
    results = pd.read_parquet(sweep / "sweep" / "results.parquet")
    worst = expected_worst(results, "replace", G)
    bound = worst.max(axis=1)  # both the median and the upper bound must be within the limit
    # a limit between two fractions' figures, so the answer is neither the first nor the last fraction
    ranked = sorted(bound.items())
    limit = float(np.mean(sorted(bound.to_numpy())[1:3]))
    expected = min(f for f, b in ranked if b <= limit)
    assert 0 < expected < 1
    # a smaller fraction whose median is within the limit but whose upper bound is not: the upper bound matters
    assert any(worst.loc[f, 0.5] <= limit < worst.loc[f, 0.975] for f, _ in ranked if f < expected)
    out = sweep / "mix"
    res = run("curate", "--allow-unsigned", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", limit,
              "--generations", G, "--out", out, "--json", code=2)  # no synthetic pool yet: refused, nothing written
    assert "pool_s.jsonl" in res.output and not out.exists()
    (sweep / "pool_s.jsonl").write_text("".join(json.dumps({"text": f"model {i}"}) + "\n" for i in range(40)))
    res = run("curate", "--allow-unsigned", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", limit,
              "--generations", G, "--out", out, "--json")
    info = json.loads(res.stdout)
    chosen = info["chosen_by"]
    assert chosen["human_fraction"] == pytest.approx(expected)
    assert info["request"]["human_fraction"] == pytest.approx(expected)
    assert info["records"]["human"] == int(expected * 10 + 0.5)
    assert chosen["world"] == "gaussian" and chosen["policy"] == "replace" and chosen["metric"] == "w2_sq"
    assert chosen["generations"] == [0, G] and chosen["rows"] == len(FRACTIONS) * 40 * (G + 1)
    for row in chosen["fractions"]:
        assert row["max_median"] == pytest.approx(worst.loc[row["human_fraction"], 0.5])
        assert row["max_upper"] == pytest.approx(worst.loc[row["human_fraction"], 0.975])
        assert row["passes"] == (bound[row["human_fraction"]] <= limit)
    # the text output says which rows it used
    res = run("curate", "--allow-unsigned", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", limit,
              "--generations", G, "--out", sweep / "mix_text")
    assert f"human fraction {expected:g} chosen from" in res.output and "world gaussian, policy replace" in res.output
    # the accumulate rows give their own answer
    acc = expected_worst(results, "accumulate", G).max(axis=1)
    acc_limit = float(acc.max())
    res = run("curate", "--allow-unsigned", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", acc_limit,
              "--generations", G, "--policy", "accumulate", "--out", sweep / "mix_acc", "--json")
    assert json.loads(res.stdout)["chosen_by"]["human_fraction"] == pytest.approx(min(f for f, b in acc.items()
                                                                                       if b <= acc_limit))


def test_refusals(sweep):
    base = ["curate", "--allow-unsigned", "--human", sweep / "pool.jsonl", "--size", 10, "--out", sweep / "never",
            "--from-simulation", sweep / "sweep" / "results.parquet", "--generations", G]
    res = run(*base, "--max-degradation", -1, code=2)
    assert "no simulated human fraction keeps w2_sq degradation within -1" in res.output and "fraction" in res.output
    res = run(*base, "--max-degradation", 1, "--metric", "perplexity", code=2)
    assert "has no metric 'perplexity'" in res.output and "w2_sq" in res.output
    res = run(*base[:-2], "--generations", 50, "--max-degradation", 1, code=2)
    assert "no fraction was simulated for 50 generations" in res.output
    res = run(*base, "--max-degradation", 1, "--policy", "subsample", code=2)
    assert "no rows with policy 'subsample'" in res.output
    res = run(*base, "--max-degradation", 1, "--human-fraction", 0.5, code=2)
    assert "not both" in res.output
    res = run(*base, code=2)
    assert "needs --max-degradation" in res.output
    assert not (sweep / "never").exists()


def test_an_lm_run_uses_test_perplexity_and_a_higher_is_better_metric_flips(tmp_path):
    """A results table in the LM loop's shape: the default metric is test_perplexity; for the
    VAE world's latent_std (higher is better) a drop is the degradation."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for fraction, rise in ((0.0, 10.0), (0.1, 2.0)):
        for seed in range(3):
            for g in range(4):
                rows.append({"world": "lm", "policy": "replace", "human_fraction": fraction, "seed": seed,
                             "generation": g, "metric": "test_perplexity", "value": 30.0 + rise * g + seed})
                rows.append({"world": "lm", "policy": "replace", "human_fraction": fraction, "seed": seed,
                             "generation": g, "metric": "distinct_2", "value": 0.5})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "lm.parquet")
    pool = tmp_path / "p.jsonl"
    pool.write_text("".join(json.dumps({"text": f"r {i}"}) + "\n" for i in range(20)))
    base = ["curate", "--allow-unsigned", "--human", pool, "--synthetic", pool, "--size", 4, "--out", tmp_path / "m",
            "--from-simulation", tmp_path / "lm.parquet", "--generations", 3]
    res = run(*base, "--max-degradation", 6.5, code=2)  # the same file as both pools is refused
    assert "is in two pools" in res.output
    base[5] = tmp_path / "q.jsonl"
    (tmp_path / "q.jsonl").write_text(pool.read_text().replace("r ", "q "))
    info = json.loads(run(*base, "--max-degradation", 6.5, "--json").stdout)["chosen_by"]
    assert info["metric"] == "test_perplexity" and info["human_fraction"] == 0.1  # 0.1 rises by 6 in 3 generations
    assert [r["max_median"] for r in info["fractions"]] == [30.0, 6.0]
    res = run(*base, "--max-degradation", 5.9, code=2)
    assert "0: median 30, upper 30; 0.1: median 6, upper 6" in res.output

    vae = [{**r, "world": "vae", "metric": "latent_std", "value": 1.0 - 0.1 * r["generation"] * (r["human_fraction"] == 0)}
           for r in rows if r["metric"] == "test_perplexity"]
    pq.write_table(pa.Table.from_pylist(vae), tmp_path / "vae.parquet")
    base[base.index(tmp_path / "lm.parquet")] = tmp_path / "vae.parquet"
    info = json.loads(run(*base, "--max-degradation", 0.2, "--out", tmp_path / "v", "--json").stdout)["chosen_by"]
    assert info["higher_is_worse"] is False and info["human_fraction"] == 0.1
    assert info["fractions"][0]["max_median"] == pytest.approx(0.3)
