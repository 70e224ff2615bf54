"""The pre-commit and CI hooks' checks on the files a change touches, and their baseline of reviewed exceptions.

`verify_files`: each changed data file must be listed, byte for byte, in the nearest `manifest.json`
in its folder or above, and that manifest must be signed by a trusted key (and still list no file
that is gone); when a manifest itself changes, every file it lists is checked, and every data file
under it must be listed. Files that are not data (a README, `.gitkeep`) are left alone.
`scan_files`: the changed shards, scanned together with the guard policy by `collapseguard scan`,
must each, and all together, be under the policy's synthetic-share limit.

The trust anchors (policy, keys, baseline) come from the base revision, not from the change
(`collapseguard.hooks.anchors`); `anchor_findings` reports a change to them on its own.

The baseline (`.collapseguard-baseline.json` at the repository root, in the style of detect-secrets'
`.secrets.baseline`) records reviewed exceptions to the scan as (path, check, sha256 of the file
when reviewed, reason): an exception holds only while the file keeps those bytes. A file's match
with its signed manifest cannot be waived.
"""

from __future__ import annotations

import functools
import json
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.hooks.anchors import link_path
from collapseguard.provenance.manifest import MANIFEST_NAME, sha256_file

BASELINE = ".collapseguard-baseline.json"
CHECKS = ("scan",)
NO_VERIFY_EXCEPTION = ("is for check 'verify': a file's match with its signed manifest cannot be waived "
                       "(only scan findings can); delete the entry")


@dataclass(frozen=True)
class Finding:
    """One problem a hook found: the file it is about, the check, and what is wrong."""

    path: str
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def anchor_findings(changes, base, check: str, with_data: bool) -> tuple[list[Finding], list[str]]:
    """A change to the trust anchors, reported on its own: a finding when the change also holds data
    (that data was judged by the base's anchors), else a note (an anchor change alone passes)."""
    where = "HEAD" if base.staged else base.name
    if with_data:
        fix = ("commit changes to the policy, keys or baseline on their own, without data files, so they are "
               "reviewed alone" if base.staged else
               "merge changes to the policy, keys or baseline on their own, without data files, so they are "
               "reviewed alone")
        return [Finding(path, check, f"trust anchor {_STATUS.get(status, status)} since {where}; this change's "
                        f"data is judged by {where}'s anchors; {fix}") for status, path in changes], []
    return [], [f"note: {path}: trust anchor {_STATUS.get(status, status)} since {where}; no data files in this "
                "change, so it passes: review it on its own" for status, path in changes]


_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "changed type"}


def nearest_manifest(folder: Path, top: Path) -> Path | None:
    """The nearest `manifest.json` in `folder` or a folder above it, up to `top`."""
    folder, top = folder.resolve(), top.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate / MANIFEST_NAME
        if candidate == top:
            break
    return None


def parse_baseline(doc, where: str) -> dict[tuple[str, str], dict]:
    """Reviewed exceptions by (path, check) from a parsed baseline document."""
    entries = doc.get("exceptions") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise CollapseguardError(f"{where}: a baseline needs an 'exceptions' list; record exceptions with `collapseguard hook baseline`")
    out = {}
    for i, e in enumerate(entries):
        if isinstance(e, dict) and e.get("check") == "verify":
            raise CollapseguardError(f"{where}: exceptions[{i}] {NO_VERIFY_EXCEPTION}")
        if not (isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("path", "check", "sha256"))
                and e["check"] in CHECKS):
            raise CollapseguardError(f"{where}: exceptions[{i}] needs path, check (scan) and sha256; "
                                     "record it again with `collapseguard hook baseline`")
        out[(e["path"], e["check"])] = e
    return out


def read_baseline(path: str | Path) -> dict[tuple[str, str], dict]:
    """The baseline file in the working tree; a missing file is an empty baseline."""
    path = Path(path)
    if not path.exists():
        return {}
    from collapseguard.io.readers import read_json_file

    fix = "fix it or delete it and record exceptions with `collapseguard hook baseline`"
    return parse_baseline(read_json_file(path, "baseline", fix), str(path))


