"""Split shards into kept and rejected records by their scan decisions, in the input's own format.

`OUT/kept/<rel>` and `OUT/rejected/<rel>` mirror the input layout. A record the scan abstained
on (unreadable, too long, no detector could score it, out of a detector's support) is neither
human nor machine: with `--keep human` (the default) it goes to `OUT/abstained/<rel>`, neither
kept nor rejected, for review; `--keep human+abstain` keeps it. The counts say how many. Parquet and `datasets` shards
keep their schema with `collapseguard_decision` and `collapseguard_reason` appended; jsonl
records get the same two fields; plain-text lines are copied as they are. Attributes are
refused unless their marker holds the input's sha256 and their row count matches.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.shards import Shard, discover, input_folders, iter_chunks, shard_sha256
from collapseguard.scan.shard import attributes_path, other_input, read_marker

KEEP = {"human": ("human",), "human+abstain": ("human", "abstain")}
DECISION, REASON = "collapseguard_decision", "collapseguard_reason"


@dataclass
class FilterConfig:
    """What `collapseguard filter` takes."""

    inputs: list[str]
    attributes: str
    out: str
    keep: str = "human"
    overwrite: bool = False
    batch_size: int = 4096

    def check(self) -> None:
        check_choice("--keep", self.keep, KEEP)
        if not Path(self.attributes).is_dir():
            raise CollapseguardError(f"{self.attributes}: no such scan output folder; run `collapseguard scan ... --out DIR` first")


def run_filter(config: FilterConfig) -> dict:
    """Write kept and rejected shards; return per-shard and total counts."""
    from collapseguard.io.outputs import check_not_input

    config.check()
    out, attrs = Path(config.out), Path(config.attributes)
    check_not_input(out, [*input_folders(config.inputs), attrs])
    shards = discover(config.inputs, exclude=out)
    columns = _text_column(attrs)
    plans = [(s, check_attributes(attrs, s)) for s in shards]
    with claimed(out, config, shards):
        rows = [filter_shard(s, table, columns, out, KEEP[config.keep], config.batch_size) for s, table in plans]
    total = {k: sum(r[k] for r in rows) for k in ("kept", "rejected", "abstained", "abstain_kept")}
    return {**total, "shards": rows, "keep": config.keep}


def _text_column(attrs: Path) -> str:
    try:
        column = json.loads((attrs / "summary.json").read_text(encoding="utf-8"))["text_column"]
        if isinstance(column, str):
            return column
    except (OSError, ValueError, KeyError, TypeError):
        pass
    raise CollapseguardError(f"{attrs}: no readable summary.json from `collapseguard scan`; pass the scan's --out folder")


def check_attributes(attrs: Path, shard: Shard):
    """The shard's attribute table, refused when it was made from other bytes."""
    import pyarrow.parquet as pq

    marker = read_marker(attrs, shard)
    if not isinstance(marker, dict) or not attributes_path(attrs, shard.rel).exists():
        raise CollapseguardError(f"{shard.path}: no attributes in {attrs} (looked for {attributes_path(attrs, shard.rel)}); "
                                 "scan it first with the same inputs")
    if marker.get("input_sha256") != shard_sha256(shard):
        other = other_input(marker, shard)
        if other is not None:
            raise CollapseguardError(f"{shard.path}: changed since it was scanned, or is another file than the one "
                                     f"{attrs} holds the scan of ({other}, other bytes); scan it into its own --out")
        raise CollapseguardError(f"{shard.path}: changed since it was scanned (sha256 differs from {attrs}'s marker); "
                                 "rescan it with `collapseguard scan`")
    path = attributes_path(attrs, shard.rel)
    try:
        table = pq.read_table(path, columns=["decision", "reason"])
    except Exception as exc:  # truncated or corrupt parquet, or columns missing: pyarrow raises several kinds
        raise CollapseguardError(f"{path}: not a readable attribute shard ({type(exc).__name__}: {str(exc)[:120]}); "
                                 f"rescan {shard.path} with `collapseguard scan`") from None
    if not all(isinstance(v, str) for c in ("decision", "reason") for v in table.column(c).to_pylist()):
        raise CollapseguardError(f"{path}: decision and reason must be text in every row; rescan {shard.path}")
    return table


def claimed(out: Path, config: FilterConfig, shards: list[Shard]):
    """The output folder for the run (io.outputs.claimed_output_dir: a failed run leaves no empty folders)."""
    from collapseguard.io.outputs import claimed_output_dir

    inputs = [s.path for s in shards] + [Path(config.attributes), *input_folders(config.inputs)]
    return claimed_output_dir(out, lock=True, command="filter", settings={"keep": config.keep},
                              overwrite=config.overwrite, inputs=inputs)


