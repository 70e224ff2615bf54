"""`collapseguard provenance build|keygen|sign|verify|card|croissant`: signed manifests of data files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from collapseguard.cli.options import overwrite_option


@click.group()
def provenance() -> None:
    """Provenance manifests: in-toto statements over data files, signed as DSSE envelopes (Ed25519).

    \b
    Examples:
      collapseguard provenance keygen --out ~/.keys/team   # commit only team.pub, under .collapseguard/keys/
      collapseguard provenance build data/ --out data/manifest.json --attributes scan-out/ --policy collapseguard.toml
      collapseguard provenance sign data/manifest.json --key ~/.keys/team
      collapseguard provenance verify data/manifest.json --public-key .collapseguard/keys/team.pub
      collapseguard provenance card data/manifest.json --pretty-name "My corpus" --license cc-by-4.0
      collapseguard provenance croissant data/manifest.json --name my-corpus --out croissant.json

    Exit codes: 0 ok; 1 the manifest does not verify (the first problem is named: signature,
    identity, rollback, a changed, added or removed file, or a malformed manifest or encoding);
    2 usage or input error (a missing file, a key file that is not a key, a refused option or output).
    """


def _is_manifest(path: Path) -> bool:
    """Whether `path` holds a manifest (build may replace its own output, nothing else)."""
    from collapseguard.errors import CollapseguardError
    from collapseguard.provenance.manifest import read_manifest

    try:
        read_manifest(path)
        return True
    except CollapseguardError:
        return False


@provenance.command("build")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Manifest to write (default: DATA_DIR/manifest.json).")
@click.option("--parent", "parents", multiple=True, type=click.Path(dir_okay=False),
              help="Manifest of data this was made from (repeatable): lineage as a graph. A relative path is "
                   "resolved from the manifest's folder (as it is recorded), not the working directory.")
@click.option("--attributes", default=None, type=click.Path(file_okay=False),
              help="The `collapseguard scan --out` folder of DATA_DIR: detected origin counts and the synthetic share.")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="Guard policy TOML: its fingerprint and calibration hash go into the manifest.")
@click.option("--include", multiple=True, help="Glob of more data files, read as text (repeatable), e.g. '*.tokens'.")
@click.option("--name", default=None, help="Dataset name, recorded and signed (default: DATA_DIR's folder name).")
@click.option("--version", "version", default=None,
              help="Dataset version (default: the replaced manifest's version + 1 when a whole number, else 1).")
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the statement as JSON.")
def build(data_dir, out, parents, attributes, policy_file, include, name, version, overwrite, as_json) -> None:
    """Write an unsigned in-toto statement covering every data file under DATA_DIR (sha256, size,
    records, origin counts) with the dataset's identity (name, version, creation time, the digest
    of the manifest it replaces), the scan's synthetic share, the policy fingerprint and parents.
    Parent paths are recorded relative to the manifest's folder.

    \b
    Example:
      collapseguard provenance build data/ --parent ../raw/manifest.json --attributes scan-out/
      collapseguard provenance build wikitext-2/ --include '*.tokens' --name wikitext-2 --version 1
    """
    from collapseguard.errors import CollapseguardError
    from collapseguard.io.outputs import check_output_file
    from collapseguard.provenance.manifest import (
        build_statement,
        dataset_identity,
        dumps,
        write_manifest,
    )

    out = Path(out) if out else Path(data_dir) / "manifest.json"
    if out.is_file() and not _is_manifest(out):
        raise CollapseguardError(f"{out}: already exists and is not a manifest; build replaces only its own "
                                 "manifests, whatever the flags (--overwrite too): choose another --out")
    check_output_file(out, overwrite=overwrite, ours=_is_manifest)
    identity = dataset_identity(name or Path(data_dir).resolve().name, version=version,
                                previous=out if out.is_file() else None)
    parents = [parent_from(p, out.parent) for p in parents]
    statement = build_statement(data_dir, parents=parents, policy=policy_file, attributes=attributes,
                                include=include, dataset=identity, manifest_dir=out.parent)
    write_manifest(out, statement)
    if as_json:
        click.echo(dumps(statement), nl=False)
    else:
        pred = statement["predicate"]
        click.echo(f"wrote {out}: {len(statement['subject'])} files, {pred['records']:,} records "
                   f"(unsigned; sign it with `collapseguard provenance sign {out} --key KEY`)")


def parent_from(parent, manifest_dir: Path) -> Path:
    """A --parent path: absolute as given, relative from the manifest's folder."""
    from collapseguard.errors import CollapseguardError

    path = Path(parent) if Path(parent).is_absolute() else manifest_dir / parent
    if not path.is_file():
        raise CollapseguardError(f"{parent}: no such parent manifest at {path} (a relative --parent is resolved from "
                                 f"the manifest's folder {manifest_dir}); pass the path from there, or an absolute one")
    return path