def baseline_at_base(anchors) -> dict[tuple[str, str], dict]:
    """The baseline as the base revision holds it (empty when it holds none)."""
    if anchors.baseline is None:
        return {}
    where = f"{anchors.base.name}:{anchors.baseline_rel}"
    try:
        doc = json.loads(anchors.baseline.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CollapseguardError(f"{where}: not a baseline JSON ({exc}); fix it in a commit of its own") from None
    return parse_baseline(doc, where)


def write_baseline(path: str | Path, entries: dict[tuple[str, str], dict]) -> None:
    from collapseguard.io.atomic import write_text_atomic

    doc = {"collapseguard_baseline": 1, "exceptions": [entries[k] for k in sorted(entries)]}
    write_text_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def posix(path) -> str:
    return Path(path).as_posix()


def add_exceptions(baseline: Path, root: Path, files, check: str, reason: str) -> list[dict]:
    """Record `files` (paths relative to the repository `root`), as they are now, as reviewed exceptions."""
    if check not in CHECKS:
        raise CollapseguardError(f"check {check!r} {NO_VERIFY_EXCEPTION.split(': ', 1)[1].split(';')[0]}; "
                                 "fix the file and its manifest instead")
    if not reason.strip():
        raise CollapseguardError("--reason is empty; say why the exception was accepted")
    entries = read_baseline(baseline)
    added = []
    for f in files:
        if not (root / f).is_file():
            raise CollapseguardError(f"{f}: no such file; pass the data files the hook reported")
        entry = {"path": posix(f), "check": check, "sha256": sha256_file(root / f), "reason": reason}
        entries[(entry["path"], check)] = entry
        added.append(entry)
    write_baseline(baseline, entries)
    return added


def is_excepted(finding_path: str, check: str, baseline: dict) -> bool:
    """True when the baseline holds a reviewed exception for these exact bytes."""
    entry = baseline.get((posix(finding_path), check))
    return entry is not None and Path(finding_path).is_file() and sha256_file(finding_path) == entry["sha256"]


def is_shard(path: Path) -> bool:
    """A file whose name scan reads as a shard (by its suffix)."""
    from collapseguard.io.shards import format_of

    return format_of(path) not in (None, "datasets")


def verify_files(files, public_keys, *, top: Path | None = None, allow_unsigned: bool = False) -> tuple[list[Finding], int]:
    """Findings for the changed `files` against their nearest manifests (see the module doc), and how
    many of them were data (manifests and data files) rather than files the check leaves alone."""
    top = Path.cwd() if top is None else Path(top)
    groups: dict[Path, list[Path]] = {}
    changed_manifests: set[Path] = set()
    findings = []
    for f in files:
        p = Path(f)
        if p.name == MANIFEST_NAME:
            if p.is_file() or p.is_symlink():
                changed_manifests.add(_shown(p, top))
                groups.setdefault(_shown(p, top), [])
            else:
                findings += removed_manifest(p)
            continue
        manifest = nearest_manifest(p.parent, top)
        if manifest is not None:
            groups.setdefault(_shown(manifest, top), []).append(p)
        elif is_shard(p) and (p.is_file() or p.is_symlink()):
            findings.append(Finding(posix(p), "verify", "no manifest.json in its folder or above; build and sign one "
                                    "with `collapseguard provenance build` and `provenance sign`"))
    judged = len(findings)
    for manifest, members in groups.items():
        group_findings, group_judged = check_group(manifest, members, public_keys, allow_unsigned,
                                                   full=manifest in changed_manifests)
        findings += group_findings
        judged += group_judged
    return findings, judged


def removed_manifest(manifest: Path) -> list[Finding]:
    """A deleted manifest is a finding while data files remain in its folder (they are signed by nothing)."""
    from collapseguard.provenance.manifest import data_files

    left = data_files(manifest.parent) if manifest.parent.is_dir() else []
    if not left:
        return []
    more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
    return [Finding(posix(manifest), "verify", f"removed, but {posix(manifest.parent / left[0])}{more} remain; "
                    "rebuild and sign it, or remove the data too")]


def _shown(path: Path, top: Path) -> Path:
    try:
        return link_path(path).relative_to(top.resolve())
    except ValueError:
        return path


def check_group(manifest: Path, members: list[Path], public_keys, allow_unsigned: bool,
                full: bool = False) -> tuple[list[Finding], int]:
    """The manifest's signature and its changed data members; with `full` (the manifest changed) every
    subject and every data file under its root. Files that are neither listed nor data are skipped."""
    from collapseguard.provenance.dsse import VerificationFailed, verify_envelope
    from collapseguard.provenance.manifest import (
        data_files,
        is_envelope,
        read_manifest,
        statement_of,
    )
    from collapseguard.provenance.verify import check_subject, check_subject_path

    doc = read_manifest(manifest)
    root = manifest.parent
    statement = statement_of(doc, manifest)
    subjects = {s["name"]: s for s in statement["subject"]}
    include = statement["predicate"].get("include") or []
    under_root = functools.cache(lambda: data_files(root, (MANIFEST_NAME,), include))  # walked once, when needed

    data = []
    for member in members:
        rel = _member_name(member, root)
        present = member.is_file() or member.is_symlink()
        if rel in subjects or (present and rel in under_root()):
            data.append((member, rel))
    if not data and not full:
        return [], 0
    try:
        if is_envelope(doc):
            statement = verify_envelope(doc, public_keys)
            subjects = {s["name"]: s for s in statement["subject"]}
        elif not allow_unsigned:
            raise VerificationFailed("not signed; sign it with `collapseguard provenance sign`")
    except VerificationFailed as exc:
        return [Finding(posix(manifest), "verify", str(exc))], len(data) + full
    entries = statement["predicate"].get("files") or {}
    findings = []
    for member, rel in data:
        if rel not in subjects:
            findings.append(Finding(posix(member), "verify", f"added: not listed in {posix(manifest)}; rebuild and sign it"))
    checked = {rel: posix(member) for member, rel in data if rel in subjects}
    if full:
        checked = {name: checked.get(name, posix(root / name)) for name in subjects}
        reported = {f.path for f in findings}
        findings += [Finding(posix(root / name), "verify", f"added: not listed in {posix(manifest)}; rebuild and sign it")
                     for name in under_root() if name not in subjects and posix(root / name) not in reported]
    for name, shown in checked.items():
        try:
            check_subject(root, subjects[name], entries.get(name))
        except VerificationFailed as exc:
            findings.append(Finding(shown, "verify", f"{str(exc).split(': ', 1)[-1]} ({posix(manifest)})"))
    if not full:
        for name in subjects:
            try:
                if not check_subject_path(root, name).is_file():
                    findings.append(Finding(posix(manifest), "verify", f"{name}: removed (listed, not found)"))
            except VerificationFailed as exc:
                findings.append(Finding(posix(manifest), "verify", str(exc)))
    return findings, len(data) + full


def _member_name(member: Path, root: Path) -> str:
    """A changed file's name relative to its manifest's folder (a symlink named as itself, not its target)."""
    try:
        return link_path(member).relative_to(root.resolve()).as_posix()
    except ValueError:
        return posix(member)


@contextmanager
def scan_policy(anchors):
    """The policy file to scan with: the working file when it holds the base's bytes, else the base's
    text in a hidden temporary file beside it (so its relative paths resolve the same way)."""
    path = anchors.base.root / anchors.policy_rel
    if anchors.policy is None:
        if anchors.base.rev is None or not path.is_file():
            from collapseguard.scan.policy import load_policy

            load_policy(path)  # the one-line "no such policy file" error
        raise CollapseguardError(f"{anchors.policy_rel}: no policy in {anchors.base.name} to scan with; commit the "
                                 "policy on its own first")
    if path.is_file() and path.read_bytes() == anchors.policy:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".collapseguard-base-policy-", suffix=".toml") as tmp:
        tmp.write(anchors.policy)
        tmp.flush()
        yield Path(tmp.name)