def filter_shard(shard: Shard, table, column: str, out: Path, keep: tuple, batch_size: int) -> dict:
    """Kept records to `kept/`, synthetic ones to `rejected/`, abstentions not kept to `abstained/`."""
    decisions, reasons = table.column("decision").to_pylist(), table.column("reason").to_pylist()
    writer = {"parquet": ParquetSplit, "datasets": DatasetSplit}.get(shard.fmt, LineSplit)
    sides = ("kept", "rejected") if "abstain" in keep else ("kept", "rejected", "abstained")  # no empty folder

    def side(d: str) -> str:
        return "kept" if d in keep else "abstained" if d == "abstain" else "rejected"

    with contextlib.ExitStack() as stack:
        splits = {name: stack.enter_context(writer(shard, out / name / shard.rel)) for name in sides}
        n = 0
        for chunk in iter_chunks(shard, column, batch_size):
            d, r = decisions[chunk.start:chunk.start + len(chunk)], reasons[chunk.start:chunk.start + len(chunk)]
            if len(d) != len(chunk):
                raise CollapseguardError(f"{shard.path}: has more records than its attributes ({len(decisions)}); rescan it")
            where = [side(x) for x in d]
            for name in sides:
                splits[name].write(chunk, d, r, [w == name for w in where])
            n += len(chunk)
        if n != len(decisions):
            raise CollapseguardError(f"{shard.path}: has {n} records but its attributes {len(decisions)}; rescan it")
    abstain_kept = sum(x == "abstain" for x in decisions) if "abstain" in keep else 0
    return {"shard": shard.rel, "kept": splits["kept"].count, "rejected": splits["rejected"].count,
            "abstained": splits["abstained"].count if "abstained" in splits else 0, "abstain_kept": abstain_kept}


class Split:
    """Write one output shard under `<path>.partial`, renamed into place on success."""

    def __init__(self, shard: Shard, path: Path):
        self.shard, self.path, self.count = shard, path, 0
        self.partial = path.with_name(path.name + ".partial")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.open()
        return self

    def __exit__(self, kind, *_):
        self.close()
        if kind is None:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)  # the partial file this split opened


class ParquetSplit(Split):
    def open(self):
        self.writer = None

    def write(self, chunk, decisions, reasons, mask):
        import pyarrow as pa
        import pyarrow.parquet as pq

        batch = with_decisions(chunk.raw, decisions, reasons).filter(pa.array(mask, pa.bool_()))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.partial, batch.schema)
        self.writer.write_batch(batch)
        self.count += batch.num_rows

    def close(self):
        if self.writer is None:  # an empty split still gets the schema
            import pyarrow.parquet as pq

            schema = pq.read_schema(self.shard.path)
            pq.write_table(with_decisions(schema.empty_table(), [], []), self.partial)
        else:
            self.writer.close()


class DatasetSplit(Split):
    """A saved `datasets` folder: batches are held in memory and saved only on success, through
    `atomic_folder` (a temporary folder whose files then replace those in `path`)."""

    def open(self):
        self.batches = []

    def write(self, chunk, decisions, reasons, mask):
        import pyarrow as pa

        batch = with_decisions(chunk.raw, decisions, reasons).filter(pa.array(mask, pa.bool_()))
        self.batches.append(batch)
        self.count += batch.num_rows

    def close(self):
        pass

    def __exit__(self, kind, *_):
        if kind is None:
            self.save()

    def save(self):
        import datasets
        import pyarrow as pa

        from collapseguard.io.atomic import atomic_folder

        if self.batches:
            table = pa.Table.from_batches(self.batches)
        else:
            from collapseguard.io.shards import saved_dataset_table

            table = with_decisions(saved_dataset_table(self.shard.path).schema.empty_table(), [], [])
        with atomic_folder(self.path) as tmp:
            datasets.Dataset(table).save_to_disk(str(tmp))


class LineSplit(Split):
    def open(self):
        if self.shard.compression == "gzip":
            self.f = gzip.GzipFile(self.partial, "wb", mtime=0)
        elif self.shard.compression == "zstd":
            import pyarrow as pa

            self.f = pa.CompressedOutputStream(str(self.partial), "zstd")
        else:
            self.f = open(self.partial, "wb")

    def write(self, chunk, decisions, reasons, mask):
        for raw, d, r, m in zip(chunk.raw, decisions, reasons, mask):
            if m:
                self.f.write(self.line(raw, d, r))
                self.count += 1

    def line(self, raw: bytes, decision: str, reason: str) -> bytes:
        if self.shard.fmt != "jsonl":
            return raw if raw.endswith(b"\n") else raw + b"\n"
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return raw if raw.endswith(b"\n") else raw + b"\n"  # unreadable: copied byte for byte
        if not isinstance(obj, dict):
            return raw if raw.endswith(b"\n") else raw + b"\n"
        obj[DECISION], obj[REASON] = decision, reason
        return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"

    def close(self):
        self.f.close()


def with_decisions(batch, decisions, reasons):
    """`batch` (RecordBatch or Table) with the decision and reason columns appended."""
    import pyarrow as pa

    for name in (DECISION, REASON):
        if name in batch.schema.names:
            raise CollapseguardError(f"the input already has a {name!r} column; drop it or filter the original shards")
    batch = batch.append_column(DECISION, pa.array(decisions, pa.string()))
    return batch.append_column(REASON, pa.array(reasons, pa.string()))