@provenance.command("keygen")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Private key file (0600); KEY.pub is written beside it.")
@overwrite_option
def keygen(out, overwrite) -> None:
    """Make an Ed25519 key pair: the private key (PEM, mode 0600) and OUT.pub to share.

    \b
    Example:
      collapseguard provenance keygen --out ~/.keys/collapseguard   # commit only the .pub
    """
    from collapseguard.provenance.keys import generate_keypair, key_id, load_public_key

    private, public = generate_keypair(out, overwrite=overwrite)
    click.echo(f"wrote {private} (private, 0600) and {public} (key id {key_id(load_public_key(public))[:16]}…)")


@provenance.command("sign")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="Ed25519 private key (from `provenance keygen`).")
def sign(manifest, key) -> None:
    """Replace the statement in MANIFEST, atomically, with a DSSE envelope signed by KEY.

    \b
    Example:
      collapseguard provenance sign data/manifest.json --key ~/.keys/team
    """
    from collapseguard.errors import CollapseguardError
    from collapseguard.provenance.dsse import sign_statement
    from collapseguard.provenance.manifest import is_envelope, read_manifest, write_manifest

    doc = read_manifest(manifest)
    if is_envelope(doc):
        raise CollapseguardError(f"{manifest}: already signed; rebuild it with `collapseguard provenance build` to sign again")
    envelope = sign_statement(doc, key)
    write_manifest(manifest, envelope)
    click.echo(f"signed {manifest} (key id {envelope['signatures'][0]['keyid'][:16]}…)")


def trusted_keys(public_keys, policy_file) -> list:
    """--public-key files, else the policy's trusted keys (every *.pub under .collapseguard/keys/)."""
    if public_keys:
        return list(public_keys)
    if policy_file:
        from collapseguard.scan.policy import load_policy

        return load_policy(policy_file).trusted_key_paths
    return []


@provenance.command("verify")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Trusted Ed25519 public key (repeatable; any one must verify).")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="Trust the policy's keys (trusted_keys; default every *.pub under .collapseguard/keys/).")
@click.option("--root", default=None, type=click.Path(file_okay=False), help="Folder the subjects are relative to (default: the manifest's).")
@click.option("--allow-unsigned", is_flag=True, help="Accept an unsigned statement and check the files only.")
@click.option("--name", default=None, help="The dataset MANIFEST must be (its signed name): refuses a swap for another.")
@click.option("--not-older-than", "not_older_than", default=None, type=click.Path(dir_okay=False),
              help="A manifest of the same dataset trusted before: refuse MANIFEST if it is older (a rollback).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(manifest, public_keys, policy_file, root, allow_unsigned, name, not_older_than, as_json) -> None:
    """Check MANIFEST's signature, the dataset's identity and freshness, and that the files match
    it byte for byte, with none added or removed (symlinked folders followed) and no subject path
    escaping the root.

    \b
    Exit codes:
      0  verified
      1  does not verify: the first problem is named (a malformed manifest or encoding, a broken or
         untrusted signature, another dataset, a rollback, a changed, added or removed file)
      2  usage error: no such manifest, a key file that is not an Ed25519 key, a bad option

    \b
    Examples:
      collapseguard provenance verify data/manifest.json --public-key team.pub
      collapseguard provenance verify data/manifest.json --public-key team.pub --name my-corpus \\
          --not-older-than last-trusted/manifest.json
      collapseguard provenance verify data/manifest.json --allow-unsigned --json
    """
    from collapseguard.provenance.verify import VerificationFailed, verify_manifest

    try:
        report = verify_manifest(manifest, trusted_keys(public_keys, policy_file), root=root,
                                 allow_unsigned=allow_unsigned, name=name, not_older_than=not_older_than)
    except VerificationFailed as exc:
        if as_json:
            click.echo(json.dumps({"manifest": str(manifest), "ok": False, "problem": str(exc)}, indent=2))
        click.echo(f"verification failed: {exc}", err=True)
        sys.exit(1)
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        how = "signature and files checked" if report["signed"] else "unsigned: files checked only"
        click.echo(f"ok: {manifest} matches {report['files']} files ({how})")


def verified_statement(manifest, public_keys, policy_file, allow_unsigned) -> dict:
    """MANIFEST's statement once it verifies (signature, paths inside its folder, files); exit 1 otherwise."""
    from collapseguard.provenance.verify import VerificationFailed, verify_statement

    try:
        return verify_statement(manifest, trusted_keys(public_keys, policy_file), allow_unsigned=allow_unsigned)[0]
    except VerificationFailed as exc:
        click.echo(f"verification failed: {exc}; nothing written (an export states only a verified manifest)",
                   err=True)
        sys.exit(1)


def verify_options(command):
    """--public-key, --policy and --allow-unsigned, for the commands that verify before they export."""
    command = click.option("--allow-unsigned", is_flag=True,
                           help="Export an unsigned statement (its files are still checked).")(command)
    command = click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
                           help="Trust the policy's keys (trusted_keys; default every *.pub under .collapseguard/keys/).")(command)
    return click.option("--public-key", "public_keys", multiple=True, type=click.Path(dir_okay=False),
                        help="Trusted Ed25519 public key (repeatable): MANIFEST is verified before the export.")(command)


