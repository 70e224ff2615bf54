"""Provenance manifests: an in-toto Statement v1 whose subjects are the data files (sha256) and whose
predicate holds the dataset's identity and freshness (name, version, creation time, the previous
manifest's digest), record counts, per-origin counts, the scan's synthetic share, the guard policy's
fingerprint and calibration hash, parent manifests and the tool version.

One manifest file holds either the unsigned statement or the DSSE envelope that signs it
(`collapseguard.provenance.dsse`). Subject names are POSIX paths relative to the manifest's root.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.io.shapes import NUMBER, ListOf, MapOf, Optional, check_shape

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://collapseguard.dev/provenance/v1"
MANIFEST_NAME = "manifest.json"
ORIGINS = ("human", "synthetic", "unknown")
# scan decisions -> provenance origins
DECISION_ORIGIN = {"human": "human", "synthetic": "synthetic", "abstain": "unknown"}
FIX = "rebuild it with `collapseguard provenance build`"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def included(rel: str, include) -> bool:
    """Whether the relative POSIX path matches one of the `include` globs (by path or by name)."""
    return any(fnmatch.fnmatchcase(rel, g) or fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], g) for g in include)


def walk(root: Path) -> list[Path]:
    """Every path under `root`, sorted, descending into symlinked folders as glob, pyarrow and
    `datasets` do (each real folder once, so a link loop ends)."""
    found, seen = [], set()
    for top, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(top, n) for n in dirs + files]
    return sorted(found)


def data_files(root: str | Path, exclude: tuple = (), include=()) -> list[str]:
    """Every data file under `root` (the shard suffixes scan reads, every file inside a saved
    `datasets` folder, and files matching the `include` globs), as sorted POSIX paths relative to
    `root`, symlinked folders followed; hidden paths, manifests and `exclude` (relative names) are
    left out."""
    from collapseguard.io.shards import format_of, is_saved_dataset

    root = Path(root)
    if not root.is_dir():
        raise CollapseguardError(f"{root}: not a folder; pass the folder that holds the data files")
    found = []
    for path in walk(root):
        rel = path.relative_to(root)
        if is_hidden(rel) or path.name == MANIFEST_NAME or rel.as_posix() in exclude:
            continue
        in_dataset = any(is_saved_dataset(p) for p in path.parents[:len(rel.parts)])
        wanted = in_dataset or format_of(path) not in (None, "datasets") or included(rel.as_posix(), include)
        if (path.is_file() or (path.is_symlink() and not path.is_dir())) and wanted:
            found.append(rel.as_posix())
    return found


def count_records(path: Path, as_text: bool = False) -> int | None:
    """Records in one data file, counted as scan counts them (parquet rows, non-blank lines); None
    for other files (a saved `datasets` folder's) unless `as_text` (then non-blank lines)."""
    from collapseguard.io.shards import Shard, format_of, open_binary

    fmt = format_of(path) or ("text" if as_text else None)
    if fmt is None or fmt == "datasets":
        return None
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
            raise CollapseguardError(f"{path}: not a readable parquet file ({exc}); check or re-export it") from None
    with open_binary(Shard(path, path.name, fmt)) as f:
        return sum(1 for line in f if line.strip())


def declared_origins(path: Path) -> dict | None:
    """Counts per value of the file's own `origin` column (parquet or jsonl), or None without one;
    a value other than human, synthetic, unknown (or the legacy `model`) is refused."""
    from collapseguard.io.shards import format_of

    fmt = format_of(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if "origin" not in pf.schema_arrow.names:
            return None
        values = pf.read(columns=["origin"]).column(0).to_pylist()
    elif fmt == "jsonl":
        from collapseguard.io.shards import Shard, open_binary

        values = []
        with open_binary(Shard(path, path.name, fmt)) as f:
            for line in f:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        obj = {}
                    values.append(obj.get("origin") if isinstance(obj, dict) else None)
        if all(v is None for v in values):
            return None
    else:
        return None
    from collapseguard.io.columns import check_value, origin_counts

    return origin_counts([check_value("origin", v, path, i) for i, v in enumerate(values)])


def scan_evidence(root: Path, names: list[str], scan_dir: str | Path, digests: dict) -> dict:
    """Detected origin counts per file (from `scan --out` attribute shards) and the summary's share.

    Every shard the scan read must be one of these files, byte for byte (`digests`: name -> sha256,
    a saved `datasets` folder hashed as scan hashes it): the scan of another folder, or of other
    bytes, is refused, since its share would be stated for records it never saw."""
    import pyarrow.parquet as pq

    scan_dir = Path(scan_dir)
    summary_path = scan_dir / "summary.json"
    if not summary_path.is_file():
        raise CollapseguardError(f"{scan_dir}: no summary.json; pass the `collapseguard scan --out` folder of this data")
    from collapseguard.io.readers import read_json_file

    summary = read_json_file(summary_path, "scan summary", "rerun `collapseguard scan`")
    ours = {sha: name for name, sha in digests.items()}
    rows = summary.get("shards") if isinstance(summary, dict) else None
    if not isinstance(rows, list) or not rows:
        raise CollapseguardError(f"{summary_path}: lists no shards; pass the `collapseguard scan --out` folder of this data")
    per_file = {}
    for row in rows:
        rel, sha = (row.get("shard"), row.get("input_sha256")) if isinstance(row, dict) else (None, None)
        name = ours.get(sha) or _saved_dataset_match(root, rel, sha)
        if name is None:
            raise CollapseguardError(f"{scan_dir}: scanned {rel!r}, which is not one of the files under {root} "
                                     "(no file has its sha256); pass the scan of this data, or rescan it")
        shard = scan_dir / "attributes" / f"{rel}.parquet"
        if not shard.is_file():
            raise CollapseguardError(f"{shard}: missing from the scan folder; rerun `collapseguard scan`")
        counts = {o: 0 for o in ORIGINS}
        for d in pq.read_table(shard, columns=["decision"]).column(0).to_pylist():
            counts[DECISION_ORIGIN.get(d, "unknown")] += 1
        if name in digests:  # a saved `datasets` folder has no file of its own to count against
            per_file[name] = counts
    missing = [n for n in names if n not in per_file]
    return {"per_file": per_file, "missing": missing, "synthetic_share": summary.get("synthetic_share"),
            "summary_sha256": sha256_file(summary_path), "max_synthetic_share": summary.get("max_synthetic_share"),
            "over_limit": summary.get("over_limit")}


def _saved_dataset_match(root: Path, rel, sha) -> str | None:
    """`rel` when it names a saved `datasets` folder under `root` whose scan hash is `sha`."""
    from collapseguard.io.shards import Shard, is_saved_dataset, shard_sha256

    if not isinstance(rel, str) or ".." in Path(rel).parts or Path(rel).is_absolute():
        return None
    folder = root / rel
    if folder.is_dir() and is_saved_dataset(folder) and shard_sha256(Shard(folder, rel, "datasets")) == sha:
        return rel
    return None


def policy_evidence(policy) -> dict:
    """The guard policy's fingerprint and the sha256 of its calibration file (and its human set)."""
    from collapseguard.scan.policy import GuardPolicy, load_policy

    if not isinstance(policy, GuardPolicy):
        policy = load_policy(policy)
    out = {"fingerprint": policy.fingerprint(), "max_synthetic_share": policy.max_synthetic_share,
           "text_column": policy.text_column, "calibration": None}
    cal = policy.calibration_path
    if cal is not None and cal.is_file():
        from collapseguard.io.readers import read_json_file

        raw = read_json_file(cal, "calibration", "recalibrate with `collapseguard policy calibrate`")
        raw = raw if isinstance(raw, dict) else {}
        out["calibration"] = {"path": policy.calibration, "sha256": sha256_file(cal),
                              "human_sha256": raw.get("human_sha256"), "machine_sha256": raw.get("machine_sha256")}
    return out


def relative_to_folder(path: str | Path, folder: str | Path) -> str:
    """`path` as a POSIX path relative to `folder` (`..` where needed): what a published manifest
    may say about a local path, never an absolute one."""
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def parent_entry(path: str | Path, manifest_dir: Path) -> dict:
    """A parent manifest: its path relative to the folder of the manifest that names it (resolve
    it from there) and the sha256 of its bytes."""
    path = Path(path)
    if not path.is_file():
        raise CollapseguardError(f"{path}: no such parent manifest; pass the manifest.json of the data this came from")
    read_manifest(path)
    return {"path": relative_to_folder(path, manifest_dir), "sha256": sha256_file(path)}


def created_now() -> str:
    """The creation time, UTC to the second; SOURCE_DATE_EPOCH (reproducible builds) pins it."""
    from datetime import datetime, timezone

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise CollapseguardError(f"SOURCE_DATE_EPOCH={epoch!r}: not a whole number of seconds since 1970") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def dataset_identity(name: str, *, version: str | None = None, previous: str | Path | None = None) -> dict:
    """The statement's `dataset` field: name, version, creation time and the previous manifest
    (the sha256 of its bytes, its version and creation time), so that a swap for another dataset
    and a rollback to an older manifest can be refused (`verify --name`, `--not-older-than`).
    `version` defaults to the previous version plus one when that is a whole number, else "1"."""
    if not isinstance(name, str) or not name.strip():
        raise CollapseguardError("the dataset needs a name; pass --name NAME")
    before = None
    if previous is not None and Path(previous).is_file():
        old = identity_of(statement_of(read_manifest(previous), previous)) or {}
        before = {"sha256": sha256_file(previous), "version": old.get("version"), "created": old.get("created")}
    if version is None:
        last = (before or {}).get("version")
        version = str(int(last) + 1) if isinstance(last, str) and last.isdigit() else "1"
    return {"name": name, "version": str(version), "created": created_now(), "previous": before}


def identity_of(statement: dict) -> dict | None:
    """The statement's dataset identity, or None for a manifest built before it was recorded."""
    ident = statement.get("predicate", {}).get("dataset")
    return ident if isinstance(ident, dict) else None


def build_statement(root, files=None, *, parents=(), policy=None, counts=None, synthetic_share=None,
                    extra=None, attributes=None, include=(), dataset=None, manifest_dir=None) -> dict:
    """The in-toto Statement for the data files under `root`.

    files: names relative to `root` (default: every data file, see `data_files`); parents: paths
    of parent manifests; policy: a GuardPolicy or its TOML path; counts: records per origin for
    the whole set (else summed from the files' own `origin` column or the scan attributes);
    synthetic_share: the scan's estimate dict (else from `attributes`, a `scan --out` folder);
    extra: more predicate fields; include: globs of more data files (e.g. "*.tokens", read as
    text, one record per non-blank line), recorded so that verify looks for added ones too;
    dataset: the identity (`dataset_identity`; default: named after `root`, version 1);
    manifest_dir: the folder the manifest will be written to (default `root`), which parent
    paths are relative to.
    """
    from collapseguard import __version__

    root = Path(root)
    include = list(include)
    names = sorted(data_files(root, include=include)) if files is None else sorted(_relative(root, f) for f in files)
    if not names:
        raise CollapseguardError(f"{root}: no data files (.parquet, .jsonl, .txt, ...); nothing to put in a manifest")
    subjects, entries, declared = [], {}, {o: 0 for o in ORIGINS}
    any_declared = False
    for name in names:
        path = root / name
        if not path.is_file():
            raise CollapseguardError(f"{path}: no such data file; pass files that exist under {root}")
        if not path.resolve().is_relative_to(root.resolve()):
            raise CollapseguardError(f"{path}: a symlink out of {root} (to {path.resolve()}); a manifest covers only "
                                     "files inside its folder: copy the file in or remove the link")
        subjects.append({"name": name, "digest": {"sha256": sha256_file(path)}})
        entry = {"size": path.stat().st_size, "records": count_records(path, included(name, include))}
        origins = declared_origins(path)
        if origins is not None:
            entry["origin_counts"] = origins
            any_declared = True
            for k, v in origins.items():
                declared[k] += v
        entries[name] = entry
    predicate = {"dataset": dataset if dataset is not None else dataset_identity(root.resolve().name),
                 "files": entries, "records": sum(e["records"] or 0 for e in entries.values()),
                 "origin_counts": counts if counts is not None else (declared if any_declared else None),
                 "synthetic_share": synthetic_share, "policy": None, "scan": None,
                 "parents": [parent_entry(p, Path(manifest_dir or root)) for p in parents], "tool": "collapseguard",
                 "tool_version": __version__}
    if attributes is not None:
        evidence = scan_evidence(root, names, attributes, {s["name"]: s["digest"]["sha256"] for s in subjects})
        for name, detected in evidence.pop("per_file").items():
            entries[name]["detected_counts"] = detected
        if predicate["synthetic_share"] is None:
            predicate["synthetic_share"] = evidence["synthetic_share"]
        predicate["scan"] = evidence
    if policy is not None:
        predicate["policy"] = policy_evidence(policy)
    if include:
        predicate["include"] = include
    predicate.update(extra or {})
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def _relative(root: Path, name) -> str:
    path = Path(name)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            raise CollapseguardError(f"{path}: not under {root}; manifests cover files inside their folder") from None
    return path.as_posix()


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_manifest(path, doc: dict) -> None:
    """Write a statement or envelope as JSON, atomically."""
    from collapseguard.io.atomic import write_text_atomic

    write_text_atomic(path, dumps(doc))


def read_manifest(path) -> dict:
    """A manifest file's document (statement or DSSE envelope), its fields checked."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: no such manifest; {FIX}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CollapseguardError(f"{path}: not a JSON manifest ({str(exc).splitlines()[0]}); {FIX}") from None
    if not isinstance(doc, dict):
        raise CollapseguardError(f"{path}: a manifest is a JSON object, got {type(doc).__name__}; {FIX}")
    if is_envelope(doc):
        check_envelope(doc, path)
        check_statement(decode_payload(doc, path), f"{path} (signed payload)")
    else:
        check_statement(doc, path)
    return doc


def is_envelope(doc: dict) -> bool:
    return "payloadType" in doc or "signatures" in doc or "payload" in doc


def check_envelope(doc: dict, where) -> None:
    for key, kind in (("payload", str), ("payloadType", str), ("signatures", list)):
        if not isinstance(doc.get(key), kind):
            raise CollapseguardError(f"{where}: DSSE envelope lacks {key!r} ({kind.__name__}); sign the statement again "
                                     "with `collapseguard provenance sign`")
    for i, sig in enumerate(doc["signatures"]):
        if not isinstance(sig, dict) or not isinstance(sig.get("sig"), str):
            raise CollapseguardError(f"{where}: signatures[{i}] lacks 'sig'; sign the statement again")
        if not isinstance(sig.get("keyid", ""), str):
            raise CollapseguardError(f"{where}: signatures[{i}].keyid is not a string; sign the statement again")


def decode_payload(doc: dict, where) -> dict:
    """The statement inside an envelope, decoded but not verified."""
    from collapseguard.provenance.dsse import b64decode

    try:
        raw = b64decode(doc["payload"])
        statement = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise CollapseguardError(f"{where}: the envelope's payload is not base64 JSON ({exc}); sign it again") from None
    if not isinstance(statement, dict):
        raise CollapseguardError(f"{where}: the envelope's payload is not a JSON object; sign it again")
    return statement


def check_statement(doc: dict, where) -> None:
    """Raise unless `doc` is an in-toto Statement v1 with our predicate."""
    if doc.get("_type") != STATEMENT_TYPE:
        raise CollapseguardError(f"{where}: _type is {doc.get('_type')!r}, not {STATEMENT_TYPE!r}; {FIX}")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise CollapseguardError(f"{where}: predicateType is {doc.get('predicateType')!r}, not {PREDICATE_TYPE!r}; {FIX}")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise CollapseguardError(f"{where}: no 'subject' list of files; {FIX}")
    for i, s in enumerate(subjects):
        ok = isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("digest"), dict) \
            and isinstance(s["digest"].get("sha256"), str)
        if not ok:
            raise CollapseguardError(f"{where}: subject[{i}] needs a name and digest.sha256; {FIX}")
    if not isinstance(doc.get("predicate"), dict):
        raise CollapseguardError(f"{where}: no 'predicate' object; {FIX}")
    check_shape(doc["predicate"], PREDICATE_SHAPE, where, FIX, "predicate")


# the predicate fields the readers (verify, card, croissant, hooks) use, with their types
PREDICATE_SHAPE = {
    "files": Optional(MapOf(dict)), "records": Optional(int), "tool_version": Optional(str),
    "parents": Optional(ListOf({"path": str, "sha256": str})), "include": Optional(ListOf(str)),
    "policy": Optional({"calibration": Optional(dict)}), "origin_counts": Optional(MapOf(int)),
    "synthetic_share": Optional({"low": Optional(NUMBER)}),
}


def statement_of(doc: dict, where="manifest") -> dict:
    """The statement of a manifest document (an envelope's payload is decoded, NOT verified)."""
    return decode_payload(doc, where) if is_envelope(doc) else doc
