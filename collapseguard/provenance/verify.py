"""Verify a manifest against its signature and the files beside it.

Checks, in order, stopping at the first problem (VerificationFailed, exit code 1): the manifest
is a well-formed statement or envelope (corrupt JSON, fields or encodings are failures too); the
envelope's signature against the trusted keys (an unsigned statement fails unless allowed); the
dataset's identity (the expected name) and freshness (not older than a manifest seen before);
each subject's path stays inside the root (not absolute, no `..`, no symlink out); each subject
exists with the recorded size and sha256; no data file under the root (symlinked folders
followed, as the readers follow them) is missing from the subjects. Usage errors (no such
manifest, a key file that is not a key) are CollapseguardError, exit code 2.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from collapseguard.errors import CollapseguardError
from collapseguard.provenance.dsse import VerificationFailed, verify_signatures
from collapseguard.provenance.manifest import (
    data_files,
    identity_of,
    is_envelope,
    read_manifest,
    sha256_file,
    statement_of,
)

__all__ = ["VerificationFailed", "verify_manifest", "verify_statement", "check_subject_path"]


def check_subject_name(name: str) -> PurePosixPath:
    """A subject name as a relative path, refusing absolute names and `..`."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("\\") or re.match(r"[A-Za-z]:[\\/]", name):
        raise VerificationFailed(f"{name}: subject path is absolute; manifests name files relative to their folder")
    if ".." in pure.parts:
        raise VerificationFailed(f"{name}: subject path escapes the root with '..'")
    return pure


def check_subject_path(root: Path, name: str) -> Path:
    """The file a subject names, refusing names that escape `root`."""
    path = root.joinpath(*check_subject_name(name).parts)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise VerificationFailed(f"{name}: subject path escapes the root through a symlink (to {path.resolve()})") from None
    return path


def check_subject(root: Path, subject: dict, entry: dict | None) -> None:
    """One subject: inside the root, present, same size and sha256."""
    name = subject["name"]
    path = check_subject_path(root, name)
    if not path.is_file():
        raise VerificationFailed(f"{name}: removed (listed in the manifest, not found under {root})")
    if entry and isinstance(entry.get("size"), int) and path.stat().st_size != entry["size"]:
        raise VerificationFailed(f"{name}: changed ({path.stat().st_size} bytes, the manifest says {entry['size']})")
    if sha256_file(path) != subject["digest"]["sha256"].lower():
        raise VerificationFailed(f"{name}: changed (sha256 differs from the manifest)")


def read_checked(manifest: Path) -> dict:
    """The manifest's document; a file that is there but malformed fails verification."""
    if not manifest.is_file():
        raise CollapseguardError(f"{manifest}: no such manifest; pass the manifest.json to verify")
    try:
        return read_manifest(manifest)
    except CollapseguardError as exc:
        raise VerificationFailed(str(exc)) from None


def check_identity(statement: dict, manifest: Path, name: str | None, not_older_than) -> list[str]:
    """Refuse another dataset (`name`) or a rollback (older than the manifest `not_older_than`);
    return warnings (a manifest without identity passes with one unless a check needs it)."""
    ident = identity_of(statement)
    if ident is None:
        if name is not None or not_older_than is not None:
            raise VerificationFailed(f"{manifest}: records no dataset identity (name, version, creation time), so "
                                     "swaps and rollbacks cannot be refused; rebuild it with `collapseguard provenance build`")
        return [f"{manifest}: records no dataset identity (built by an older collapseguard); a swap for another "
                "dataset or a rollback to an older manifest would not be noticed; rebuild and sign it again"]
    if name is not None and ident.get("name") != name:
        raise VerificationFailed(f"{manifest}: is the manifest of dataset {ident.get('name')!r}, not {name!r}")
    if not_older_than is not None:
        check_fresh(statement, manifest, Path(not_older_than))
    return []


