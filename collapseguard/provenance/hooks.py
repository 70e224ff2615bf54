"""The pre-commit hooks' checks on the files a commit changes, and their baseline of reviewed exceptions.

`verify_files`: each changed data file must be listed, byte for byte, in the nearest `manifest.json`
in its folder or above, and that manifest must be signed by a trusted key (and still list no file
that is gone). `scan_files`: the changed shards, scanned together with the guard policy by
`collapseguard scan --fail-over-limit`, must be under the policy's synthetic-share limit.

The baseline (`.collapseguard-baseline.json`, in the style of detect-secrets' `.secrets.baseline`)
records reviewed exceptions as (path, check, sha256 of the file when reviewed, reason): an
exception holds only while the file keeps those bytes, so any later edit is checked again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.provenance.manifest import MANIFEST_NAME, sha256_file

BASELINE = ".collapseguard-baseline.json"
CHECKS = ("verify", "scan")


@dataclass(frozen=True)
class Finding:
    """One problem a hook found: the file it is about, the check, and what is wrong."""

    path: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def nearest_manifest(folder: Path, top: Path) -> Path | None:
    """The nearest `manifest.json` in `folder` or a folder above it, up to `top`."""
    folder, top = folder.resolve(), top.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate / MANIFEST_NAME
        if candidate == top:
            break
    return None


def read_baseline(path: str | Path) -> dict[tuple[str, str], dict]:
    """Reviewed exceptions by (path, check); a missing file is an empty baseline."""
    path = Path(path)
    if not path.exists():
        return {}
    from collapseguard.io.readers import read_json_file

    doc = read_json_file(path, "baseline", "fix it or delete it and record exceptions with `collapseguard hook baseline`")
    entries = doc.get("exceptions") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise CollapseguardError(f"{path}: a baseline needs an 'exceptions' list; record exceptions with `collapseguard hook baseline`")
    out = {}
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("path", "check", "sha256"))
                and e["check"] in CHECKS):
            raise CollapseguardError(f"{path}: exceptions[{i}] needs path, check (verify or scan) and sha256; "
                                     "record it again with `collapseguard hook baseline`")
        out[(e["path"], e["check"])] = e
    return out


def write_baseline(path: str | Path, entries: dict[tuple[str, str], dict]) -> None:
    from collapseguard.io.atomic import write_text_atomic

    doc = {"collapseguard_baseline": 1, "exceptions": [entries[k] for k in sorted(entries)]}
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def posix(path) -> str:
    return Path(path).as_posix()


def add_exceptions(baseline: str | Path, files, check: str, reason: str) -> list[dict]:
    """Record `files`, as they are now, as reviewed exceptions to `check`."""
    if check not in CHECKS:
        raise CollapseguardError(f"unknown check {check!r}; choose verify or scan")
    if not reason.strip():
        raise CollapseguardError("--reason is empty; say why the exception was accepted")
    entries = read_baseline(baseline)
    added = []
    for f in files:
        if not Path(f).is_file():
            raise CollapseguardError(f"{f}: no such file; pass the data files the hook reported")
        entry = {"path": posix(f), "check": check, "sha256": sha256_file(f), "reason": reason}
        entries[(entry["path"], check)] = entry
        added.append(entry)
    write_baseline(baseline, entries)
    return added


def is_excepted(finding_path: str, check: str, baseline: dict) -> bool:
    """True when the baseline holds a reviewed exception for these exact bytes."""
    entry = baseline.get((posix(finding_path), check))
    return entry is not None and Path(finding_path).is_file() and sha256_file(finding_path) == entry["sha256"]


def verify_files(files, public_keys, *, top: Path | None = None, allow_unsigned: bool = False) -> list[Finding]:
    """Findings for the changed `files` against their nearest manifests (see the module doc)."""
    top = Path.cwd() if top is None else Path(top)
    groups: dict[Path, list[Path]] = {}
    findings = []
    for f in files:
        p = Path(f)
        if p.name == MANIFEST_NAME:
            groups.setdefault(p, [])
            continue
        manifest = nearest_manifest(p.parent, top)
        if manifest is None:
            findings.append(Finding(posix(p), "verify", "no manifest.json in its folder or above; build and sign one "
                                    "with `collapseguard provenance build` and `provenance sign`"))
        else:
            groups.setdefault(_shown(manifest, top), []).append(p)
    for manifest, members in groups.items():
        findings += check_group(manifest, members, public_keys, allow_unsigned)
    return findings


def _shown(path: Path, top: Path) -> Path:
    try:
        return path.resolve().relative_to(top.resolve())
    except ValueError:
        return path


def check_group(manifest: Path, members: list[Path], public_keys, allow_unsigned: bool) -> list[Finding]:
    """The manifest's signature, its changed members, and that none of its subjects is gone."""
    from collapseguard.provenance.dsse import VerificationFailed, verify_envelope
    from collapseguard.provenance.manifest import is_envelope, read_manifest
    from collapseguard.provenance.verify import check_subject, check_subject_path

    doc = read_manifest(manifest)
    try:
        if is_envelope(doc):
            statement = verify_envelope(doc, public_keys)
        elif allow_unsigned:
            statement = doc
        else:
            raise VerificationFailed("not signed; sign it with `collapseguard provenance sign`")
    except VerificationFailed as exc:
        return [Finding(posix(manifest), "verify", str(exc))]
    root = manifest.parent
    subjects = {s["name"]: s for s in statement["subject"]}
    entries = statement["predicate"].get("files") or {}
    findings = []
    for member in members:
        try:
            rel = member.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = posix(member)
        if rel not in subjects:
            findings.append(Finding(posix(member), "verify", f"added: not listed in {posix(manifest)}; rebuild and sign it"))
            continue
        try:
            check_subject(root, subjects[rel], entries.get(rel))
        except VerificationFailed as exc:
            findings.append(Finding(posix(member), "verify", f"{str(exc).split(': ', 1)[-1]} ({posix(manifest)})"))
    for name in subjects:
        try:
            if not check_subject_path(root, name).is_file():
                findings.append(Finding(posix(manifest), "verify", f"{name}: removed (listed, not found)"))
        except VerificationFailed as exc:
            findings.append(Finding(posix(manifest), "verify", str(exc)))
    return findings


