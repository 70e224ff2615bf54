"""curate: exact shares in records and tokens, sampling without replacement, byte-identical reruns,
refusals with the numbers, signed manifests with the pools' manifests as parents."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from provenance_data import run

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]


def texts(n: int, seed: int, prefix: str) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"{prefix}{i} " + "  ".join(rng.choice(WORDS, size=rng.integers(1, 12))) for i in range(n)]


@pytest.fixture
def pools(tmp_path):
    """A human pool (two parquet shards, one jsonl) and a synthetic pool (jsonl with generator columns)."""
    human, synthetic = tmp_path / "human", tmp_path / "synthetic"
    (human / "sub").mkdir(parents=True)
    synthetic.mkdir()
    h = texts(60, 1, "h")
    pq.write_table(pa.table({"text": h[:25], "license": ["cc-by"] * 25}), human / "a.parquet")
    pq.write_table(pa.table({"text": h[25:40]}), human / "sub" / "b.parquet")
    (human / "c.jsonl").write_text("".join(json.dumps({"text": t, "source": "web"}) + "\n" for t in h[40:]))
    s = texts(50, 2, "s")
    (synthetic / "gen.jsonl").write_text("".join(
        json.dumps({"text": t, "generator": "tiny-gpt", "generation": 1, "origin": "synthetic"}) + "\n" for t in s))
    return {"human": human, "synthetic": synthetic, "h": h, "s": s, "root": tmp_path}


def read_mix(out: Path):
    files = sorted((out / "data").glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


def n_words(text: str) -> int:  # an independent count: runs of non-space characters
    return len(re.findall(r"\S+", text))


def test_exact_record_shares_without_replacement(pools):
    out = pools["root"] / "mix"
    run("curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.35",
        "--size", 40, "--seed", 3, "--out", out, "--shard-records", 15)
    rows = read_mix(out)
    assert len(rows) == 40 and len(list((out / "data").glob("*.parquet"))) == 3
    human = [r for r in rows if r["origin"] == "human"]
    assert len(human) == 14 and sum(r["origin"] == "synthetic" for r in rows) == 26  # round(0.35 * 40) = 14
    assert {r["text"] for r in human} <= set(pools["h"])
    assert {r["text"] for r in rows if r["origin"] == "synthetic"} <= set(pools["s"])
    assert len({r["text"] for r in rows}) == 40  # without replacement (the pools' texts are distinct)
    for r in rows:
        assert r["sha256"] == hashlib.sha256(r["text"].encode()).hexdigest()
        if r["origin"] == "synthetic":
            assert r["generator"] == "tiny-gpt" and r["generation"] == 1
        else:
            assert r["generator"] is None and r["generation"] is None and r["parent_ids"] == []
    by_text = {r["text"]: r for r in rows}
    for t in pools["h"][:25]:
        if t in by_text:
            assert by_text[t]["license"] == "cc-by" and by_text[t]["source"].startswith("../human/a.parquet#")
    for t in pools["h"][40:]:
        if t in by_text:
            assert by_text[t]["source"] == "web"
    # the manifest covers the shards and counts the origins from the files themselves
    statement = json.loads((out / "manifest.json").read_text())
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects == {f"data/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in (out / "data").glob("*.parquet")}
    assert statement["predicate"]["origin_counts"] == {"human": 14, "synthetic": 26, "unknown": 0}
    assert statement["predicate"]["curation"]["targets"] == {"human": 14, "synthetic": 26}


def test_exact_token_shares(pools):
    out = pools["root"] / "mix"
    res = run("curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.4",
              "--tokens", 155, "--seed", 5, "--out", out, "--json")
    rows = read_mix(out)
    human_tokens = sum(n_words(r["text"]) for r in rows if r["origin"] == "human")
    synthetic_tokens = sum(n_words(r["text"]) for r in rows if r["origin"] == "synthetic")
    assert human_tokens == 62 and synthetic_tokens == 93  # round(0.4 * 155) = 62
    full = {hashlib.sha256(t.encode()).hexdigest(): t for t in pools["h"] + pools["s"]}
    cut = [r for r in rows if r["parent_ids"]]
    assert len(cut) <= 2 and json.loads(res.stdout)["cut_records"] == len(cut)
    for r in cut:  # a cut record is a prefix of the full record its parent_ids name
        parent = full[r["parent_ids"][0]]
        assert parent.startswith(r["text"]) and n_words(r["text"]) < n_words(parent)
    assert all(r["text"] in full.values() for r in rows if not r["parent_ids"])


def test_byte_identical_reruns_and_seed_changes_the_sample(pools, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # pins the manifest's creation time
    args = ["curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"],
            "--human-fraction", "0.5", "--size", 30, "--name", "mix"]
    digests = []
    for name, seed in (("one", 7), ("two", 7), ("other", 8)):
        out = pools["root"] / name
        run(*args, "--seed", seed, "--out", out)
        digests.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                        if p.is_file() and not p.name.startswith(".")})
    assert set(digests[0]) == {"manifest.json", "data/part-00000.parquet"}
    assert digests[0] == digests[1]
    assert digests[0]["data/part-00000.parquet"] != digests[2]["data/part-00000.parquet"]
    # a rerun into the same folder with the same settings is accepted and writes the same shards; its
    # manifest is the next version, naming the one it replaces
    run(*args, "--seed", 7, "--out", pools["root"] / "one")
    assert (pools["root"] / "one" / "data" / "part-00000.parquet").read_bytes() == digests[0]["data/part-00000.parquet"]
    dataset = json.loads((pools["root"] / "one" / "manifest.json").read_text())["predicate"]["dataset"]
    assert dataset["name"] == "mix" and dataset["version"] == "2" and dataset["created"] == "2023-11-14T22:13:20Z"
    assert dataset["previous"]["sha256"] == hashlib.sha256(digests[0]["manifest.json"]).hexdigest()


def test_refusals_name_the_numbers(pools, tmp_path):
    base = ["--human", pools["human"], "--synthetic", pools["synthetic"], "--out", tmp_path / "m"]
    res = run("curate", "--allow-unsigned", *base, "--human-fraction", "0.9", "--size", 100, code=2)
    assert "the human pools hold 60 eligible records, the mix needs 90 (0.9 of 100)" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    res = run("curate", "--allow-unsigned", *base, "--human-fraction", "0.5", "--size", 200, code=2)
    assert "hold 60 eligible records, the mix needs 100" in res.output
    res = run("curate", "--allow-unsigned", *base, "--human-fraction", "0.5", "--tokens", 100000, code=2)
    assert "eligible tokens" in res.output and "needs 50000" in res.output
    for bad in ("1.5", "-0.1"):
        res = run("curate", "--allow-unsigned", *base, "--human-fraction", bad, "--size", 10, code=2)
        assert f"--human-fraction must be in [0, 1], got {float(bad)}" in res.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = run("curate", "--allow-unsigned", "--human", empty, "--synthetic", pools["synthetic"], "--human-fraction", "0.5",
              "--size", 4, "--out", tmp_path / "m", code=2)
    assert f"{empty}: the human pool holds no records" in res.output
    res = run("curate", "--allow-unsigned", *base, "--human-fraction", "0.5", code=2)
    assert "exactly one of --size" in res.output
    res = run("curate", "--allow-unsigned", "--human", pools["human"], "--human-fraction", "0.5", "--size", 4, "--out", tmp_path / "m", code=2)
    assert "no --synthetic pool" in res.output
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_a_record_whose_origin_disagrees_with_its_pool_is_left_out(tmp_path):
    pool = tmp_path / "h.jsonl"
    rows = [{"text": f"text {i}", "origin": "synthetic" if i < 3 else ("model" if i == 3 else "human")} for i in range(10)]
    del rows[9]["origin"]  # an undeclared origin takes the pool's
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run("curate", "--allow-unsigned", "--human", pool, "--human-fraction", "1", "--size", 6, "--out", tmp_path / "m", "--json")
    assert json.loads(res.stdout)["pools"][0]["origin_disagrees"] == 4  # legacy origin "model" reads as synthetic
    assert {r["text"] for r in read_mix(tmp_path / "m")} == {f"text {i}" for i in range(4, 10)}
    res = run("curate", "--allow-unsigned", "--human", pool, "--human-fraction", "1", "--size", 7, "--out", tmp_path / "n", code=2)
    assert "6 eligible records (10 records read, 4 left out: 4 with another declared origin)" in res.output


def test_signed_manifest_verifies_and_names_the_pool_manifests_as_parents(pools, tmp_path):
    pytest.importorskip("cryptography")
    from collapseguard.provenance.manifest import build_statement, statement_of, write_manifest
    from collapseguard.provenance.verify import verify_manifest

    write_manifest(pools["human"] / "manifest.json", build_statement(pools["human"]))
    run("provenance", "keygen", "--out", tmp_path / "team.key")
    out = tmp_path / "mix"
    run("curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.5",
        "--size", 20, "--key", tmp_path / "team.key", "--out", out)
    report = verify_manifest(out / "manifest.json", [tmp_path / "team.key.pub"])
    assert report["ok"] and report["signed"] and report["files"] == 1
    statement = statement_of(json.loads((out / "manifest.json").read_text()))
    parents = statement["predicate"]["parents"]
    assert [p["sha256"] for p in parents] == [hashlib.sha256((pools["human"] / "manifest.json").read_bytes()).hexdigest()]
    # a pool file changed after its manifest was built is refused
    (pools["human"] / "c.jsonl").write_text(json.dumps({"text": "tampered"}) + "\n")
    res = run("curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.5",
              "--size", 20, "--out", tmp_path / "mix2", code=2)
    assert "c.jsonl: changed" in res.output


def test_a_wrong_key_file_is_refused_before_any_work(pools, tmp_path):
    pytest.importorskip("cryptography")
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    res = run("curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.5",
              "--size", 20, "--key", bad, "--out", tmp_path / "mix", code=2)
    assert str(bad) in res.output and not (tmp_path / "mix").exists()


def test_output_folder_rules(pools, tmp_path):
    from collapseguard.provenance.verify import verify_manifest

    args = ["curate", "--allow-unsigned", "--human", pools["human"], "--synthetic", pools["synthetic"], "--human-fraction", "0.5"]
    out = tmp_path / "mix"
    run(*args, "--size", 40, "--shard-records", 10, "--out", out)
    assert len(list((out / "data").glob("*.parquet"))) == 4
    res = run(*args, "--size", 20, "--shard-records", 10, "--out", out, code=2)  # other settings
    assert "--overwrite" in res.output
    run(*args, "--size", 20, "--shard-records", 10, "--out", out, "--overwrite")
    assert sorted(p.name for p in (out / "data").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert verify_manifest(out / "manifest.json", allow_unsigned=True)["files"] == 2  # no stale shard left
    theirs = tmp_path / "theirs"
    (theirs / "data").mkdir(parents=True)
    (theirs / "data" / "part-00007.parquet").write_bytes(b"user data")
    res = run(*args, "--size", 20, "--out", theirs, "--overwrite", code=2)
    assert "holds files curate did not write" in res.output
    assert (theirs / "data" / "part-00007.parquet").read_bytes() == b"user data"
    res = run(*args, "--size", 20, "--out", pools["human"] / "mix", code=2)  # never inside an input
    assert "would overwrite the input" in res.output


def test_help_has_examples():
    res = run("curate", "--allow-unsigned", "--help")
    assert "Examples:" in res.output and "--from-simulation" in res.output and "--tokens" in res.output


@pytest.mark.parametrize("fraction, size, tokens", [(0, 7, None), (1, 7, None), (0.5, 5, None), (0.125, 9, None),
                                                    (0, None, 31), (1, None, 31), (0.5, None, 33), (0.07, None, 100)])
def test_targets_are_met_exactly_at_the_edges(pools, tmp_path, fraction, size, tokens):
    from fractions import Fraction

    from collapseguard.curate.mix import CurateConfig, curate

    total = size if size is not None else tokens
    want_human = int(Fraction(str(fraction)) * total + Fraction(1, 2))  # half up
    config = CurateConfig((str(pools["human"]),), (str(pools["synthetic"]),), fraction, size, tokens, seed=11,
                          allow_unsigned=True)
    curate(config, tmp_path / "mix")
    rows = read_mix(tmp_path / "mix")
    count = (lambda r: 1) if size is not None else (lambda r: n_words(r["text"]))
    assert sum(count(r) for r in rows if r["origin"] == "human") == want_human
    assert sum(count(r) for r in rows if r["origin"] == "synthetic") == total - want_human
