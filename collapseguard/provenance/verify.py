"""Verify a manifest against its signature and the files beside it.

Checks, in order, stopping at the first problem (VerificationFailed, exit code 1): the envelope's
signature against the trusted keys (an unsigned statement fails unless allowed); each subject's
path stays inside the root (not absolute, no `..`, no symlink out); each subject exists with the
recorded size and sha256; no data file under the root is missing from the subjects.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from collapseguard.provenance.dsse import VerificationFailed, verify_envelope
from collapseguard.provenance.manifest import data_files, is_envelope, read_manifest, sha256_file

__all__ = ["VerificationFailed", "verify_manifest", "check_subject_path"]


def check_subject_path(root: Path, name: str) -> Path:
    """The file a subject names, refusing names that escape `root`."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("\\") or re.match(r"[A-Za-z]:[\\/]", name):
        raise VerificationFailed(f"{name}: subject path is absolute; manifests name files relative to their folder")
    if ".." in pure.parts:
        raise VerificationFailed(f"{name}: subject path escapes the root with '..'")
    path = root.joinpath(*pure.parts)
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


def verify_manifest(manifest, public_keys=(), *, root=None, allow_unsigned: bool = False,
                    check_added: bool = True) -> dict:
    """Verify `manifest` (a path); return a report dict, or raise VerificationFailed naming the
    first problem. Bad input (not JSON, missing fields, wrong key type) is CollapseguardError."""
    from collapseguard.provenance.keys import key_id, load_public_key

    manifest = Path(manifest)
    doc = read_manifest(manifest)
    root = Path(root) if root is not None else manifest.parent
    public_keys = list(public_keys)
    if is_envelope(doc):
        statement = verify_envelope(doc, public_keys)
        trusted = {key_id(load_public_key(k) if isinstance(k, (str, Path)) else k) for k in public_keys}
        signed_by = [s.get("keyid") for s in doc["signatures"] if s.get("keyid") in trusted]
    elif allow_unsigned:
        statement, signed_by = doc, []
    else:
        raise VerificationFailed(f"{manifest}: not signed; sign it with `collapseguard provenance sign` "
                                 "or pass --allow-unsigned to check the files only")
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
    return {"manifest": str(manifest), "root": str(root), "signed": is_envelope(doc),
            "keyids": signed_by, "files": len(statement["subject"]),
            "records": statement["predicate"].get("records"), "ok": True}