def _version_key(version) -> tuple | None:
    parts = str(version).split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def check_fresh(statement: dict, manifest: Path, older: Path) -> None:
    """Refuse `manifest` (its verified `statement`) when it is older than the manifest `older`
    (same dataset name, created no earlier, version no lower); the very same statement passes."""
    if not older.is_file():
        raise CollapseguardError(f"{older}: no such manifest; pass to --not-older-than the manifest you trusted last")
    previous = statement_of(read_manifest(older), older)
    if previous == statement:
        return
    ident, old = identity_of(statement), identity_of(previous)
    if old is None:
        raise CollapseguardError(f"{older}: records no dataset identity to compare with; pass a manifest built "
                                 "by this version")
    if old.get("name") != ident.get("name"):
        raise VerificationFailed(f"{manifest}: is the manifest of dataset {ident.get('name')!r}, but {older} is of "
                                 f"{old.get('name')!r}: another dataset, not a newer version")
    new_v, old_v = _version_key(ident.get("version")), _version_key(old.get("version"))
    if new_v is not None and old_v is not None and new_v < old_v:
        raise VerificationFailed(f"{manifest}: rollback: version {ident.get('version')} is older than version "
                                 f"{old.get('version')} of {older}")
    if str(ident.get("created")) < str(old.get("created")):
        raise VerificationFailed(f"{manifest}: rollback: created {ident.get('created')}, before {older} "
                                 f"({old.get('created')})")
    if ident.get("version") == old.get("version") and ident.get("created") == old.get("created"):
        raise VerificationFailed(f"{manifest}: claims the same version and creation time as {older} with another "
                                 "statement; one of them was altered")


def verify_manifest(manifest, public_keys=(), **options) -> dict:
    """Verify `manifest` (a path); return a report dict, or raise VerificationFailed naming the
    first problem (options and errors as `verify_statement`)."""
    return verify_statement(manifest, public_keys, **options)[1]


def verify_statement(manifest, public_keys=(), *, root=None, allow_unsigned: bool = False,
                     check_added: bool = True, name: str | None = None, not_older_than=None) -> tuple[dict, dict]:
    """Verify `manifest` (a path); return (the statement it verified, a report dict), or raise
    VerificationFailed naming the first problem. `name`: the dataset it must be; `not_older_than`: a manifest of the same dataset
    it must not be older than. Usage errors (no such file, a key file that is not an Ed25519 key)
    are CollapseguardError."""
    manifest = Path(manifest)
    doc = read_checked(manifest)
    root = Path(root) if root is not None else manifest.parent
    public_keys = list(public_keys)
    if is_envelope(doc):
        statement, signed_by = verify_signatures(doc, public_keys)
    elif allow_unsigned:
        statement, signed_by = doc, []
    else:
        raise VerificationFailed(f"{manifest}: not signed; sign it with `collapseguard provenance sign` "
                                 "or pass --allow-unsigned to check the files only")
    warnings = check_identity(statement, manifest, name, not_older_than)
    entries = statement["predicate"].get("files") or {}
    listed = set()
    for subject in statement["subject"]:
        check_subject(root, subject, entries.get(subject["name"]))
        listed.add(PurePosixPath(subject["name"]).as_posix())
    if check_added:
        exclude = (manifest.resolve().relative_to(root.resolve()).as_posix(),) if manifest.resolve().is_relative_to(
            root.resolve()) else ()
        include = statement["predicate"].get("include") or []
        added = [n for n in data_files(root, exclude, include) if n not in listed]
        if added:
            more = f" (and {len(added) - 1} more)" if len(added) > 1 else ""
            raise VerificationFailed(f"{added[0]}: added (a data file under {root} that the manifest does not list){more}")
    return statement, {"manifest": str(manifest), "root": str(root), "signed": is_envelope(doc),
                       "keyids": signed_by, "files": len(statement["subject"]), "dataset": identity_of(statement),
                       "records": statement["predicate"].get("records"), "warnings": warnings, "ok": True}
