"""Record-level provenance: the columns every shard may carry, and the one place they are read
and checked.

| column       | type           | meaning                                                              |
|--------------|----------------|----------------------------------------------------------------------|
| `origin`     | string         | `human`, `synthetic` or `unknown`                                    |
| `source`     | string         | where the record came from (dataset, file and record, URL)           |
| `license`    | string         | the record's license (SPDX id where there is one)                    |
| `generator`  | string         | the model that wrote it (id or path); null for human text            |
| `generation` | int32          | the model generation that wrote it (0 = a model trained on human data); null for human text |
| `parent_ids` | list<string>   | ids (text sha256) of the records it was derived from; empty for original text |
| `sha256`     | string         | hex sha256 of the record's UTF-8 text                                |

Detector evidence rides along under the names `collapseguard scan` gives its attribute columns:
`decision` (synthetic / human / abstain), `reason`, and one float column per detector.

Older files of the LM loop used `source_generation` (-1 for human text), `parent_model` ("" for
human text) and origin `model`; `normalise` reads them as the new names.
"""

from __future__ import annotations

import hashlib

from collapseguard.errors import CollapseguardError

ORIGINS = ("human", "synthetic", "unknown")
DECISIONS = ("synthetic", "human", "abstain")
PROVENANCE = ("origin", "source", "license", "generator", "generation", "parent_ids", "sha256")
EVIDENCE = ("decision", "reason")
LEGACY_NAMES = {"source_generation": "generation", "parent_model": "generator"}
LEGACY_ORIGINS = {"model": "synthetic"}


def arrow_types() -> dict:
    """Column name -> pyarrow type, for the provenance and evidence columns."""
    import pyarrow as pa

    return {"origin": pa.string(), "source": pa.string(), "license": pa.string(), "generator": pa.string(),
            "generation": pa.int32(), "parent_ids": pa.list_(pa.string()), "sha256": pa.string(),
            "decision": pa.string(), "reason": pa.string()}


def schema(text_column: str = "text", scores: tuple = ()):
    """The schema of a shard with full provenance: text, the provenance columns, the evidence
    (decision, reason, one float64 per detector score in `scores`)."""
    import pyarrow as pa

    types = arrow_types()
    fields = [(text_column, pa.string())] + [(c, types[c]) for c in PROVENANCE + EVIDENCE]
    return pa.schema(fields + [(s, pa.float64()) for s in scores])


def text_sha256(text: str) -> str:
    """The record id: hex sha256 of the text's UTF-8 bytes (as scan's attribute shards compute it)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _fix(column: str) -> str:
    if column == "origin":
        return f"use one of {', '.join(ORIGINS)}"
    if column == "decision":
        return f"use one of {', '.join(DECISIONS)} (rescan with `collapseguard scan`)"
    if column == "generation":
        return "use a whole number >= 0, or null for human text"
    if column == "parent_ids":
        return "use a list of record ids (strings)"
    if column == "sha256":
        return "recompute it as the hex sha256 of the UTF-8 text"
    return "use a string or null"


def _bad(where, column: str, row: int, value) -> CollapseguardError:
    return CollapseguardError(f"{where}: column {column!r} holds {value!r} in record {row}; {_fix(column)}")


def check_value(column: str, value, where, row: int):
    """One provenance value, checked and normalised (legacy origin `model`, generation -1 -> null;
    a missing value stays None: not declared)."""
    if value is None:  # not declared (an absent origin counts as unknown in `origin_counts`)
        return [] if column == "parent_ids" else None
    if column in ("origin", "decision"):
        value = LEGACY_ORIGINS.get(value, value) if column == "origin" else value
        if value not in (ORIGINS if column == "origin" else DECISIONS):
            raise _bad(where, column, row, value)
        return value
    if column == "generation":
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise _bad(where, column, row, value)
        return None if value == -1 else value
    if column == "parent_ids":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _bad(where, column, row, value)
        return list(value)
    if column == "sha256":
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            raise _bad(where, column, row, value)
        return value
    if not isinstance(value, str):
        raise _bad(where, column, row, value)
    return value or None if column == "generator" else value


def normalise(columns: dict, where, start: int = 0, texts: list | None = None) -> dict:
    """Provenance columns (name -> list of values, legacy names allowed) checked and renamed.

    `where` names the file for error messages; `start` is the first record's index; with
    `texts`, a `sha256` column must match the text of its record.
    """
    out = {}
    for name, values in columns.items():
        column = LEGACY_NAMES.get(name, name)
        if column not in PROVENANCE + EVIDENCE or (column in out and name != column):
            continue
        out[column] = [check_value(column, v, where, start + i) for i, v in enumerate(values)]
    if texts is not None and "sha256" in out:
        for i, (digest, text) in enumerate(zip(out["sha256"], texts)):
            if digest is not None and isinstance(text, str) and digest != text_sha256(text):
                raise CollapseguardError(f"{where}: column 'sha256' of record {start + i} is not the sha256 of its "
                                         f"text; {_fix('sha256')}")
    return out


def from_batch(batch, where, start: int = 0, texts: list | None = None) -> dict:
    """The provenance columns present in a pyarrow RecordBatch or Table, checked (see `normalise`)."""
    names = [n for n in batch.schema.names if LEGACY_NAMES.get(n, n) in PROVENANCE + EVIDENCE]
    return normalise({n: batch.column(n).to_pylist() for n in names}, where, start, texts)


def from_records(records: list, where, start: int = 0, texts: list | None = None) -> dict:
    """The provenance fields present in JSON records (dicts; other values have none), checked."""
    present = sorted({k for r in records if isinstance(r, dict) for k in r
                      if LEGACY_NAMES.get(k, k) in PROVENANCE + EVIDENCE})
    columns = {k: [r.get(k) if isinstance(r, dict) else None for r in records] for k in present}
    return normalise(columns, where, start, texts)


def read_table(path, text_column: str | None = None) -> dict:
    """The provenance columns of a parquet file, checked (against `text_column` when given)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses
        raise CollapseguardError(f"{path}: not a readable parquet file ({exc}); check or re-export it") from None
    texts = None
    if text_column is not None:
        if text_column not in table.schema.names:
            raise CollapseguardError(f"{path}: no column {text_column!r} (has: {', '.join(table.schema.names)}); "
                                     "pass the text column")
        texts = table.column(text_column).to_pylist()
    return from_batch(table, path, 0, texts)


def origin_counts(origins: list) -> dict:
    """Records per origin (every origin listed, zeros included; an undeclared one is unknown)."""
    counts = dict.fromkeys(ORIGINS, 0)
    for o in origins:
        counts[o or "unknown"] += 1
    return counts
