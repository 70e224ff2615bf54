"""Read text records from shards: plain text, jsonl, parquet, or a `datasets` dataset saved to disk.

Every reader yields ``Record(source, index, text)`` lazily; problems raise CollapseguardError
naming the file, the record and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError

FORMATS = ("text", "jsonl", "parquet", "datasets")


@dataclass(frozen=True)
class Record:
    """One text record and where it came from (file and 0-based record index)."""

    source: str
    index: int
    text: str


def detect_format(path: Path) -> str:
    """The shard format of `path`, from its suffix (or a saved `datasets` directory)."""
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return "datasets"
        raise CollapseguardError(f"{path}: a directory that is not a saved `datasets` dataset; pass its files instead")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "text"


def _decode(path: Path, index: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CollapseguardError(
            f"{path}: record {index} is not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8"
        ) from None


def _lines(f) -> Iterator[bytes]:
    """The lines of a binary file, a leading UTF-8 byte-order mark dropped."""
    for number, raw in enumerate(f):
        yield raw.removeprefix(b"\xef\xbb\xbf") if number == 0 else raw


def read_text_lines(path: Path) -> Iterator[Record]:
    """One record per non-empty line."""
    with open(path, "rb") as f:
        index = 0
        for raw in _lines(f):
            text = _decode(path, index, raw).rstrip("\r\n")
            if text.strip():
                yield Record(str(path), index, text)
                index += 1


def read_jsonl(path: Path, column: str, flag: str = "--column") -> Iterator[Record]:
    """One JSON object per line; the text is in `column`."""
    with open(path, "rb") as f:
        for index, raw in enumerate(_lines(f)):
            line = _decode(path, index, raw).strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CollapseguardError(f"{path}: record {index} is not valid JSON ({exc.msg}); fix or remove that line") from None
            if not isinstance(obj, dict) or column not in obj:
                keys = ", ".join(obj) if isinstance(obj, dict) else type(obj).__name__
                raise CollapseguardError(f"{path}: record {index} has no {column!r} field (has: {keys}); pass {flag}")
            yield Record(str(path), index, _as_text(path, index, obj[column], flag))


def _as_text(path, index, value, flag: str = "--column") -> str:
    if not isinstance(value, str):
        raise CollapseguardError(f"{path}: record {index} holds {type(value).__name__}, not text; pass the text {flag}")
    return value


def read_parquet(path: Path, column: str, batch_size: int = 8192, flag: str = "--column") -> Iterator[Record]:
    """Stream `column` of a parquet file in record batches."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses for corrupt files
        raise CollapseguardError(f"{path}: not a readable parquet file ({exc}); check the file or re-export it") from None
    names = pf.schema_arrow.names
    if column not in names:
        raise CollapseguardError(f"{path}: no column {column!r} (has: {', '.join(names)}); pass {flag}")
    index = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=[column]):
        for value in batch.column(0).to_pylist():
            yield Record(str(path), index, _as_text(path, index, value, flag) if value is not None else "")
            index += 1


def load_saved_dataset(path: Path):
    """The Dataset saved at `path` with `save_to_disk` (the train split, or the first, of a DatasetDict)."""
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
    return ds


def read_saved_dataset(path: Path, column: str, flag: str = "--column") -> Iterator[Record]:
    """A `datasets` Dataset saved with `save_to_disk` (the train split of a DatasetDict)."""
    ds = load_saved_dataset(path)
    if column not in ds.column_names:
        raise CollapseguardError(f"{path}: no column {column!r} (has: {', '.join(ds.column_names)}); pass {flag}")
    for index, value in enumerate(ds[column]):
        yield Record(str(path), index, _as_text(path, index, value, flag))


def iter_records(path: str | Path, column: str = "text", fmt: str | None = None,
                 flag: str = "--column") -> Iterator[Record]:
    """Records of one shard, in order; `fmt` overrides the format guessed from the name; `flag`
    is the command's option for the text column, named in fix hints."""
    if not str(path).strip():
        raise CollapseguardError(f"an empty input path {str(path)!r}; pass a file or folder")
    path = Path(path)
    if not path.exists():
        raise CollapseguardError(f"{path}: no such file or directory")
    if not (path.is_file() or path.is_dir()):
        raise CollapseguardError(f"{path}: not a regular file (a pipe, socket or device); pass a regular file")
    fmt = fmt or detect_format(path)
    readers = {"text": lambda: read_text_lines(path), "jsonl": lambda: read_jsonl(path, column, flag),
               "parquet": lambda: read_parquet(path, column, flag=flag),
               "datasets": lambda: read_saved_dataset(path, column, flag)}
    if fmt not in readers:
        raise CollapseguardError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return _one_line_errors(path, readers[fmt]())


def _one_line_errors(path: Path, records: Iterator[Record]) -> Iterator[Record]:
    """`records`, with any failure of the underlying library (a corrupt Arrow column, a truncated
    compressed stream) turned into one CollapseguardError naming the file."""
    try:
        yield from records
    except CollapseguardError:
        raise
    except Exception as exc:
        raise CollapseguardError(f"{path}: cannot be read ({type(exc).__name__}: {str(exc)[:160]}); "
                                 "check the file (truncated or corrupt?)") from None


def read_texts(paths, column: str = "text", fmt: str | None = None) -> list[Record]:
    """All records of several shards, in order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [r for p in paths for r in iter_records(p, column, fmt)]


def read_json_file(path: str | Path, kind: str, fix: str):
    """Parsed JSON of `path`; a missing or unreadable file is one line naming `kind` and the `fix`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: no such {kind} file; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CollapseguardError(f"{path}: not a {kind} JSON ({exc}); {fix}") from None