@provenance.command("card")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--pretty-name", default=None, help="The card's pretty_name.")
@click.option("--license", "license_", default=None, help="Hub license id, e.g. cc-by-4.0.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the block here (default: print it).")
@verify_options
@overwrite_option
def card(manifest, pretty_name, license_, out, public_keys, policy_file, allow_unsigned, overwrite) -> None:
    """Print the Hugging Face dataset-card YAML block (README.md front matter) for MANIFEST, once
    MANIFEST verifies (as `provenance verify`; exit 1 otherwise).

    \b
    Example:
      collapseguard provenance card data/manifest.json --public-key team.pub --pretty-name "My corpus" --license cc-by-4.0
    """
    from collapseguard.provenance.card import card_block

    statement = verified_statement(manifest, public_keys, policy_file, allow_unsigned)
    check_export_out(out, manifest, statement)
    block = card_block(statement, pretty_name=pretty_name, license=license_)
    _emit(block, out, overwrite)


@provenance.command("croissant")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Dataset name.")
@click.option("--description", default=None, help="Dataset description.")
@click.option("--url", default=None, help="Dataset home page (left out when not given).")
@click.option("--base-url", default=None, help="Prefix of each file's contentUrl (default: the relative path).")
@click.option("--license", "license_", default=None, help="License URL or SPDX id.")
@click.option("--version", "version", default=None, help="Dataset version, e.g. 1.0.0.")
@click.option("--text-column", default=None, help="Text column of the record sets (default: the policy's, else text).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the JSON-LD here (default: print it).")
@verify_options
@overwrite_option
def croissant(manifest, name, description, url, base_url, license_, version, text_column, out, public_keys,
              policy_file, allow_unsigned, overwrite) -> None:
    """Export MANIFEST as Croissant 1.0 JSON-LD: one FileObject per file with its sha256, and the
    provenance fields (rai:hasSyntheticData, origin counts, synthetic share, policy, parents), and
    a record set per parquet/jsonl file (its text, and its `origin` column when it has one).
    contentUrl is relative to the manifest's folder unless --base-url: write the file there to
    load the records from it. MANIFEST is verified first (as `provenance verify`; exit 1 otherwise),
    so no contentUrl leaves its folder; what is not known (--url, --license, ...) is left out.

    \b
    Example:
      collapseguard provenance croissant data/manifest.json --public-key team.pub --name my-corpus \\
          --license cc-by-4.0 --out croissant.json
    """
    from collapseguard.provenance.croissant import to_croissant

    statement = verified_statement(manifest, public_keys, policy_file, allow_unsigned)
    check_export_out(out, manifest, statement)
    doc = to_croissant(statement, name=name, description=description, url=url, base_url=base_url,
                       license=license_, version=version, text_column=text_column)
    _emit(json.dumps(doc, indent=2) + "\n", out, overwrite)


def check_export_out(out, manifest, statement: dict) -> None:
    """Refuse, whatever the flags, an export written onto its input manifest or onto a data file
    (one the manifest lists, or any file in a format scan reads)."""
    if out is None:
        return
    from collapseguard.errors import CollapseguardError
    from collapseguard.io.outputs import check_not_input
    from collapseguard.io.shards import format_of

    root = Path(manifest).parent
    check_not_input(out, [manifest, *(root / s["name"] for s in statement["subject"])], contains=False)
    path = Path(out)
    if path.is_file() and (format_of(path) is not None or _is_manifest(path)):
        raise CollapseguardError(f"{out}: is a data file or a manifest; an export never replaces one, whatever the "
                                 "flags: choose another --out")


def _emit(text: str, out, overwrite: bool) -> None:
    """Print `text`, or write it to `out` (already checked by `check_export_out`)."""
    if out is None:
        click.echo(text, nl=False)
        return
    from collapseguard.io.atomic import write_text_atomic
    from collapseguard.io.outputs import check_output_file

    check_output_file(out, overwrite=overwrite)
    write_text_atomic(out, text)
    click.echo(f"wrote {out}")
