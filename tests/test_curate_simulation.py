"""curate --from-simulation: the smallest human fraction whose degradation (median and upper 95%
bound over seeds, every generation up to G) stays within the limit, on a sweep made here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from collapseguard.cli.main import cli

FRACTIONS = ("0", "0.1", "0.3", "0.6", "1")
G = 8


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


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
    res = run("curate", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", limit,
              "--generations", G, "--out", out, "--json", code=2)  # no synthetic pool yet: refused, nothing written
    assert "pool_s.jsonl" in res.output and not out.exists()
    (sweep / "pool_s.jsonl").write_text("".join(json.dumps({"text": f"model {i}"}) + "\n" for i in range(40)))
    res = run("curate", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
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
    res = run("curate", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", limit,
              "--generations", G, "--out", sweep / "mix_text")
    assert f"human fraction {expected:g} chosen from" in res.output and "world gaussian, policy replace" in res.output
    # the accumulate rows give their own answer
    acc = expected_worst(results, "accumulate", G).max(axis=1)
    acc_limit = float(acc.max())
    res = run("curate", "--human", sweep / "pool.jsonl", "--synthetic", sweep / "pool_s.jsonl", "--size", 10,
              "--from-simulation", sweep / "sweep" / "results.parquet", "--max-degradation", acc_limit,
              "--generations", G, "--policy", "accumulate", "--out", sweep / "mix_acc", "--json")
    assert json.loads(res.stdout)["chosen_by"]["human_fraction"] == pytest.approx(min(f for f, b in acc.items()
                                                                                       if b <= acc_limit))


def test_refusals(sweep):
    base = ["curate", "--human", sweep / "pool.jsonl", "--size", 10, "--out", sweep / "never",
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
