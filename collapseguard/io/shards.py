"""Find the shards behind files, folders and globs, and stream each one as record chunks: the one
reader of every format (`io.readers` builds its records on these chunks).

Formats: parquet (a Hugging Face dataset repo's `data/*.parquet` too), jsonl / ndjson (plain,
`.gz`, `.zst`), plain text (one record per non-blank line), and `datasets` saved to disk. Every
chunk keeps the raw records (Arrow rows or raw lines) so that `filter` can write them back in
the input's own format; a record that cannot be read as text (not UTF-8, not JSON, not an object)
stands as an Unreadable with its reason, for the scan to abstain on or a reader to refuse.
A file or a column that is wrong as a whole raises one line naming it and the fix.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError

BOM = b"\xef\xbb\xbf"
SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".jsonl.gz": "jsonl",
            ".ndjson.gz": "jsonl", ".jsonl.zst": "jsonl", ".ndjson.zst": "jsonl", ".txt": "text"}


_json = json.JSONDecoder().decode  # json.loads less its per-call checks (a hot path)
# how to fix a missing or wrong text column, told in the scan's terms unless a caller names its own option
COLUMN_FIX = "set text_column in the policy or pass --text-column"


class Unreadable(str):
    """A record's reason for abstaining (not UTF-8, bad JSON, ...), standing in for its text;
    `complaint` finishes "record N ..." with the fix, for a reader that refuses the record instead."""

    def __new__(cls, reason: str, complaint: str = ""):
        self = super().__new__(cls, reason)
        self.complaint = complaint or f"is {reason}"
        return self


@dataclass(frozen=True)
class Shard:
    """One input shard: its path, its path relative to the input it was found under, its format."""

    path: Path
    rel: str
    fmt: str

    @property
    def compression(self) -> str | None:
        name = self.path.name.lower()
        return "gzip" if name.endswith(".gz") else "zstd" if name.endswith(".zst") else None


@dataclass
class Chunk:
    """Consecutive records of a shard: texts (None = unreadable), reasons, and the raw records."""

    start: int
    texts: list
    raw: object  # pyarrow.RecordBatch (parquet, datasets) or list[bytes] (jsonl, text)

    def __len__(self) -> int:
        return len(self.texts)


def format_of(path: Path) -> str | None:
    """The shard format from the name (or a saved `datasets` folder); None when not a shard."""
    if path.is_dir():
        return "datasets" if is_saved_dataset(path) else None
    name = path.name.lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


def is_saved_dataset(path: Path) -> bool:
    return any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def discover(inputs, exclude: Path | None = None) -> list[Shard]:
    """Every shard under `inputs` (files, folders searched recursively, globs), sorted, relative paths unique."""
    shards: dict[str, Shard] = {}
    for item in inputs:
        for shard in _expand(str(item), exclude):
            if shard.rel in shards and shards[shard.rel].path != shard.path:
                raise CollapseguardError(f"{shard.path} and {shards[shard.rel].path} would share the output name "
                                         f"{shard.rel!r}; pass their common parent folder instead")
            shards[shard.rel] = shard
    if not shards:
        raise CollapseguardError(f"no shards found in {', '.join(map(str, inputs))}; "
                                 f"pass files ending in {', '.join(SUFFIXES)} or a saved `datasets` folder")
    return [shards[k] for k in sorted(shards)]


def _expand(item: str, exclude: Path | None) -> Iterator[Shard]:
    if glob.has_magic(item):
        base = Path(item.split("*")[0].split("?")[0].split("[")[0] or ".")
        base = base if base.is_dir() and not item.endswith(str(base)) else base.parent
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            raise CollapseguardError(f"{item}: the pattern matches nothing; check the path")
        for m in matches:
            yield from _expand_path(Path(m), base, exclude)
        return
    if not item.strip():
        raise CollapseguardError(f"an empty input path {item!r}; pass files, folders or globs")
    path = Path(item)
    if not path.exists():
        raise CollapseguardError(f"{path}: no such file or directory")
    yield from _expand_path(path, path if path.is_dir() and not is_saved_dataset(path) else path.parent, exclude)


def _expand_path(path: Path, base: Path, exclude: Path | None) -> Iterator[Shard]:
    fmt = format_of(path)
    if fmt is not None:
        yield _shard(path, base, fmt)
        return
    if not path.is_dir():
        raise CollapseguardError(f"{path}: unsupported format; pass files ending in {', '.join(SUFFIXES)} or a saved "
                                 "`datasets` folder (convert other formats, e.g. CSV, to jsonl with a text field)")
    datasets_dirs = [d for d in sorted(path.rglob("*")) if d.is_dir() and is_saved_dataset(d)]
    for child in sorted(path.rglob("*")):
        hidden = any(p.startswith(".") for p in child.relative_to(path).parts)
        if hidden or _inside(child, exclude) or any(d in child.parents for d in datasets_dirs):
            continue
        fmt = format_of(child)
        if fmt is not None:
            yield _shard(child, base, fmt)


def _shard(path: Path, base: Path, fmt: str) -> Shard:
    """A Shard, refused when it is not a regular file or folder (a FIFO or device would block the read)."""
    if not (path.is_file() or path.is_dir()):
        raise CollapseguardError(f"{path}: not a regular file (a pipe, socket or device); pass regular files")
    return Shard(path, path.relative_to(base).as_posix(), fmt)


def input_folders(inputs) -> list[Path]:
    """The folders among `inputs` (not globs): an output must not lie inside one of them."""
    return [Path(i) for i in map(str, inputs) if i.strip() and not glob.has_magic(i) and Path(i).is_dir()]


def _inside(child: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        child.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def shard_sha256(shard: Shard) -> str:
    """sha256 of the shard's bytes (a `datasets` folder: of its files' names and bytes, in order)."""
    h = hashlib.sha256()
    files = [shard.path] if shard.path.is_file() else sorted(p for p in shard.path.rglob("*") if p.is_file())
    for f in files:
        if shard.path.is_dir():
            h.update(f.relative_to(shard.path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def open_binary(shard: Shard):
    """The shard's decompressed byte stream."""
    if shard.compression == "gzip":
        return gzip.open(shard.path, "rb")
    if shard.compression == "zstd":
        import io

        import pyarrow as pa

        return io.BufferedReader(pa.input_stream(str(shard.path), compression="zstd"))
    return open(shard.path, "rb")


