"""Scan one shard into its attribute shard and completion marker (the unit every engine runs).

`OUT/attributes/<rel>.parquet` is row-aligned with the input: `source`, `index`, `sha256` of the
text, one score column per detector (null = abstained), `decision`, `reason`. It is written
under a fixed `.partial` name and renamed; the marker `OUT/markers/<rel>.json` (input sha256,
policy fingerprint, calibration hash, counts) is written last, so a shard is done only when its
marker exists and matches. A killed run leaves at most a `.partial` file, which the rerun
replaces.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from collapseguard.io.shards import Shard, iter_chunks
from collapseguard.scan.policy import decide_records, screen_texts

MARKER_VERSION = 1


def attributes_path(out: Path, rel: str) -> Path:
    """The attribute shard of the input shard at relative path `rel`."""
    return out / "attributes" / f"{rel}.parquet"


def marker_path(out: Path, rel: str) -> Path:
    return out / "markers" / f"{rel}.json"


def read_marker(out: Path, shard: Shard) -> dict | None:
    try:
        marker = json.loads(marker_path(out, shard.rel).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def other_input(marker: dict | None, shard: Shard) -> str | None:
    """The input file a marker under `shard`'s name was written for, when that is another existing
    file (two inputs of one name scanned into one --out); else None."""
    other = (marker or {}).get("input")
    if not isinstance(other, str) or not os.path.exists(other) or os.path.samefile(other, shard.path):
        return None
    return other


def is_done(marker: dict | None, out: Path, shard: Shard, key: dict) -> bool:
    """Whether the shard's `marker` (`read_marker`) matches `key` (input sha256, policy fingerprint,
    calibration hash) and its attributes are there."""
    return bool(marker) and all(marker.get(k) == v for k, v in key.items()) and attributes_path(out, shard.rel).exists()


def text_sha256(texts) -> list[str | None]:
    from collapseguard.io.columns import text_sha256 as one

    return [None if t is None else one(t) for t in texts]


def attribute_schema(columns: list[str]):
    import pyarrow as pa

    return pa.schema([("source", pa.string()), ("index", pa.int64()), ("sha256", pa.string()),
                      *[(c, pa.float64()) for c in columns], ("decision", pa.string()), ("reason", pa.string())])


def scan_shard(policy, calibration, shard: Shard, out: Path, key: dict, progress=None, attributes: bool = True) -> dict:
    """Score every record of `shard`, write its attribute shard (unless `attributes` is False: the
    hooks read only the counts) and marker; return the marker."""
    columns = policy.column_names()
    counts = Counts(columns)
    batches = scored_batches(policy, calibration, shard, counts, progress, key.get("drift_abstain"))
    if attributes:
        write_attributes(batches, attribute_schema(columns), attributes_path(out, shard.rel), shard.rel)
    else:
        for _ in batches:
            pass
    marker = {"collapseguard_scan_marker": MARKER_VERSION, "shard": shard.rel, "input": str(shard.path.resolve()),
              **key, **counts.as_dict()}
    write_json(marker_path(out, shard.rel), marker)
    return marker


def scored_batches(policy, calibration, shard: Shard, counts, progress=None, drift_reason: str | None = None):
    """Per chunk of `shard`: (start, texts, scores, decision, reason), tallied into `counts`
    (every record abstains with `drift_reason` when given: `on_drift = "abstain"`)."""
    columns = policy.column_names()
    for chunk in iter_chunks(shard, policy.text_column, policy.batch_size, text_only=True):
        texts, unreadable = screen_texts(chunk.texts, policy.max_chars)
        scores = policy.score_screened(texts, unreadable)
        decision, reason, thresholds = decide_records(scores, calibration, texts, columns, unreadable, drift_reason)
        counts.add(scores, thresholds, decision)
        yield chunk.start, texts, scores, decision, reason
        if progress is not None:
            progress(len(texts))


def write_attributes(batches, schema, final: Path, rel: str) -> None:
    """The scored `batches` as one parquet attribute shard, written under `.partial` and renamed."""
    import pyarrow.parquet as pq

    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    try:
        with pq.ParquetWriter(partial, schema) as writer:
            for batch in batches:
                writer.write_batch(attribute_batch(schema, rel, *batch))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, final)


def attribute_batch(schema, rel: str, start: int, texts, scores: np.ndarray, decision, reason):
    import pyarrow as pa

    n = len(texts)
    arrays = [pa.array([rel] * n, pa.string()), pa.array(np.arange(start, start + n), pa.int64()),
              pa.array(text_sha256(texts), pa.string()),
              *[pa.array(scores[:, j], pa.float64(), mask=np.isnan(scores[:, j])) for j in range(scores.shape[1])],
              pa.array(decision, pa.string()), pa.array(reason, pa.string())]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_json(path: Path, obj) -> None:
    """Write JSON under a fixed `.partial` name and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(finite(obj), indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def finite(obj):
    """`obj` with NaN and infinite floats as None, so the JSON is valid everywhere."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class Counts:
    """Per-shard tallies: records, decisions, and per detector flagged / abstained."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.records = 0
        self.decisions = {"synthetic": 0, "human": 0, "abstain": 0}
        self.flagged = dict.fromkeys(columns, 0)
        self.abstained = dict.fromkeys(columns, 0)

    def add(self, scores: np.ndarray, thresholds, decision: list[str]) -> None:
        self.records += len(decision)
        for d in decision:
            self.decisions[d] += 1
        with np.errstate(invalid="ignore"):
            t = np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape)
            for j, c in enumerate(self.columns):
                self.flagged[c] += int((scores[:, j] > t[:, j]).sum())
                self.abstained[c] += int(np.isnan(scores[:, j]).sum())

    def as_dict(self) -> dict:
        return {"records": self.records, "decisions": self.decisions,
                "detectors": {c: {"flagged": self.flagged[c], "abstained": self.abstained[c]} for c in self.columns}}

