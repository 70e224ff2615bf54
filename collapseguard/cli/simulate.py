"""`collapseguard simulate run|sweep`: the collapse loops from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from collapseguard.cli.options import overwrite_option, parse_key_values, seed_option
from collapseguard.cli.simulate_lm import lm_options, run_lm
from collapseguard.errors import CollapseguardError, check_choice

STAT_WORLDS = ("gaussian", "mvgaussian", "discrete", "gmm", "vae")


def _progress(total: int, label: str):
    """A progress bar on a terminal; log lines at a steady interval in pipes, logs and CI."""
    from collapseguard.cli.progress import progress_bar

    return progress_bar(total, label)


@click.group()
def simulate() -> None:
    """Reproduce model collapse: refit a model on its own samples, generation after generation.

    \b
    Examples:
      collapseguard simulate run --world gaussian --generations 200 --samples 100 --seeds 1000 --out runs/g
      collapseguard simulate sweep --out runs/default      # the embedded default grid, report and plots
    """


@simulate.command("run")
@click.option("--world", default="gaussian", show_default=True, help="gaussian, mvgaussian, discrete, gmm, vae or lm.")
@click.option("--generations", default=100, show_default=True, help="Generations after generation 0.")
@click.option("--samples", default=100, show_default=True, help="Samples M per generation (before the schedule).")
@click.option("--seeds", default=100, show_default=True, help="Independent runs (vectorised where the world allows).")
@seed_option("The random seed all runs derive from.")
@click.option("--policy", "workflow", default="replace", show_default=True, help="replace, accumulate or subsample.")
@click.option("--human-fraction", default=0.0, show_default=True, help="c: share of each generation's data drawn fresh from the truth.")
@click.option("--prev-fraction", default=0.0, show_default=True, help="b: share drawn from the previous generation's data.")
@click.option("--model-fraction", type=float, default=None, help="a: share sampled from the model (default 1 - b - c).")
@click.option("--schedule", default="constant", show_default=True, help="Sample size per generation: constant, linear or quadratic.")
@click.option("--filter-tpr", default=0.0, show_default=True, help="Share of synthetic samples a detector removes.")
@click.option("--filter-fpr", default=0.0, show_default=True, help="Share of human samples the detector wrongly removes.")
@click.option("--estimator", default=None, help="gaussian: unbiased (default, the paper's eq. 1) or mle.")
@click.option("-o", "--world-option", "world_options", multiple=True, metavar="KEY=VALUE",
              help="World parameter, e.g. -o states=50 -o truth=uniform (discrete), -o dim=8 -o noise=0.1 (mvgaussian).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--json", "json_out", is_flag=True, help="Print a JSON summary (per generation: median and 95% interval).")
@overwrite_option
@lm_options
def run_command(**params) -> None:
    """Run one collapse loop and write OUT/results.parquet.

    Columns: world, policy, human_fraction, seed, generation, metric, value.

    \b
    Examples:
      collapseguard simulate run --world gaussian --generations 200 --samples 100 --seeds 1000 --out runs/g
      collapseguard simulate run --world gaussian --estimator mle --out runs/mle --json
      collapseguard simulate run --world discrete -o states=50 -o truth=uniform --policy accumulate --out runs/d
      collapseguard simulate run --world gmm --generations 50 --samples 1000 --seeds 4 --human-fraction 0.1 --out runs/gmm
    """
    world = check_choice("world", params["world"], STAT_WORLDS + ("lm",))
    if world == "lm":
        return run_lm(params)
    import dataclasses

    from collapseguard.io.atomic import write_parquet_atomic
    from collapseguard.io.outputs import claimed_output_dir
    from collapseguard.simulate.loop import SimConfig, run_simulation
    from collapseguard.simulate.policy import Policy
    from collapseguard.simulate.results import json_summary, to_table

    options = parse_key_values(params["world_options"], "world option", "states=50")
    if params["estimator"] is not None:
        options["estimator"] = params["estimator"]
    policy = Policy(params["workflow"], params["human_fraction"], params["prev_fraction"], params["model_fraction"],
                    params["schedule"], params["filter_tpr"], params["filter_fpr"])
    config = SimConfig(world, params["generations"], params["samples"], params["seeds"], params["seed"], policy, options)
    out = Path(params["out"])
    with claimed_output_dir(out, command="simulate run", settings=dataclasses.asdict(config),
                            overwrite=params["overwrite"]):
        with _progress(config.generations + 1, f"{world} {policy.workflow}") as bar:
            result = run_simulation(config, progress=lambda g: bar.update(1))
        write_parquet_atomic(to_table([result]), out / "results.parquet")
    if params["json_out"]:
        click.echo(json.dumps(json_summary(result)))
    else:
        click.echo(f"wrote {out / 'results.parquet'} ({result.seconds:.1f} s)")


@simulate.command("sweep")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file with the grid (see docs/simulate.md).")
@click.option("--world", "worlds", multiple=True, help="Worlds to sweep (repeatable); default: the embedded grid.")
@click.option("--policy", "workflows", multiple=True, help="Workflows (repeatable): replace, accumulate, subsample.")
@click.option("--human-fraction", "fractions", multiple=True, type=float, help="Human fractions (repeatable).")
@click.option("--generations", type=int, help="Generations for every world (overrides the grid).")
@click.option("--samples", type=int, help="Samples per generation for every world.")
@click.option("--seeds", type=int, help="Seeds for every world.")
@seed_option("Random seed (default: the grid's).", default=None)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--json", "json_out", is_flag=True, help="Print final medians per cell as JSON.")
@click.option("--guard", "guards", multiple=True,
              help="--world lm: guard settings to compare (repeatable): none, default or a policy TOML (default: none and default).")
@click.option("--contamination", "contaminations", multiple=True, type=float,
              help="--world lm: machine share of each generation's crawl (repeatable; default 0.5 and 0.9).")
@click.option("--watermark-share", "watermark_shares", multiple=True, type=float,
              help="--world lm: share of generated documents carrying the KGW watermark (repeatable; default 0.5).")
@click.option("--ledger-share", "ledger_shares", multiple=True, type=float,
              help="--world lm: share of generated documents the provider logs in the ledger (repeatable; default 0.5).")
@click.option("--restore-human", default="0", show_default=True,
              help="--world lm: refill each filtered crawl to full size with verified human blocks (curate), at a "
                   "human fraction of at least this; `none` trains on the filtered crawl alone (a smaller set).")
@click.option("--workers", default=2, show_default=True, help="--world lm: cells run at once (one process and torch thread each).")
@overwrite_option
def sweep_command(config_path, worlds, workflows, fractions, generations, samples, seeds, seed, out, json_out,
                  guards, contaminations, watermark_shares, ledger_shares, restore_human, workers, overwrite) -> None:
    """Run a grid of worlds x workflows x human fractions; write results.parquet, report.md and plots.

    With no grid options this runs the embedded default (gaussian, discrete and gmm worlds;
    human fractions 0, 0.01, 0.1, 0.5; replace and accumulate) in about two minutes on two cores.

    \b
    Examples:
      collapseguard simulate sweep --out runs/default
      collapseguard simulate sweep --world gaussian --policy replace --policy subsample \\
          --human-fraction 0 --human-fraction 0.2 --generations 500 --out runs/mine
      collapseguard simulate sweep --config grid.toml --out runs/grid
      collapseguard simulate sweep --world lm --guard none --guard default --out runs/guarded

    `--world lm` runs the guarded language-model sweep instead: contamination x guard (x watermark
    and ledger share) on the ground-truth language, 3 seeds, 3 generations (a few minutes on two
    cores); `--generations`, `--seeds`, `--seed` and `--samples` (blocks a generation) resize it.
    """
    import dataclasses

    if "lm" in worlds:
        if len(worlds) > 1 or config_path or workflows or fractions:
            raise CollapseguardError("--world lm sweeps alone, over --contamination, --guard, --watermark-share and "
                                     "--ledger-share (no --config, --policy or --human-fraction); drop the other options")
        return _lm_sweep(out, overwrite, json_out, generations=generations, seeds=seeds, seed=seed, max_blocks=samples,
                         guards=guards, contaminations=contaminations, watermark_shares=watermark_shares,
                         ledger_shares=ledger_shares, restore_human=restore_human, workers=workers)
    if guards or contaminations or watermark_shares or ledger_shares or restore_human != "0":
        raise CollapseguardError("--guard, --contamination, --watermark-share, --ledger-share and --restore-human "
                                 "belong to the guarded LM sweep; add --world lm")

    from collapseguard.io.outputs import claimed_output_dir
    from collapseguard.simulate.sweep import DEFAULT_SWEEP, WorldSpec, load_sweep

    config = load_sweep(config_path) if config_path else DEFAULT_SWEEP
    if worlds:
        known = {w.name: w for w in config.worlds}
        config = dataclasses.replace(config, worlds=tuple(
            known.get(w) or WorldSpec(check_choice("world", w, STAT_WORLDS), 100, 100, 100) for w in worlds))
    overrides = {k: v for k, v in (("generations", generations), ("samples", samples), ("seeds", seeds)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, worlds=tuple(dataclasses.replace(w, **overrides) for w in config.worlds))
    grid = {k: tuple(v) for k, v in (("workflows", workflows), ("human_fractions", fractions)) if v}
    if seed is not None:
        grid["seed"] = seed
    config = dataclasses.replace(config, **grid)
    config.cells()  # every cell's sizes, policy and world options are checked before anything is written
    with claimed_output_dir(out, command="simulate sweep", settings=dataclasses.asdict(config), overwrite=overwrite,
                            inputs=[config_path] if config_path else ()):
        results = run_sweep_with_progress(config)
        _write_sweep(results, Path(out), json_out)


def _lm_sweep(out, overwrite: bool, json_out: bool, **opts) -> None:
    """The guarded LM sweep (simulate.lm.guard_sweep), sized by the options given."""
    import dataclasses

    from collapseguard.cli.progress import Heartbeat
    from collapseguard.io.outputs import claimed_output_dir
    from collapseguard.simulate.lm.guard_sweep import GuardSweepConfig, run_guard_sweep

    config = GuardSweepConfig()
    base = {k: opts[k] for k in ("generations", "seeds", "seed", "max_blocks") if opts[k] is not None}
    grid = {k: tuple(opts[k]) for k in ("guards", "contaminations", "watermark_shares", "ledger_shares") if opts[k]}
    if opts["workers"] < 1:
        raise CollapseguardError(f"--workers must be at least 1, got {opts['workers']}")
    restore = opts["restore_human"]
    if restore.lower() != "none":
        try:
            restore = float(restore)
        except ValueError:
            raise CollapseguardError(f"--restore-human {restore!r}: pass a fraction in [0, 1] or none") from None
    else:
        restore = None
    config = dataclasses.replace(config, base=dataclasses.replace(config.base, **base), restore_human=restore, **grid)
    config.cells()  # every cell (its guard and shares) is checked before anything is written
    settings = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    with claimed_output_dir(out, command="simulate sweep --world lm", settings=settings, overwrite=overwrite):
        with Heartbeat("simulate sweep --world lm") as beat:
            summary = run_guard_sweep(config, out, progress=beat.say, workers=opts["workers"])
    if json_out:
        click.echo(json.dumps(summary, default=float))
    else:
        click.echo(f"wrote {summary['report']} and {summary['results']}")


def run_sweep_with_progress(config):
    """Run the sweep with one progress bar, in percent of the estimated work (a gmm generation
    costs as much as thousands of gaussian ones, so counting generations would run ahead)."""
    import numpy as np

    from collapseguard.simulate.sweep import generation_work, run_sweep

    cells = config.cells()
    ends = np.cumsum([w for c in cells for w in generation_work(c)])
    ends = ends / ends[-1] * 100  # percent done after each generation, in the order they run
    step = iter(range(len(ends)))
    shown = [0]

    def advance(cell, generation):
        pct = int(ends[next(step)])
        if pct > shown[0]:
            bar.update(pct - shown[0])
            shown[0] = pct

    with _progress(100, f"sweep ({len(cells)} cells, % of the estimated work)") as bar:
        return run_sweep(config, progress=advance)


def _write_sweep(results, out: Path, json_out: bool) -> None:
    from collapseguard.io.atomic import write_parquet_atomic
    from collapseguard.simulate.plots import degradation_plot, heatmap_plot
    from collapseguard.simulate.report import final_medians, write_report
    from collapseguard.simulate.results import to_table

    write_parquet_atomic(to_table(results), out / "results.parquet")
    plots = {}
    for world in dict.fromkeys(r.config.world for r in results):
        cells = [r for r in results if r.config.world == world]
        names = [f"degradation_{world}.png", f"heatmap_{world}.png"]
        degradation_plot(cells, out / names[0])
        heatmap_plot(cells, out / names[1])
        plots[world] = names
    report = write_report(results, out, plots)
    if json_out:
        click.echo(json.dumps({"report": str(report), "final_median": final_medians(results)}))
    else:
        click.echo(f"wrote {report}, {out / 'results.parquet'} and {sum(map(len, plots.values()))} plots")