def iter_chunks(shard: Shard, column: str, batch_size: int, fix: str = COLUMN_FIX,
                text_only: bool = False) -> Iterator[Chunk]:
    """The shard's records in chunks of at most `batch_size`, streamed (memory bounded by the chunk);
    `fix` ends the line refusing a missing or non-text column; `text_only` reads no other parquet column."""
    try:
        if shard.fmt == "parquet":
            yield from _parquet_chunks(shard, column, batch_size, fix, text_only)
        elif shard.fmt == "datasets":
            yield from _arrow_chunks(shard, saved_dataset_table(shard.path), column, batch_size, fix)
        else:
            yield from _line_chunks(shard, column, batch_size, fix)
    except CollapseguardError:
        raise
    except Exception as exc:  # OSError, EOFError, zlib/zstd errors, Arrow errors, bad UTF-8 in an Arrow string column
        raise CollapseguardError(f"{shard.path}: cannot be read ({type(exc).__name__}: {str(exc)[:160]}); "
                                 "check the file (truncated or corrupt?)") from None


def _parquet_chunks(shard: Shard, column: str, batch_size: int, fix: str, text_only: bool) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(shard.path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses for corrupt files
        raise CollapseguardError(f"{shard.path}: not a readable parquet file ({exc}); check or re-export it") from None
    check_column(shard, pf.schema_arrow, column, fix)
    start = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_size, columns=[column] if text_only else None):
            yield Chunk(start, batch.column(column).to_pylist(), batch)
            start += batch.num_rows
    except Exception as exc:
        if isinstance(exc, CollapseguardError):
            raise
        raise CollapseguardError(f"{shard.path}: corrupt parquet after record {start} ({exc}); re-export the file") from None


def check_column(shard: Shard, schema, column: str, fix: str = COLUMN_FIX) -> None:
    import pyarrow as pa

    if column not in schema.names:
        raise CollapseguardError(f"{shard.path}: no column {column!r} (has: {', '.join(schema.names)}); {fix}")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise CollapseguardError(f"{shard.path}: column {column!r} holds {kind}, not text; {fix}")


def saved_dataset_table(path: Path):
    """The Arrow table, in row order, of the Dataset saved at `path` with `save_to_disk` (the train
    split, or the first, of a DatasetDict)."""
    try:
        import datasets
    except ImportError:
        raise CollapseguardError("reading a saved dataset needs `datasets`: pip install 'collapseguard[lm]'") from None
    try:
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        # the Arrow files are memory-mapped: an offset pointing past the end would crash the process (SIGBUS)
        # on first read, so every buffer is checked against its data now
        for table in (ds.data, ds._indices):
            if table is not None:
                table.table.validate(full=True)
    except Exception as exc:  # a broken state.json / dataset_info.json / arrow file raises many kinds
        raise CollapseguardError(f"{path}: not a readable saved `datasets` dataset ({type(exc).__name__}: "
                                 f"{str(exc)[:200]}); re-save it with `save_to_disk`") from None
    return (ds.flatten_indices() if ds._indices is not None else ds).data.table


def _arrow_chunks(shard: Shard, table, column: str, batch_size: int, fix: str) -> Iterator[Chunk]:
    check_column(shard, table.schema, column, fix)
    start = 0
    for batch in table.to_batches(max_chunksize=batch_size):
        if batch.num_rows:
            yield Chunk(start, batch.column(column).to_pylist(), batch)
            start += batch.num_rows


def _line_chunks(shard: Shard, column: str, batch_size: int, fix: str) -> Iterator[Chunk]:
    """jsonl and text: one record per non-blank line, raw lines kept byte for byte."""
    texts, raw, start = [], [], 0
    with open_binary(shard) as f:
        first = f.readline().removeprefix(BOM)  # a UTF-8 byte-order mark is not part of the first record
        for line in itertools.chain((first,), f):
            if not line.strip():
                continue
            raw.append(line)
            texts.append(_line_text(shard, start + len(texts), line, column, fix))
            if len(raw) == batch_size:
                yield Chunk(start, texts, raw)
                start += len(raw)
                texts, raw = [], []
    if raw:
        yield Chunk(start, texts, raw)


def _line_text(shard: Shard, index: int, line: bytes, column: str, fix: str):
    """The record's text (a jsonl value as parsed, perhaps not a string), or an Unreadable."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable(f"not UTF-8 (byte {exc.start})",
                          f"is not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8")
    if shard.fmt == "text":
        return text.rstrip("\r\n")
    try:
        obj = _json(text)
    except json.JSONDecodeError as exc:
        return Unreadable(f"not valid JSON ({exc.msg})", f"is not valid JSON ({exc.msg}); fix or remove that line")
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        return Unreadable(f"a JSON {kind}, not an object", f"has no {column!r} field (has: {kind}); {fix}")
    if column not in obj:
        raise CollapseguardError(f"{shard.path}: record {index} has no {column!r} field (has: {', '.join(obj) or 'none'}); {fix}")
    return obj[column]
