"""Manifests: in-toto statements over data files, counted and hashed independently of the builder."""

from __future__ import annotations

import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from provenance_data import sentences, tree_digest, write_policy, write_tree

from collapseguard.errors import CollapseguardError
from collapseguard.provenance.manifest import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_statement,
    read_manifest,
    write_manifest,
)


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "data")


def test_statement_lists_every_data_file_with_digest_size_and_records(tree):
    before = tree_digest(tree)
    st = build_statement(tree)
    assert st["_type"] == STATEMENT_TYPE and st["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in st["subject"]]
    assert names == ["a.parquet", "d.txt", "sub/b.jsonl", "sub/c.jsonl.gz"]  # hidden and .md skipped
    for s in st["subject"]:
        assert s["digest"]["sha256"] == hashlib.sha256((tree / s["name"]).read_bytes()).hexdigest()
    files = st["predicate"]["files"]
    assert files["a.parquet"]["records"] == pq.read_table(tree / "a.parquet").num_rows
    assert files["sub/b.jsonl"]["records"] == 2
    with gzip.open(tree / "sub" / "c.jsonl.gz", "rt") as f:
        assert files["sub/c.jsonl.gz"]["records"] == sum(1 for line in f if line.strip())
    assert files["d.txt"]["records"] == 2
    assert files["d.txt"]["size"] == (tree / "d.txt").stat().st_size
    assert st["predicate"]["records"] == 3 + 2 + 3 + 2
    assert tree_digest(tree) == before  # inputs untouched


def test_origin_counts_come_from_the_files_origin_column(tree):
    st = build_statement(tree)
    files = st["predicate"]["files"]
    assert files["a.parquet"]["origin_counts"] == {"human": 2, "synthetic": 1, "unknown": 0}
    assert files["sub/b.jsonl"]["origin_counts"] == {"human": 1, "synthetic": 0, "unknown": 1}  # "weird" -> unknown
    assert "origin_counts" not in files["d.txt"]
    assert st["predicate"]["origin_counts"] == {"human": 3, "synthetic": 1, "unknown": 1}
    given = {"human": 7, "synthetic": 3, "unknown": 0}
    assert build_statement(tree, counts=given)["predicate"]["origin_counts"] == given


def test_explicit_files_and_extra_fields(tree, tmp_path):
    st = build_statement(tree, files=["a.parquet", tree / "d.txt"], extra={"mix": {"human_fraction": 0.5}})
    assert [s["name"] for s in st["subject"]] == ["a.parquet", "d.txt"]
    assert st["predicate"]["mix"] == {"human_fraction": 0.5}
    with pytest.raises(CollapseguardError, match="no such data file"):
        build_statement(tree, files=["missing.parquet"])
    (tmp_path / "outside.txt").write_text("x\n")
    (tree / "link.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(CollapseguardError, match="a symlink out of"):
        build_statement(tree)


def test_scan_attributes_give_detected_counts_and_the_share(tree, tmp_path):
    scan = tmp_path / "scan"
    (scan / "attributes").mkdir(parents=True)
    share = {"kind": "rogan_gladen", "estimate": 0.3, "low": 0.1, "high": 0.5}
    a_sha = hashlib.sha256((tree / "a.parquet").read_bytes()).hexdigest()
    (scan / "summary.json").write_text(json.dumps({"synthetic_share": share, "max_synthetic_share": 0.2,
                                                   "over_limit": True,
                                                   "shards": [{"shard": "a.parquet", "input_sha256": a_sha}]}))
    pq.write_table(pa.table({"decision": ["human", "synthetic", "abstain"]}), scan / "attributes" / "a.parquet.parquet")
    st = build_statement(tree, attributes=scan)
    assert st["predicate"]["files"]["a.parquet"]["detected_counts"] == {"human": 1, "synthetic": 1, "unknown": 1}
    assert st["predicate"]["synthetic_share"] == share
    scan_ev = st["predicate"]["scan"]
    assert scan_ev["summary_sha256"] == hashlib.sha256((scan / "summary.json").read_bytes()).hexdigest()
    assert "sub/b.jsonl" in scan_ev["missing"]
    with pytest.raises(CollapseguardError, match="no summary.json"):
        build_statement(tree, attributes=tmp_path)


def test_policy_fingerprint_and_calibration_hash(tree, tmp_path):
    pytest.importorskip("datasketch")
    from collapseguard.scan.policy import load_policy

    (tmp_path / "cal.json").write_text('{"human_sha256": "abc"}')
    policy = write_policy(tmp_path, sentences(3, 0), limit=0.1, calibration="cal.json")
    pol = load_policy(policy)
    ev = build_statement(tree, policy=policy)["predicate"]["policy"]
    assert ev["fingerprint"] == pol.fingerprint()
    assert ev["calibration"]["sha256"] == hashlib.sha256((tmp_path / "cal.json").read_bytes()).hexdigest()
    assert ev["calibration"]["human_sha256"] == "abc" and ev["max_synthetic_share"] == 0.1


def test_parents_record_the_parent_manifest_bytes(tree, tmp_path):
    parent_dir = write_tree(tmp_path / "raw")
    write_manifest(parent_dir / "manifest.json", build_statement(parent_dir))
    st = build_statement(tree, parents=[parent_dir / "manifest.json"])
    (entry,) = st["predicate"]["parents"]
    assert entry["sha256"] == hashlib.sha256((parent_dir / "manifest.json").read_bytes()).hexdigest()
    with pytest.raises(CollapseguardError, match="no such parent manifest"):
        build_statement(tree, parents=[tmp_path / "nope.json"])
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(CollapseguardError, match="a manifest is a JSON object"):
        build_statement(tree, parents=[tmp_path / "junk.json"])


def test_manifest_round_trip_and_no_data(tree, tmp_path):
    st = build_statement(tree)
    write_manifest(tree / "manifest.json", st)
    assert read_manifest(tree / "manifest.json") == st
    assert build_statement(tree) == st  # the manifest itself is not a subject
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollapseguardError, match="no data files"):
        build_statement(tmp_path / "empty")


@pytest.mark.parametrize("body, message", [
    ("{not json", "not a JSON manifest"),
    ("[]", "a manifest is a JSON object"),
    ('{"_type": "x"}', "_type is 'x'"),
    (json.dumps({"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE, "predicate": {}}), "no 'subject' list"),
    (json.dumps({"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE, "predicate": {},
                 "subject": [{"name": "a"}]}), "subject[0] needs a name and digest.sha256"),
    (json.dumps({"_type": STATEMENT_TYPE, "predicateType": "other", "subject": []}), "predicateType is 'other'"),
    ('{"payloadType": "application/vnd.in-toto+json", "signatures": []}', "lacks 'payload'"),
    ('{"payload": "!!!", "payloadType": "t", "signatures": []}', "not base64 JSON"),
])
def test_bad_manifests_are_one_line_errors(tmp_path, body, message):
    path = tmp_path / "manifest.json"
    path.write_text(body)
    with pytest.raises(CollapseguardError) as err:
        read_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_build_reads_a_real_scan_output(tmp_path):
    pytest.importorskip("datasketch")
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    machine = sentences(4, 5)
    policy = write_policy(tmp_path / "guard", machine, limit=0.1)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(6, 6) + machine[:2]))
    pq.write_table(pa.table({"text": sentences(5, 7)}), data / "y.parquet")
    res = CliRunner().invoke(cli, ["scan", str(data), "--out", str(tmp_path / "scan"), "--policy", str(policy), "--json"])
    assert res.exit_code in (0, 1), res.output
    summary = json.loads((tmp_path / "scan" / "summary.json").read_text())
    st = build_statement(data, attributes=tmp_path / "scan", policy=policy)
    files = st["predicate"]["files"]
    assert files["sub/x.jsonl"]["detected_counts"] == {"human": 6, "synthetic": 2, "unknown": 0}
    assert files["y.parquet"]["detected_counts"] == {"human": 5, "synthetic": 0, "unknown": 0}
    assert st["predicate"]["synthetic_share"] == summary["synthetic_share"]
    assert st["predicate"]["scan"]["missing"] == [] and st["predicate"]["scan"]["over_limit"] is True
    assert sum(f["records"] for f in files.values()) == summary["records"]


def test_wikitext2_manifest_counts_and_digests():
    from pathlib import Path

    wiki = Path("/work/shared/data/wikitext-2")
    if not wiki.is_dir():
        pytest.skip("WikiText-2 not present (see /work/shared/data/README.md)")
    st = build_statement(wiki, include=["*.tokens"])
    files = sorted(p.name for p in wiki.glob("*.tokens"))
    assert [s["name"] for s in st["subject"]] == files
    for s in st["subject"]:
        raw = (wiki / s["name"]).read_bytes()
        assert s["digest"]["sha256"] == hashlib.sha256(raw).hexdigest()
        assert st["predicate"]["files"][s["name"]]["records"] == sum(1 for line in raw.splitlines() if line.strip())


def test_declared_origins_read_legacy_names_like_curate(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from collapseguard.provenance.manifest import declared_origins

    pq.write_table(pa.table({"text": list("abcde"), "origin": ["human", "model", "synthetic", "unknown", None]}),
                   tmp_path / "x.parquet")
    assert declared_origins(tmp_path / "x.parquet") == {"human": 1, "synthetic": 2, "unknown": 2}