def scan_files(files, policy_path: str | Path) -> tuple[list[Finding], dict | None]:
    """Findings for changed shards over the policy's limit, each on its own or all together; and the summary."""
    from collapseguard.scan.policy import load_policy

    policy = load_policy(policy_path)
    if policy.max_synthetic_share is None:
        raise CollapseguardError(f"{policy_path}: no max_synthetic_share; set the limit the hook enforces, "
                                 "e.g. max_synthetic_share = 0.05")
    shards = [Path(f) for f in files if Path(f).is_file() and is_shard(Path(f))]
    if not shards:
        return [], None
    with tempfile.TemporaryDirectory(prefix="collapseguard-hook-") as tmp:
        inputs = Path(tmp) / "changed"
        for shard in shards:
            link = inputs / _relative_name(shard)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(shard.resolve())
        summary = run_hook_scan(inputs, Path(tmp) / "out", policy_path)
    return limit_findings(summary, policy), summary


def run_hook_scan(inputs: Path, out: Path, policy_path) -> dict:
    """`collapseguard scan INPUTS --out OUT --policy POLICY` in this process, doing and writing only
    what the hook reads (the counts and summary; no attribute shards, plots or drift check); its summary."""
    from collapseguard.scan.engine import ScanConfig, run_scan

    try:
        return run_scan(ScanConfig([str(inputs)], str(out), str(policy_path), attributes=False, drift=False))
    except CollapseguardError as exc:
        raise CollapseguardError(f"collapseguard scan failed: {exc}") from None


