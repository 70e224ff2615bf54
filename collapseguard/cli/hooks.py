"""`collapseguard hook verify|scan|baseline`: the checks behind the pre-commit hooks and their CI entry point."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

BASELINE_OPTION = click.option("--baseline", default=None, type=click.Path(dir_okay=False),
                               help="Reviewed exceptions (see `hook baseline`) [default: .collapseguard-baseline.json "
                                    "at the repository root].")
POLICY_OPTION = click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
                             help="The guard policy (limit, trusted keys) [default: collapseguard.toml at the "
                                  "repository root].")
FROM_REF_OPTION = click.option(
    "--from-ref", default=None, envvar="PRE_COMMIT_FROM_REF", metavar="REF",
    help="Judge the working tree against REF's trust anchors (CI: origin/main; pre-push: set by pre-commit). "
         "Without FILES, check every file changed since REF. Default: HEAD and the staged change (pre-commit).")


@click.group()
def hook() -> None:
    """The pre-commit hooks `collapseguard-verify` and `collapseguard-scan` (see .pre-commit-hooks.yaml),
    and the same checks for CI (`--from-ref`).

    The trust anchors (policy, trusted keys, baseline) are read from the base revision, HEAD or
    --from-ref REF, never from the change being judged; a change to them is reported on its own and
    passes only without data files beside it. Exit codes: 0 clean, 1 findings (one line each:
    PATH: problem), 2 usage (bad policy, baseline, manifest or key; not in a git repository).

    \b
    Examples:
      collapseguard hook verify data/shard-000.parquet data/manifest.json
      collapseguard hook scan data/shard-000.parquet --policy collapseguard.toml
      collapseguard hook verify --from-ref origin/main
      collapseguard hook baseline data/shard-007.jsonl --reason "reviewed: quoted model output in a study"
    """


def _report(findings, notes, check: str) -> None:
    for note in notes:
        click.echo(note, err=True)
    for f in findings:
        click.echo(f"{f}")
    if findings:
        fix = "fix them" + (", or record a reviewed exception with `collapseguard hook baseline FILE --reason ...` "
                            "(committed on its own)" if check == "scan" else "")
        click.echo(f"collapseguard-{check}: {len(findings)} finding(s); {fix}", err=True)
        sys.exit(1)


def _setup(files, from_ref, policy_file, baseline, public_keys=()):
    """The base revision, its anchors and the changed files, all relative to the repository root,
    which becomes the current folder."""
    from collapseguard.errors import CollapseguardError
    from collapseguard.hooks.anchors import (
        changed_paths,
        find_base,
        load_anchors,
        repo_relative,
    )
    from collapseguard.hooks.checks import BASELINE

    base = find_base(from_ref)

    def relative(path, what):
        rel = repo_relative(base.root, path)
        if rel is None:
            raise CollapseguardError(f"{path}: {what} outside the repository {base.root}; the hooks judge files in it")
        return rel

    rels = [relative(f, "a file") for f in files]
    policy_rel = relative(policy_file, "the policy is") if policy_file else "collapseguard.toml"
    baseline_rel = relative(baseline, "the baseline is") if baseline else BASELINE
    anchors = load_anchors(base, policy_rel, baseline_rel, [os.path.abspath(k) for k in public_keys])
    os.chdir(base.root)
    if not files:
        rels = [path for _, path in changed_paths(base)]
    return base, anchors, rels


@hook.command("verify")
@click.argument("files", nargs=-1, type=click.Path())
@FROM_REF_OPTION
@POLICY_OPTION
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted key (repeatable; default: the policy's trusted_keys, else .collapseguard/keys/*.pub; "
                   "a key inside the repository is read from the base revision).")
@BASELINE_OPTION
@click.option("--allow-unsigned", is_flag=True, help="Accept unsigned manifests (check the files only).")
def verify(files, from_ref, policy_file, public_keys, baseline, allow_unsigned) -> None:
    """Each changed FILE must match the nearest manifest.json in its folder or above, and that
    manifest must be signed by a trusted key and list no file that is gone; a changed manifest has
    every file it lists checked. Files that are not data (README, .gitkeep) are left alone. No
    FILES: every file staged (or changed since --from-ref).

    \b
    Examples:
      collapseguard hook verify data/a.parquet data/b.jsonl
      collapseguard hook verify --from-ref origin/main
    """
    from collapseguard.errors import CollapseguardError
    from collapseguard.hooks.checks import anchor_findings, verify_files

    base, anchors, rels = _setup(files, from_ref, policy_file, baseline, public_keys)
    keys = [] if (allow_unsigned and not public_keys) or not rels else anchors.trusted_keys()
    if not keys and rels and not allow_unsigned:
        where = base.name if base.rev else "the working tree (no commit yet)"
        raise CollapseguardError(f"no trusted public keys in {where}: commit the team's .pub under "
                                 ".collapseguard/keys/ (on its own), list trusted_keys in the policy, or pass --public-key")
    findings, judged = verify_files(rels, keys, top=base.root, allow_unsigned=allow_unsigned)
    anchor, notes = anchor_findings(anchors.changes(), base, "verify", with_data=judged > 0)
    _report(anchor + findings, notes, "verify")


@hook.command("scan")
@click.argument("files", nargs=-1, type=click.Path())
@FROM_REF_OPTION
@POLICY_OPTION
@BASELINE_OPTION
def scan(files, from_ref, policy_file, baseline) -> None:
    """The changed shards among FILES, scanned with the policy, must each, and all together, be under
    its max_synthetic_share. Shards with a reviewed exception for their current bytes are left out.
    No FILES: every file staged (or changed since --from-ref).

    \b
    Examples:
      collapseguard hook scan data/a.parquet data/b.jsonl --policy collapseguard.toml
      collapseguard hook scan --from-ref origin/main
    """
    from collapseguard.hooks.checks import (
        anchor_findings,
        baseline_at_base,
        is_excepted,
        is_shard,
        scan_files,
        scan_policy,
    )

    base, anchors, rels = _setup(files, from_ref, policy_file, baseline)
    excepted = baseline_at_base(anchors)
    shards = [f for f in rels if is_shard(Path(f)) and Path(f).is_file()]
    with scan_policy(anchors) as policy_path:
        findings, _ = scan_files([f for f in shards if not is_excepted(f, "scan", excepted)], policy_path)
    anchor, notes = anchor_findings(anchors.changes(), base, "scan", with_data=bool(shards))
    _report(anchor + findings, notes, "scan")


@hook.command("baseline")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", type=click.Choice(["scan"]), default="scan", show_default=True,
              help="The hook the exception is for: only scan findings can be waived, never a file's match with "
                   "its signed manifest.")
@click.option("--reason", required=True, help="Why the finding was accepted (kept in the baseline).")
@BASELINE_OPTION
def baseline_command(files, check, reason, baseline) -> None:
    """Record FILES, as they are now, as reviewed exceptions to the scan hook, in the baseline at the
    repository root (from any folder in it). An exception holds only while the file keeps these
    bytes. The hooks read the baseline from the base revision: commit it on its own, then the data.

    \b
    Example:
      collapseguard hook baseline data/b.jsonl --reason "reviewed: a quoted model answer"
    """
    from collapseguard.errors import CollapseguardError
    from collapseguard.hooks.anchors import repo_relative, repo_root
    from collapseguard.hooks.checks import BASELINE, add_exceptions

    root = repo_root()
    rels = []
    for f in files:
        rel = repo_relative(root, f)
        if rel is None:
            raise CollapseguardError(f"{f}: outside the repository {root}; pass the data files the hook reported")
        rels.append(rel)
    path = Path(baseline).absolute() if baseline else root / BASELINE
    for entry in add_exceptions(path, root, rels, check, reason):
        click.echo(f"{path}: {entry['path']} excepted from {check} at sha256 {entry['sha256'][:12]}…")
