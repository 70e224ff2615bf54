"""The provenance columns: one reader that checks them, names the file, column and record, and
reads the LM loop's older names."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collapseguard.errors import CollapseguardError
from collapseguard.io import columns as pc


def test_schema_and_sha256():
    schema = pc.schema("body", ("minhash_v1",))
    assert schema.names == ["body", "origin", "source", "license", "generator", "generation", "parent_ids", "sha256",
                            "decision", "reason", "minhash_v1"]
    assert schema.field("parent_ids").type == pa.list_(pa.string()) and schema.field("generation").type == pa.int32()
    assert pc.text_sha256("héllo") == hashlib.sha256("héllo".encode()).hexdigest()


def test_legacy_names_and_values_read_as_the_schema(tmp_path):
    path = tmp_path / "old.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "origin": ["human", "model"], "source_generation": [-1, 2],
                             "parent_model": ["", "gen_002/model"]}), path)
    cols = pc.read_table(path, "text")
    assert cols == {"origin": ["human", "synthetic"], "generation": [None, 2], "generator": [None, "gen_002/model"]}
    assert pc.origin_counts(cols["origin"]) == {"human": 1, "synthetic": 1, "unknown": 0}


@pytest.mark.parametrize("column, values, needle", [
    ("origin", ["human", "machine"], "column 'origin' holds 'machine' in record 1; use one of human, synthetic, unknown"),
    ("generation", [0, -5], "column 'generation' holds -5 in record 1"),
    ("parent_ids", [["x"], "y"], "column 'parent_ids' holds 'y' in record 1"),
    ("sha256", ["00" * 32, "zz"], "column 'sha256' holds 'zz' in record 1"),
    ("decision", ["human", "maybe"], "column 'decision' holds 'maybe' in record 1"),
    ("license", ["mit", 3], "column 'license' holds 3 in record 1"),
])
def test_bad_values_name_file_column_record_and_fix(column, values, needle):
    with pytest.raises(CollapseguardError) as err:
        pc.normalise({column: values}, "pool/a.parquet", start=0)
    assert str(err.value).startswith("pool/a.parquet: ") and needle in str(err.value)


def test_sha256_must_match_the_text(tmp_path):
    path = tmp_path / "x.parquet"
    good = pc.text_sha256("one")
    pq.write_table(pa.table({"text": ["one", "two"], "sha256": [good, good]}), path)
    with pytest.raises(CollapseguardError, match=r"x.parquet: column 'sha256' of record 1 is not the sha256 of its text"):
        pc.read_table(path, "text")
    with pytest.raises(CollapseguardError, match="no column 'body'"):
        pc.read_table(path, "body")


def test_json_records_keep_only_provenance_fields():
    records = [{"text": "a", "origin": "human", "license": "cc0", "other": 1}, "not a dict", {"text": "b"}]
    cols = pc.from_records(records, "p.jsonl")
    assert cols == {"license": ["cc0", None, None], "origin": ["human", None, None]}
    assert pc.origin_counts(cols["origin"]) == {"human": 1, "synthetic": 0, "unknown": 2}
