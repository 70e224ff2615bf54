"""`collapseguard hook verify|scan|baseline`: the checks behind the pre-commit hooks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

BASELINE_OPTION = click.option("--baseline", default=".collapseguard-baseline.json", show_default=True,
                               type=click.Path(dir_okay=False), help="Reviewed exceptions (see `hook baseline`).")
POLICY_OPTION = click.option("--policy", "policy_file", default="collapseguard.toml", show_default=True,
                             type=click.Path(dir_okay=False), help="The guard policy (limit, trusted keys).")


@click.group()
def hook() -> None:
    """The pre-commit hooks `collapseguard-verify` and `collapseguard-scan` (see .pre-commit-hooks.yaml).

    Run from the repository root on the changed files, as pre-commit does. Exit codes: 0 clean,
    1 findings (one line each: PATH: problem), 2 usage (bad policy, baseline, manifest or key).

    \b
    Examples:
      collapseguard hook verify data/shard-000.parquet data/manifest.json
      collapseguard hook scan data/shard-000.parquet --policy collapseguard.toml
      collapseguard hook baseline data/shard-007.jsonl --check scan --reason "reviewed: quoted model output in a study"
    """


def _report(findings, baseline, check: str) -> None:
    from collapseguard.provenance.hooks import is_excepted

    shown = [f for f in findings if not is_excepted(f.path, check, baseline)]
    for f in shown:
        click.echo(f"{f}")
    if shown:
        click.echo(f"collapseguard-{check}: {len(shown)} finding(s); fix them, or record a reviewed exception "
                   f"with `collapseguard hook baseline FILE --check {check} --reason ...`", err=True)
        sys.exit(1)


def _trusted_keys(public_keys, policy_file) -> list:
    from collapseguard.errors import CollapseguardError

    if public_keys:
        return list(public_keys)
    if Path(policy_file).is_file():
        from collapseguard.scan.policy import load_policy

        keys = load_policy(policy_file).trusted_key_paths
    else:
        keys = sorted(Path(".collapseguard", "keys").glob("*.pub"))
    if not keys:
        raise CollapseguardError("no trusted public keys: commit the team's .pub under .collapseguard/keys/, list "
                                 "trusted_keys in the policy, or pass --public-key")
    return keys


@hook.command("verify")
@click.argument("files", nargs=-1, type=click.Path())
@POLICY_OPTION
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted key (repeatable; default: the policy's trusted_keys, else .collapseguard/keys/*.pub).")
@BASELINE_OPTION
@click.option("--allow-unsigned", is_flag=True, help="Accept unsigned manifests (check the files only).")
def verify(files, policy_file, public_keys, baseline, allow_unsigned) -> None:
    """Each changed FILE must match the nearest manifest.json in its folder or above, and that
    manifest must be signed by a trusted key and list no file that is gone.

    \b
    Example:
      collapseguard hook verify data/a.parquet data/b.jsonl
    """
    from collapseguard.provenance.hooks import read_baseline, verify_files

    excepted = read_baseline(baseline)
    keys = [] if allow_unsigned and not public_keys else _trusted_keys(public_keys, policy_file)
    _report(verify_files(files, keys, allow_unsigned=allow_unsigned), excepted, "verify")


@hook.command("scan")
@click.argument("files", nargs=-1, type=click.Path())
@POLICY_OPTION
@BASELINE_OPTION
def scan(files, policy_file, baseline) -> None:
    """The changed shards among FILES, scanned together with the policy (`collapseguard scan
    --fail-over-limit`), must be under its max_synthetic_share. Shards with a reviewed exception
    for their current bytes are left out.

    \b
    Example:
      collapseguard hook scan data/a.parquet data/b.jsonl --policy collapseguard.toml
    """
    from collapseguard.provenance.hooks import is_excepted, read_baseline, scan_files

    excepted = read_baseline(baseline)
    todo = [f for f in files if not is_excepted(f, "scan", excepted)]
    findings, _ = scan_files(todo, policy_file)
    _report(findings, excepted, "scan")


@hook.command("baseline")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", type=click.Choice(["verify", "scan"]), required=True, help="The hook the exception is for.")
@click.option("--reason", required=True, help="Why the finding was accepted (kept in the baseline).")
@BASELINE_OPTION
def baseline_command(files, check, reason, baseline) -> None:
    """Record FILES, as they are now, as reviewed exceptions to a hook; commit the baseline. An
    exception holds only while the file keeps these bytes.

    \b
    Example:
      collapseguard hook baseline data/b.jsonl --check scan --reason "reviewed: a quoted model answer"
    """
    from collapseguard.provenance.hooks import add_exceptions

    for entry in add_exceptions(baseline, files, check, reason):
        click.echo(f"{baseline}: {entry['path']} excepted from {check} at sha256 {entry['sha256'][:12]}…")
