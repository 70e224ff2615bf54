"""report.md for an LM loop: metrics by generation, the perplexity plot and Gen-0 histograms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from collapseguard.io.atomic import atomic_path, write_text_atomic

TABLE_METRICS = ("test_perplexity", "gen0_perplexity_median", "gen0_auroc", "repetition_rate", "distinct_2",
                 "kl_to_truth", "tail_mass", "truth_sample_perplexity",
                 # a guarded loop (--guard): from generation 1
                 "guard_tpr", "guard_fpr", "share_before", "share_after", "share_estimate", "human_lost")


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def plot_perplexity(results, path: Path) -> None:
    """Test perplexity by generation, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    sub = results[results["metric"] == "test_perplexity"]
    for seed, g in sub.groupby("seed"):
        ax.plot(g["generation"], g["value"], marker="o", label=f"seed {seed}")
    ax.set_xlabel("generation")
    ax.set_ylabel("test perplexity")
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def sample_perplexities(out: Path, seed: int, generations: int) -> dict[int, np.ndarray]:
    """Each finished generation's per-sample perplexity under generation 0 (from its samples.parquet)."""
    import pyarrow.parquet as pq

    values = {}
    for g in range(generations + 1):
        f = out / f"seed_{seed}" / f"gen_{g:03d}" / "samples.parquet"
        if f.exists():
            values[g] = np.asarray(pq.read_table(f, columns=["gen0_perplexity"]).column(0).to_pylist())
    return values


def plot_histograms(values: dict[int, np.ndarray], path: Path) -> None:
    """The paper's figure: perplexity of each generation's samples under generation 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(5, 3.2))
    if values:
        everything = np.concatenate(list(values.values()))
        lo, hi = max(everything.min(), 1e-3), max(everything.max(), everything.min() * 1.01)
        bins = np.geomspace(lo, hi, 50)  # log-spaced: a long tail stays visible beside the bulk
        for g, v in values.items():
            ax.hist(v, bins=bins, histtype="step", label=f"gen {g}")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("perplexity under generation 0 (log scale)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)


def tail_table(values: dict[int, np.ndarray]) -> list[str]:
    """Markdown rows: quantiles of each generation's Gen-0 perplexities and its share above gen 0's p99 and max.

    The paper's "longer tail": later generations' bulk moves to lower perplexity while a growing
    share of samples lies above anything generation 0 itself wrote.
    """
    if 0 not in values:
        return []
    ref_p99, ref_max = np.percentile(values[0], 99), values[0].max()
    lines = ["| generation | p5 | median | p95 | p99 | max | share > gen-0 p99 | share > gen-0 max |",
             "|---|" + "---:|" * 7]
    for g, v in values.items():
        q = np.percentile(v, [5, 50, 95, 99])
        cells = [f"{x:.4g}" for x in (*q, v.max())] + [f"{np.mean(v > ref_p99):.3f}", f"{np.mean(v > ref_max):.3f}"]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    return lines


def write_report(out: Path, config) -> None:
    """Plots and a Markdown report of results.parquet."""
    import pyarrow.parquet as pq

    results = pq.read_table(out / "results.parquet").to_pandas()
    plot_perplexity(results, out / "perplexity.png")
    per_seed = {s: sample_perplexities(out, s, config.generations) for s in range(config.seed, config.seed + config.seeds)}
    plot_histograms(per_seed[config.seed], out / "gen0_histograms.png")
    tails = [line for s, values in per_seed.items() for line in (f"Seed {s}:", "", *tail_table(values), "")]
    mean = results.groupby(["metric", "generation"])["value"].mean().unstack("generation")
    rows = [m for m in TABLE_METRICS if m in mean.index]
    head = "| metric | " + " | ".join(f"gen {g}" for g in mean.columns) + " |"
    lines = [head, "|---|" + "---:|" * len(mean.columns)]
    lines += [f"| {m} | " + " | ".join(f"{v:.4g}" for v in mean.loc[m]) + " |" for m in rows]
    settings = json.dumps(config.record(), indent=1, sort_keys=True)
    text = f"""# LM collapse loop

Corpus `{config.corpus}`, policy `{config.workflow}`, human fraction {config.human_fraction},
{config.generations} generations, {config.seeds} seed(s) from {config.seed}; means over seeds.

{chr(10).join(lines)}

![test perplexity by generation](perplexity.png)

![perplexity of each generation's samples under generation 0 (seed {config.seed})](gen0_histograms.png)

Perplexity of each generation's samples under generation 0:

{chr(10).join(tails)}
Definitions: test_perplexity = exp(mean NLL of held-out blocks, tokens 2..L); gen0_perplexity =
per-sample perplexity of a generation's samples under generation 0; gen0_auroc = ROC AUC of
-gen0 perplexity separating samples from held-out human blocks; repetition_rate = share of a
sample's 4-grams seen earlier in it; distinct_2 = distinct bigrams / bigrams; kl_to_truth =
per-token KL(truth || model) in nats on held-out truth contexts; tail_mass = the model's
next-token mass on the truth's rare tail.

<details><summary>settings</summary>

```json
{settings}
```
</details>
"""
    write_text_atomic(out / "report.md", text)