def scan_files(files, policy_path: str | Path) -> tuple[list[Finding], dict | None]:
    """Findings when the changed shards, scanned together, are over the policy's limit; and the summary."""
    from collapseguard.scan.policy import load_policy
    from collapseguard.scan.sources import format_of

    policy = load_policy(policy_path)
    if policy.max_synthetic_share is None:
        raise CollapseguardError(f"{policy_path}: no max_synthetic_share; set the limit the hook enforces, "
                                 "e.g. max_synthetic_share = 0.05")
    shards = [Path(f) for f in files if Path(f).is_file() and format_of(Path(f)) not in (None, "datasets")]
    if not shards:
        return [], None
    with tempfile.TemporaryDirectory(prefix="collapseguard-hook-") as tmp:
        inputs = Path(tmp) / "changed"
        for shard in shards:
            link = inputs / _relative_name(shard)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(shard.resolve())
        cmd = [sys.executable, "-m", "collapseguard", "scan", str(inputs), "--out", str(Path(tmp) / "out"),
               "--policy", str(policy_path), "--fail-over-limit", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise CollapseguardError(f"collapseguard scan failed: {lines[-1] if lines else proc.returncode}".replace("Error: ", ""))
    summary = json.loads(proc.stdout)
    if not summary.get("over_limit"):
        return [], summary
    from collapseguard.scan.summary import fmt_share

    overall = f"synthetic share {fmt_share(summary['synthetic_share'])} of the changed shards is over the policy's " \
              f"limit {summary['max_synthetic_share']}"
    findings = [Finding(row["shard"], "scan", f"{row['synthetic']} of {row['records']} records flagged synthetic; {overall}")
                for row in summary["shards"] if row["synthetic"]]
    return findings or [Finding(posix(shards[0]), "scan", overall)], summary


def _relative_name(path: Path) -> str:
    """The path as scan should name it: relative to the current folder when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix().lstrip("/")
