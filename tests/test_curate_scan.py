"""curate with scan attributes: a record the guard policy flagged never counts as human, and
attributes that do not belong to the pool's bytes or rows are refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from provenance_data import run

pytest.importorskip("numba")  # the dedup extra: minhash_v1 ledger

WORDS = [a + b for a in "klmnprst" for b in "aeiou"]


def documents(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=50)) for _ in range(n)]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A human pool with ledger entries planted in it, scanned by a ledger-only guard policy."""
    from collapseguard.detectors.dedup.ledger import Ledger

    root = tmp_path_factory.mktemp("curate_scan")
    entries = documents(30, 99)
    Ledger.create(root / "gens.ledger").add(entries, [f"gen-{i}" for i in range(len(entries))])
    (root / "policy.toml").write_text(
        'text_column = "text"\ncalibration = "cal.json"\nmax_synthetic_share = 0.05\n'
        '[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\noptions = { ledger = "gens.ledger" }\n')
    (root / "held.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in documents(80, 1)))
    (root / "machine.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in entries[:20]))
    run("policy", "calibrate", "--policy", root / "policy.toml", "--human", root / "held.jsonl",
        "--machine", root / "machine.jsonl", "--fpr", "0.05", "--out", root / "cal.json")
    human = documents(40, 2)
    planted = entries[20:30]
    texts = human + planted
    order = np.random.default_rng(3).permutation(len(texts))
    pool = root / "pool"
    pool.mkdir()
    pq.write_table(pa.table({"text": [texts[i] for i in order]}), pool / "a.parquet")
    (root / "synth").mkdir()
    (root / "synth" / "s.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in documents(40, 4)))
    run("scan", pool, "--out", root / "scan", "--policy", root / "policy.toml")
    decisions = pq.read_table(root / "scan" / "attributes" / "a.parquet.parquet").column("decision").to_pylist()
    return {"root": root, "pool": pool, "planted": set(planted), "human": set(human), "decisions": decisions,
            "synth": root / "synth"}


def test_flagged_records_never_count_as_human(scanned):
    root = scanned["root"]
    flagged = scanned["decisions"].count("synthetic")
    assert flagged >= 8  # the ledger catches (nearly) every planted entry
    eligible = scanned["decisions"].count("human")  # abstentions are not human either (without --keep)
    left_out = 50 - eligible
    out = root / "mix"
    res = run("curate", "--allow-unsigned", "--human", scanned["pool"], "--attributes", root / "scan", "--synthetic", scanned["synth"],
              "--human-fraction", "0.5", "--size", 2 * eligible, "--seed", 1, "--out", out, "--json")
    info = json.loads(res.stdout)
    assert info["pools"][0]["flagged_synthetic"] == flagged and info["records"]["human"] == eligible
    rows = pa.concat_tables([pq.read_table(f) for f in sorted((out / "data").glob("*.parquet"))]).to_pylist()
    human = [r for r in rows if r["origin"] == "human"]
    table = pq.read_table(scanned["pool"] / "a.parquet").column("text").to_pylist()
    flagged_texts = {t for t, d in zip(table, scanned["decisions"]) if d == "synthetic"}
    assert not {r["text"] for r in human} & flagged_texts
    assert all(r["decision"] == "human" for r in human)  # the scan's evidence rides along
    assert "minhash_v1" in pq.read_schema(sorted((out / "data").glob("*.parquet"))[0]).names
    # one more human record than the unflagged ones is refused, and the message says why
    res = run("curate", "--allow-unsigned", "--human", scanned["pool"], "--attributes", root / "scan", "--synthetic", scanned["synth"],
              "--human-fraction", "1", "--size", eligible + 1, "--out", root / "mix2", code=2)
    assert f"hold {eligible} eligible records (50 records read, {left_out} left out: {flagged} flagged synthetic by scan" \
        in res.output
    # without the attributes the same request goes through: the flag is what keeps them out
    run("curate", "--allow-unsigned", "--human", scanned["pool"], "--human-fraction", "1", "--size", eligible + 1, "--out", root / "mix3")


def test_attributes_of_other_bytes_or_rows_are_refused(scanned, tmp_path):
    root = scanned["root"]
    changed = tmp_path / "pool"
    shutil.copytree(scanned["pool"], changed)
    table = pq.read_table(changed / "a.parquet")
    pq.write_table(table.slice(0, 49), changed / "a.parquet")  # one record fewer: other bytes, same name
    res = run("curate", "--allow-unsigned", "--human", changed, "--attributes", root / "scan", "--human-fraction", "1", "--size", 5,
              "--out", tmp_path / "m", code=2)
    assert "made from other bytes" in res.output and "rescan" in res.output
    # row-misaligned attributes (same bytes on record, rows swapped) are caught by the sha256 column
    scan = tmp_path / "scan"
    shutil.copytree(root / "scan", scan)
    att = pq.read_table(scan / "attributes" / "a.parquet.parquet")
    rows = att.to_pylist()
    rows[0]["sha256"], rows[1]["sha256"] = rows[1]["sha256"], rows[0]["sha256"]
    pq.write_table(pa.Table.from_pylist(rows, schema=att.schema), scan / "attributes" / "a.parquet.parquet")
    res = run("curate", "--allow-unsigned", "--human", scanned["pool"], "--attributes", scan, "--human-fraction", "1", "--size", 5,
              "--out", tmp_path / "m", code=2)
    assert "row 0 has another text's sha256" in res.output
    res = run("curate", "--allow-unsigned", "--human", scanned["pool"], "--attributes", tmp_path / "nothing", "--human-fraction", "1",
              "--size", 5, "--out", tmp_path / "m", code=2)
    assert "no summary.json" in res.output
