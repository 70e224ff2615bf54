"""Shard discovery and the chunk readers (io.shards), every format, with property-based round trips."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapseguard.errors import CollapseguardError
from collapseguard.io.readers import iter_records
from collapseguard.io.shards import Unreadable, discover, iter_chunks, shard_sha256


def write_zst(path, data: bytes) -> None:
    with pa.CompressedOutputStream(str(path), "zstd") as f:
        f.write(data)


def read_all(shard, batch_size=3):
    texts, starts = [], []
    for chunk in iter_chunks(shard, "text", batch_size):
        starts.append(chunk.start)
        texts += chunk.texts
    return texts, starts


def jsonl_bytes(texts) -> bytes:
    return "".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts)).encode()


WRITERS = {
    "a.parquet": lambda p, t: pq.write_table(pa.table({"text": t}), p),
    "a.jsonl": lambda p, t: p.write_bytes(jsonl_bytes(t)),
    "a.jsonl.gz": lambda p, t: p.write_bytes(gzip.compress(jsonl_bytes(t))),
    "a.jsonl.zst": lambda p, t: write_zst(p, jsonl_bytes(t)),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=12), name=st.sampled_from(sorted(WRITERS)))
def test_every_format_streams_back_the_texts_in_order(tmp_path_factory, texts, name):
    folder = tmp_path_factory.mktemp("f")
    WRITERS[name](folder / name, texts)
    [shard] = discover([folder / name])
    got, starts = read_all(shard)
    assert got == texts
    assert starts == list(range(0, len(texts), 3))
    assert [(r.index, r.text) for r in iter_records(folder / name)] == list(enumerate(texts))  # records are the chunks'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                              min_size=1, max_size=30).filter(str.strip), min_size=1, max_size=10))
def test_plain_text_is_one_record_per_non_blank_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("t") / "x.txt"
    path.write_bytes(("\n\n".join(lines) + "\n").encode("utf-8"))
    [shard] = discover([path])
    assert read_all(shard)[0] == lines


def test_discovery_walks_folders_skips_hidden_and_keeps_relative_names(tmp_path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / ".cache").mkdir()
    for rel in ("data/x.parquet", "data/sub/y.jsonl", "data/.cache/z.jsonl", "data/notes.md"):
        (tmp_path / rel).write_bytes(b"")
    assert [s.rel for s in discover([tmp_path / "data"])] == ["sub/y.jsonl", "x.parquet"]
    assert [s.rel for s in discover([str(tmp_path / "data" / "**" / "*.jsonl")])] == ["sub/y.jsonl"]
    out = tmp_path / "data" / "sub"
    assert [s.rel for s in discover([tmp_path / "data"], exclude=out)] == ["x.parquet"]


def test_a_saved_dataset_is_one_shard_read_in_batches(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"record {i}" for i in range(10)]
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "ds"))
    [shard] = discover([tmp_path])
    assert (shard.rel, shard.fmt) == ("ds", "datasets")
    assert read_all(shard)[0] == texts
    assert len(shard_sha256(shard)) == 64


def test_name_collisions_and_empty_inputs_are_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.jsonl").write_bytes(b"")
    with pytest.raises(CollapseguardError, match="share the output name 'x.jsonl'"):
        discover([tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"])
    (tmp_path / "c").mkdir()
    with pytest.raises(CollapseguardError, match="no shards found"):
        discover([tmp_path / "c"])
    with pytest.raises(CollapseguardError, match="matches nothing"):
        discover([str(tmp_path / "*.parquet")])


def test_an_unreadable_line_is_the_scans_abstention_and_the_readers_refusal(tmp_path):
    """Both number records as the chunks do (blank lines are not records): the scan sees an Unreadable
    reason where `iter_records` raises one line naming the same record and the fix."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{"text": "b"}\n{oops\n[1]\n')
    [shard] = discover([path])
    texts = read_all(shard)[0]
    assert texts[:2] == ["a", "b"] and texts[2].startswith("not valid JSON") and texts[3] == "a JSON list, not an object"
    assert all(isinstance(t, Unreadable) for t in texts[2:])
    with pytest.raises(CollapseguardError, match=r"x.jsonl: record 2 is not valid JSON \(.*\); fix or remove that line$"):
        list(iter_records(path))


def test_truncated_gzip_is_one_clear_error(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(["a b c"] * 200))[:-30])
    [shard] = discover([path])
    with pytest.raises(CollapseguardError, match="cannot be read"):
        read_all(shard)