def limit_findings(summary: dict, policy) -> list[Finding]:
    """Each shard over the limit on its own (estimated as the pool is: same calibration, same rule),
    then, when the changed shards together are over it, every other shard that has flagged records."""
    from collapseguard.scan.prevalence import synthetic_share
    from collapseguard.scan.summary import fmt_share, over_limit, unproven_within

    fpr = tpr = None
    if policy.calibration_path is not None:
        from collapseguard.scan.calibrate import read_policy_calibration

        cal = read_policy_calibration(policy.calibration_path)
        fpr, tpr = (cal.fpr().k, cal.fpr().n), (None if cal.tpr() is None else (cal.tpr().k, cal.tpr().n))
    limit = summary["max_synthetic_share"]
    findings, reported = [], set()
    for row in summary["shards"]:
        share = synthetic_share(row["synthetic"], row["synthetic"] + row["human"], fpr, tpr)
        if over_limit(share, limit):
            reported.add(row["shard"])
            findings.append(Finding(row["shard"], "scan", f"{row['synthetic']} of {row['records']} records flagged "
                                    f"synthetic; its synthetic share {fmt_share(share)} is over the policy's limit {limit}"))
    if summary.get("over_limit"):
        pooled = f"the changed shards' synthetic share together, {fmt_share(summary['synthetic_share'])}, is over " \
                 f"the policy's limit {limit}"
        rows = [r for r in summary["shards"] if r["synthetic"] and r["shard"] not in reported]
        findings += [Finding(r["shard"], "scan", f"{r['synthetic']} of {r['records']} records flagged synthetic; {pooled}")
                     for r in rows]
        if not findings:
            findings.append(Finding(summary["shards"][0]["shard"], "scan", pooled))
    elif unproven_within(summary):
        findings.append(Finding(summary["shards"][0]["shard"], "scan",
                                "no estimate of the changed shards' synthetic share could be made (the estimator's "
                                f"assumptions failed or nothing was decided), so it cannot be shown within the policy's "
                                f"limit {limit}; run `collapseguard scan` on them and read summary.md"))
    return findings


def _relative_name(path: Path) -> str:
    """The path as scan should name it: relative to the current folder when inside it."""
    try:
        return link_path(path).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix().lstrip("/")
