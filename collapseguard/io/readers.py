"""Read text records from shards: plain text, jsonl, parquet, or a `datasets` dataset saved to disk.

Records are the chunks of `io.shards` one by one, as ``Record(source, index, text)``, lazily; a
record the chunks mark unreadable, or one that is not text, raises CollapseguardError naming the
file, the record and the fix (where the scan abstains on it instead).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.io.shards import Shard, Unreadable, format_of, iter_chunks

FORMATS = ("text", "jsonl", "parquet", "datasets")
BATCH = 8192


@dataclass(frozen=True)
class Record:
    """One text record and where it came from (file and 0-based record index)."""

    source: str
    index: int
    text: str


def iter_records(path: str | Path, column: str = "text", fmt: str | None = None,
                 flag: str = "--column") -> Iterator[Record]:
    """Records of one shard, in order; `fmt` overrides the format guessed from the name (a file of
    no known suffix is plain text); `flag` is the command's option for the text column, named in fix hints."""
    if not str(path).strip():
        raise CollapseguardError(f"an empty input path {str(path)!r}; pass a file or folder")
    path = Path(path)
    if not path.exists():
        raise CollapseguardError(f"{path}: no such file or directory")
    if not (path.is_file() or path.is_dir()):
        raise CollapseguardError(f"{path}: not a regular file (a pipe, socket or device); pass a regular file")
    if fmt is not None and fmt not in FORMATS:
        raise CollapseguardError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    fmt = fmt or format_of(path) or ("text" if path.is_file() else None)
    if fmt is None:
        raise CollapseguardError(f"{path}: a directory that is not a saved `datasets` dataset; pass its files instead")
    return _records(Shard(path, path.name, fmt), column, flag)


def _records(shard: Shard, column: str, flag: str) -> Iterator[Record]:
    """The shard's records, refusing the first that is not text (a null in an Arrow column is empty text)."""
    source, arrow = str(shard.path), shard.fmt in ("parquet", "datasets")
    for chunk in iter_chunks(shard, column, BATCH, fix=f"pass {flag}", text_only=True):
        for index, text in enumerate(chunk.texts, chunk.start):
            if type(text) is not str:
                if isinstance(text, Unreadable):
                    raise CollapseguardError(f"{source}: record {index} {text.complaint}")
                if not (text is None and arrow):
                    raise CollapseguardError(f"{source}: record {index} holds {type(text).__name__}, not text; "
                                             f"pass the text {flag}")
                text = ""
            yield Record(source, index, text)


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
