"""Read texts for the detect commands: every `collapseguard.io.readers` format, plus the
detect-dev ``*.raw_data.json`` files (``{"original": [human...], "sampled": [machine...]}``)."""

from __future__ import annotations

import json
from pathlib import Path

from collapseguard.errors import CollapseguardError
from collapseguard.io.readers import Record, read_texts

RAW_DATA_COLUMNS = ("original", "sampled")


def is_raw_data_json(path: str | Path) -> bool:
    return str(path).endswith(".raw_data.json")


def read_raw_data_json(path: str | Path, column: str) -> list[Record]:
    """Records of one list (`original` = human, `sampled` = machine) of a detect-dev file."""
    path = Path(path)
    if column not in RAW_DATA_COLUMNS:
        raise CollapseguardError(f"{path}: a raw_data.json file has columns original|sampled, not {column!r}; pass --column original or sampled")
    try:
        blob = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: no such file or directory") from None
    except UnicodeDecodeError as exc:
        raise CollapseguardError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise CollapseguardError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix the file") from None
    if not isinstance(blob, dict) or not isinstance(blob.get(column), list):
        raise CollapseguardError(f"{path}: expected {{\"original\": [...], \"sampled\": [...]}} with a {column!r} list")
    out = []
    for i, text in enumerate(blob[column]):
        if not isinstance(text, str):
            raise CollapseguardError(f"{path}: {column}[{i}] holds {type(text).__name__}, not text")
        out.append(Record(str(path), i, text))
    return out


def load_records(paths, column: str | None, fmt: str | None = None, raw_default: str = "original") -> list[Record]:
    """All records of `paths`; raw_data.json files use `column` if it is original|sampled, else `raw_default`."""
    out: list[Record] = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        if is_raw_data_json(p):
            out += read_raw_data_json(p, column if column in RAW_DATA_COLUMNS else raw_default)
        else:
            out += read_texts([p], column or "text", fmt)
    return out
