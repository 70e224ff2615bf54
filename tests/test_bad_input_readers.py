"""Every reader in collapseguard.io.readers (and the detect-dev reader): bad files are one-line
CollapseguardErrors naming the file and the fix, never another exception; files are never
changed. Property-based: arbitrary bytes in every format."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapseguard.detectors.detect_inputs import load_records, read_raw_data_json
from collapseguard.errors import CollapseguardError
from collapseguard.io.readers import iter_records, read_json_file, read_texts

SUFFIXES = (".txt", ".jsonl", ".parquet", ".raw_data.json", ".json")


def _read(path: Path):
    if path.name.endswith(".raw_data.json"):
        return read_raw_data_json(path, "original")
    if path.suffix == ".json":
        return read_json_file(path, "calibration", "pass the file `detect calibrate` wrote")
    return list(iter_records(path, "text"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_read_or_refuse_in_one_line(data, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"shard{suffix}"
        path.write_bytes(data)
        try:
            out = _read(path)
        except CollapseguardError as exc:
            msg = str(exc)
            assert "\n" not in msg and str(path) in msg
        else:
            if suffix in (".txt", ".jsonl", ".raw_data.json"):
                assert all(isinstance(r.text, str) for r in out)
        assert path.read_bytes() == data


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                          st.text(max_size=20), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)),
                max_size=6))
def test_jsonl_records_of_any_json_value(values):
    """Each line any JSON value: text records are read in order, anything else is one line naming the record."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.jsonl"
        lines = [json.dumps({"text": v}) for v in values]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            recs = list(iter_records(path))
        except CollapseguardError as exc:
            bad = next(i for i, v in enumerate(values) if not isinstance(v, str))
            assert f"record {bad} holds" in str(exc) and "--column" in str(exc)
        else:
            assert [r.text for r in recs] == values


@pytest.mark.parametrize("content, needle", [
    (b"ok\n\xff\xfe\n", "record 1 is not valid UTF-8"),
])
def test_text_reader(tmp_path, content, needle):
    path = tmp_path / "a.txt"
    path.write_bytes(content)
    with pytest.raises(CollapseguardError, match=needle):
        list(iter_records(path))


@pytest.mark.parametrize("line, needle", [
    ("{not json", "record 0 is not valid JSON"),
    ('{"body": "x"}', "has no 'text' field (has: body); pass --column"),
    ('["x"]', "has no 'text' field (has: list)"),
    ('{"text": 3}', "holds int, not text"),
])
def test_jsonl_reader(tmp_path, line, needle):
    path = tmp_path / "a.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CollapseguardError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        list(iter_records(path))


def test_reader_fix_hint_names_the_callers_option(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"body": "x"}\n')
    with pytest.raises(CollapseguardError, match="pass --text-column$"):
        list(iter_records(path, flag="--text-column"))


def test_parquet_reader(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(CollapseguardError, match="not a readable parquet file"):
        list(iter_records(bad))
    good = tmp_path / "g.parquet"
    pq.write_table(pa.table({"body": ["a"], "n": [1]}), good)
    with pytest.raises(CollapseguardError, match="no column 'text' .has: body, n.; pass --column"):
        list(iter_records(good))
    with pytest.raises(CollapseguardError, match="column 'n' holds int64, not text; pass --column$"):
        list(iter_records(good, "n"))


def test_saved_dataset_reader(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(CollapseguardError, match="no column 'text' .has: body."):
        list(iter_records(tmp_path / "ds"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(CollapseguardError, match="not a saved `datasets` dataset"):
        list(iter_records(tmp_path / "plain"))


def test_missing_and_unknown_format(tmp_path):
    with pytest.raises(CollapseguardError, match="no such file or directory"):
        read_texts(tmp_path / "nope.txt")
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(CollapseguardError, match="unknown format 'csv'"):
        read_texts(tmp_path / "a.txt", fmt="csv")


@pytest.mark.parametrize("blob, needle", [
    (b"\xff", "not valid UTF-8"), (b"{", "not valid JSON"), (b"[]", "expected"),
    (b'{"original": [1]}', "original[0] holds int"),
])
def test_raw_data_json_reader(tmp_path, blob, needle):
    path = tmp_path / "xsum_gpt2.raw_data.json"
    path.write_bytes(blob)
    with pytest.raises(CollapseguardError, match=needle.replace("[", r"\[")):
        load_records([path], None)
    assert path.read_bytes() == blob


def test_read_json_file(tmp_path):
    with pytest.raises(CollapseguardError, match="no such calibration file; fix"):
        read_json_file(tmp_path / "c.json", "calibration", "fix")
    (tmp_path / "c.json").write_bytes(b"\xff{")
    with pytest.raises(CollapseguardError, match="not a calibration JSON"):
        read_json_file(tmp_path / "c.json", "calibration", "fix")
