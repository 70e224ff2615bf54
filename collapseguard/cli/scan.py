"""`collapseguard scan` and `collapseguard filter`: guard dataset shards with a policy."""

from __future__ import annotations

import json
import sys
from os.path import join

import click


@click.command("scan")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder: attributes/, markers/, summary.*")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None,
              help="Guard policy TOML (default: collapseguard.toml here).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Processes (local) or actors (ray).")
@click.option("--cpus-per-worker", type=float, default=0.5, show_default=True, help="Ray: CPUs reserved per actor.")
@click.option("--ray-address", default=None, help="Ray: cluster address (default: RAY_ADDRESS, else a local instance).")
@click.option("--text-column", default=None, help="Override the policy's text column.")
@click.option("--overwrite", is_flag=True, help="Rescan everything and replace outputs in --out.")
@click.option("--fail-over-limit", is_flag=True, help="Exit 1 when the synthetic share is over the policy's limit, or when no estimate can show it is within.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def scan(inputs, out, policy_file, engine, workers, cpus_per_worker, ray_address, text_column, overwrite,
         fail_over_limit, as_json):
    """Score every record of the shards under INPUTS (files, folders, globs) with the policy's
    detectors; write row-aligned attribute shards and a summary with the synthetic share.

    \b
    Inputs: parquet (also a dataset repo's data/*.parquet), jsonl, jsonl.gz, jsonl.zst, .txt,
    and `datasets` folders saved to disk. The input is never modified. A rerun skips shards
    already done with the same input bytes, policy and calibration; a killed run resumes.
    Exit codes: 0 done, 1 over the limit or not shown within it (with --fail-over-limit), 2 usage
    or unreadable input.

    \b
    Examples:
      collapseguard scan data/ --out scan/ --policy collapseguard.toml
      collapseguard scan 'crawl/**/*.jsonl.gz' --out scan/ --json
      collapseguard scan data/ --out scan/ --engine ray --workers 4 --ray-address auto
    """
    from collapseguard.scan.engine import ScanConfig, run_scan
    from collapseguard.scan.summary import dumps, one_line, unproven_within

    config = ScanConfig(list(inputs), out, policy_file, engine, workers, overwrite, text_column, ray_address,
                        cpus_per_worker)
    from collapseguard.cli.progress import RateLog

    progress = RateLog("scan")
    try:
        summary = run_scan(config, progress)
    except BaseException:
        progress.close(failed=True)
        raise
    progress.close()
    drift = summary.get("calibration_drift") or {}
    if drift.get("warning"):
        click.echo(f"warning: {drift['warning']}", err=True)
    if as_json:
        click.echo(dumps(summary))
    else:
        d = summary["decisions"]
        click.echo(f"{summary['records']:,} records: {d['synthetic']:,} synthetic, {d['human']:,} human, "
                   f"{d['abstain']:,} abstain; {one_line(summary)}")
        click.echo(f"wrote {join(out, 'summary.md')}, {join(out, 'summary.json')} and {join(out, 'attributes', '')}")
    if fail_over_limit and summary["over_limit"]:
        click.echo(f"synthetic share over the policy's limit {summary['max_synthetic_share']}", err=True)
        sys.exit(1)
    if fail_over_limit and unproven_within(summary):
        click.echo(f"no estimate of the synthetic share could be made (see summary.md), so it cannot be shown "
                   f"within the policy's limit {summary['max_synthetic_share']}", err=True)
        sys.exit(1)


@click.command("filter")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--attributes", required=True, type=click.Path(), help="The `scan --out` folder for these inputs.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Output folder: kept/, rejected/ and (with --keep human) abstained/.")
@click.option("--keep", type=click.Choice(["human", "human+abstain"]), default="human", show_default=True,
              help="Which decisions go to kept/. `human`: only records decided human; records the scan abstained "
                   "on (neither human nor machine) go to abstained/. `human+abstain`: keep those too.")
@click.option("--overwrite", is_flag=True, help="Replace earlier outputs in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def filter_command(inputs, attributes, out, keep, overwrite, as_json):
    """Write the records of INPUTS that the scan kept, those it rejected, and those it abstained on,
    as shards in the input's own format and layout with the decision columns added.

    \b
    Examples:
      collapseguard filter data/ --attributes scan/ --out clean/
      collapseguard filter data/ --attributes scan/ --out clean/ --keep human+abstain --json
    """
    from collapseguard.scan.filter import FilterConfig, run_filter

    result = run_filter(FilterConfig(list(inputs), attributes, out, keep, overwrite))
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        if keep == "human":
            click.echo(f"kept {result['kept']:,} records decided human, rejected {result['rejected']:,} synthetic, "
                       f"set aside {result['abstained']:,} the scan abstained on; wrote {join(out, 'kept')}, "
                       f"{join(out, 'rejected')} and {join(out, 'abstained')}")
        else:
            click.echo(f"kept {result['kept']:,} records ({result['abstain_kept']:,} of them abstained on, not decided "
                       f"human), rejected {result['rejected']:,} synthetic; wrote {join(out, 'kept')} and {join(out, 'rejected')}")
