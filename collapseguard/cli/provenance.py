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

    Exit codes: 0 ok, 1 verification failed (the first problem is named), 2 bad input.
    """


def _is_manifest(path: Path) -> bool:
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
              help="Manifest of data this was made from (repeatable): lineage as a graph.")
@click.option("--attributes", default=None, type=click.Path(file_okay=False),
              help="The `collapseguard scan --out` folder of DATA_DIR: detected origin counts and the synthetic share.")
@click.option("--policy", "policy_file", default=None, type=click.Path(dir_okay=False),
              help="Guard policy TOML: its fingerprint and calibration hash go into the manifest.")
@click.option("--include", multiple=True, help="Glob of more data files, read as text (repeatable), e.g. '*.tokens'.")
@overwrite_option
@click.option("--json", "as_json", is_flag=True, help="Print the statement as JSON.")
def build(data_dir, out, parents, attributes, policy_file, include, overwrite, as_json) -> None:
    """Write an unsigned in-toto statement covering every data file under DATA_DIR (sha256, size,
    records, origin counts) with the scan's synthetic share, the policy fingerprint and parents.

    \b
    Example:
      collapseguard provenance build data/ --parent ../raw/manifest.json --attributes scan-out/
      collapseguard provenance build wikitext-2/ --include '*.tokens'
    """
    from collapseguard.io.outputs import check_output_file
    from collapseguard.provenance.manifest import build_statement, dumps, write_manifest

    out = Path(out) if out else Path(data_dir) / "manifest.json"
    check_output_file(out, overwrite=overwrite, ours=_is_manifest)
    statement = build_statement(data_dir, parents=parents, policy=policy_file, attributes=attributes,
                                include=include)
    write_manifest(out, statement)
    if as_json:
        click.echo(dumps(statement), nl=False)
    else:
        pred = statement["predicate"]
        click.echo(f"wrote {out}: {len(statement['subject'])} files, {pred['records']:,} records "
                   f"(unsigned; sign it with `collapseguard provenance sign {out} --key KEY`)")


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
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(manifest, public_keys, policy_file, root, allow_unsigned, as_json) -> None:
    """Check MANIFEST's signature and that the files match it byte for byte, with none added or
    removed and no subject path escaping the root. Exit 1 naming the first problem.

    \b
    Examples:
      collapseguard provenance verify data/manifest.json --public-key team.pub
      collapseguard provenance verify data/manifest.json --allow-unsigned --json
    """
    from collapseguard.provenance.verify import VerificationFailed, verify_manifest

    try:
        report = verify_manifest(manifest, trusted_keys(public_keys, policy_file), root=root,
                                 allow_unsigned=allow_unsigned)
    except VerificationFailed as exc:
        if as_json:
            click.echo(json.dumps({"manifest": str(manifest), "ok": False, "problem": str(exc)}, indent=2))
        click.echo(f"verification failed: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        how = "signature and files checked" if report["signed"] else "unsigned: files checked only"
        click.echo(f"ok: {manifest} matches {report['files']} files ({how})")


def _statement(manifest):
    from collapseguard.provenance.manifest import read_manifest, statement_of

    return statement_of(read_manifest(manifest), manifest)


@provenance.command("card")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--pretty-name", default=None, help="The card's pretty_name.")
@click.option("--license", "license_", default=None, help="Hub license id, e.g. cc-by-4.0.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the block here (default: print it).")
@overwrite_option
def card(manifest, pretty_name, license_, out, overwrite) -> None:
    """Print the Hugging Face dataset-card YAML block (README.md front matter) for MANIFEST.

    The block is made from the statement as it stands; verify the manifest first.

    \b
    Example:
      collapseguard provenance card data/manifest.json --pretty-name "My corpus" --license cc-by-4.0
    """
    from collapseguard.provenance.card import card_block

    block = card_block(_statement(manifest), pretty_name=pretty_name, license=license_)
    _emit(block, out, overwrite)


@provenance.command("croissant")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--name", required=True, help="Dataset name.")
@click.option("--description", default=None, help="Dataset description.")
@click.option("--url", default=None, help="Dataset home page.")
@click.option("--base-url", default=None, help="Prefix of each file's contentUrl (default: the relative path).")
@click.option("--license", "license_", default=None, help="License URL or SPDX id.")
@click.option("--version", "version", default=None, help="Dataset version, e.g. 1.0.0.")
@click.option("--text-column", default=None, help="Text column of the record sets (default: the policy's, else text).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the JSON-LD here (default: print it).")
@overwrite_option
def croissant(manifest, name, description, url, base_url, license_, version, text_column, out, overwrite) -> None:
    """Export MANIFEST as Croissant 1.0 JSON-LD: one FileObject per file with its sha256, and the
    provenance fields (rai:hasSyntheticData, origin counts, synthetic share, policy, parents), and
    a record set per parquet/jsonl file (its text, and its `origin` column when it has one).
    contentUrl is relative to the manifest's folder unless --base-url: write the file there to
    load the records from it.

    \b
    Example:
      collapseguard provenance croissant data/manifest.json --name my-corpus --license cc-by-4.0 --out croissant.json
    """
    from collapseguard.provenance.croissant import to_croissant

    doc = to_croissant(_statement(manifest), name=name, description=description, url=url, base_url=base_url,
                       license=license_, version=version, text_column=text_column)
    _emit(json.dumps(doc, indent=2) + "\n", out, overwrite)


def _emit(text: str, out, overwrite: bool) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    from collapseguard.io.atomic import write_text_atomic
    from collapseguard.io.outputs import check_output_file

    check_output_file(out, overwrite=overwrite)
    write_text_atomic(out, text)
    click.echo(f"wrote {out}", err=True)
