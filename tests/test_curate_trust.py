"""curate trusts only what verifies: pools checked against their signed manifests (or an explicit,
recorded --allow-unsigned), unreadable records never become text, scan abstentions are not human
unless asked for, attributes of another folder are refused, and no absolute path is published."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from provenance_data import run


def jsonl(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def read_mix(out):
    return pa.concat_tables([pq.read_table(f) for f in sorted((out / "data").glob("*.parquet"))]).to_pylist()


@pytest.fixture
def pools(tmp_path):
    human, synthetic = tmp_path / "human", tmp_path / "synthetic"
    human.mkdir()
    synthetic.mkdir()
    jsonl(human / "a.jsonl", [f"human words number {i}" for i in range(40)])
    jsonl(synthetic / "s.jsonl", [f"machine words number {i}" for i in range(40)])
    return human, synthetic


@pytest.fixture
def key(tmp_path):
    pytest.importorskip("cryptography")
    run("provenance", "keygen", "--out", tmp_path / "team")
    return tmp_path / "team"


def sign_pool(folder, key):
    run("provenance", "build", folder)
    run("provenance", "sign", folder / "manifest.json", "--key", key)


def test_pools_must_verify_against_their_signed_manifests(pools, key, tmp_path):
    human, synthetic = pools
    sign_pool(human, key)
    sign_pool(synthetic, key)
    pub = f"{key}.pub"
    base = ["curate", "--human", human, "--synthetic", synthetic, "--human-fraction", "0.5", "--size", 20]
    info = json.loads(run(*base, "--public-key", pub, "--out", tmp_path / "ok", "--json").stdout)
    assert [p["trust"]["signed"] for p in info["pools"]] == [True, True] and info["allow_unsigned"] is False
    # an unlisted shard of 300 machine records slipped into the signed human pool
    jsonl(human / "more.jsonl", [f"generated sentence {i}" for i in range(300)])
    for extra in ([], ["--allow-unsigned"]):
        res = run(*base, "--public-key", pub, *extra, "--out", tmp_path / "m", code=2)
        assert "more.jsonl: added" in res.output
    assert not (tmp_path / "m" / "manifest.json").exists()
    (human / "more.jsonl").unlink()
    # a broken signature is refused, --allow-unsigned or not, and never becomes a parent
    env = json.loads((human / "manifest.json").read_text())
    sig = env["signatures"][0]["sig"]
    env["signatures"][0]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    (human / "manifest.json").write_text(json.dumps(env))
    for extra in ([], ["--allow-unsigned"]):
        res = run(*base, "--public-key", pub, *extra, "--out", tmp_path / "m", code=2)
        assert "does not verify" in res.output and "broken signature" in res.output
    # a signed pool needs the signer's key
    sign_pool(human, key)
    res = run(*base, "--out", tmp_path / "m", code=2)
    assert "no trusted public key given" in res.output and "--public-key" in res.output


def test_unsigned_pools_need_allow_unsigned_which_the_manifest_records(pools, tmp_path):
    human, synthetic = pools
    base = ["curate", "--human", human, "--synthetic", synthetic, "--human-fraction", "0.5", "--size", 20]
    res = run(*base, "--out", tmp_path / "m", code=2)
    assert "no manifest.json to verify the pool against" in res.output and "--allow-unsigned" in res.output
    run("provenance", "build", human)  # an unsigned manifest is not enough either
    res = run(*base, "--out", tmp_path / "m", code=2)
    assert "not signed" in res.output
    run(*base, "--allow-unsigned", "--out", tmp_path / "m")
    statement = json.loads((tmp_path / "m" / "manifest.json").read_text())
    curation = statement["predicate"]["curation"]
    assert curation["allow_unsigned"] is True and curation["request"]["allow_unsigned"] is True
    assert [(p["trust"]["manifest"], p["trust"]["signed"]) for p in curation["pools"]] == \
        [("../human/manifest.json", False), (None, False)]
    # the unsigned manifest's files are still checked
    jsonl(human / "b.jsonl", ["sneaked in"])
    res = run(*base, "--allow-unsigned", "--out", tmp_path / "n", code=2)
    assert "b.jsonl: added" in res.output


def test_unreadable_records_are_never_data(tmp_path):
    human = tmp_path / "h.jsonl"
    lines = [json.dumps({"text": f"good human text {i}"}).encode() for i in range(6)]
    lines += [b'{"text": "caf\xe9 latin-1"}', b'"a JSON string"', b"[1, 2]", b"{not json"]
    human.write_bytes(b"\n".join(lines) + b"\n")
    res = run("curate", "--allow-unsigned", "--human", human, "--human-fraction", "1", "--size", 6,
              "--out", tmp_path / "m", "--json")
    assert json.loads(res.stdout)["pools"][0]["unreadable"] == 4
    texts = {r["text"] for r in read_mix(tmp_path / "m")}
    assert texts == {f"good human text {i}" for i in range(6)}
    res = run("curate", "--allow-unsigned", "--human", human, "--human-fraction", "1", "--size", 7,
              "--out", tmp_path / "n", code=2)
    assert "6 eligible records (10 records read, 4 left out: 4 unreadable)" in res.output


def fake_scan(folder, pool_file, decisions):
    """A `scan --out` folder for one jsonl pool file: summary with its sha256, row-aligned attributes."""
    from collapseguard.io.columns import text_sha256
    from collapseguard.io.shards import Shard, shard_sha256

    texts = [json.loads(line)["text"] for line in pool_file.read_text().splitlines() if line.strip()]
    (folder / "attributes").mkdir(parents=True)
    pq.write_table(pa.table({"sha256": [text_sha256(t) for t in texts], "decision": decisions,
                             "reason": [""] * len(texts)}), folder / "attributes" / f"{pool_file.name}.parquet")
    sha = shard_sha256(Shard(pool_file, pool_file.name, "jsonl"))
    (folder / "summary.json").write_text(json.dumps({"text_column": "text",
                                                     "shards": [{"shard": pool_file.name, "input_sha256": sha}]}))
    return folder


def test_abstentions_are_not_human_unless_asked(pools, tmp_path):
    human, synthetic = pools
    decisions = ["abstain" if i % 4 == 0 else "human" for i in range(40)]  # 10 abstentions
    scan = fake_scan(tmp_path / "scan", human / "a.jsonl", decisions)
    base = ["curate", "--allow-unsigned", "--human", human, "--attributes", scan, "--synthetic", synthetic]
    res = run(*base, "--human-fraction", "1", "--size", 31, "--out", tmp_path / "m", code=2)
    assert "30 eligible records" in res.output and "10 the scan abstained on" in res.output
    info = json.loads(run(*base, "--human-fraction", "1", "--size", 30, "--out", tmp_path / "m", "--json").stdout)
    assert info["pools"][0]["abstained_left_out"] == 10 and info["abstained_kept_as_human"] == 0
    assert all(r["decision"] == "human" for r in read_mix(tmp_path / "m"))
    res = run(*base, "--keep", "human+abstain", "--human-fraction", "1", "--size", 40, "--out", tmp_path / "k")
    assert "10 human records of the mix are ones the scan abstained on" in res.output
    curation = json.loads((tmp_path / "k" / "manifest.json").read_text())["predicate"]["curation"]
    assert curation["keep"] == "human+abstain" and curation["abstained_kept_as_human"] == 10
    assert sum(r["decision"] == "abstain" for r in read_mix(tmp_path / "k")) == 10
    assert curation["pools"][0]["abstained_eligible_as_human"] == 10
    # a smaller mix states how many of its own records are abstentions, not the pool's
    info = json.loads(run(*base, "--keep", "human+abstain", "--human-fraction", "1", "--size", 12,
                          "--out", tmp_path / "s", "--json").stdout)
    mixed = sum(r["decision"] == "abstain" for r in read_mix(tmp_path / "s"))
    assert info["abstained_kept_as_human"] == mixed < 12


def test_attributes_of_another_folder_are_refused(pools, tmp_path):
    human, synthetic = pools
    other = tmp_path / "other"
    other.mkdir()
    jsonl(other / "x.jsonl", [f"other text {i}" for i in range(40)])
    scan = fake_scan(tmp_path / "scan", other / "x.jsonl", ["synthetic"] * 40)
    res = run("curate", "--allow-unsigned", "--human", human, "--attributes", scan, "--synthetic", synthetic,
              "--human-fraction", "0.5", "--size", 20, "--out", tmp_path / "m", code=2)
    assert "matches no shard of the pools" in res.output


def test_no_absolute_local_path_is_published(pools, tmp_path, key):
    human, synthetic = pools
    sign_pool(human, key)
    out = tmp_path / "mix"
    run("curate", "--human", human, "--synthetic", synthetic, "--public-key", f"{key}.pub", "--allow-unsigned",
        "--human-fraction", "0.5", "--size", 20, "--key", key, "--out", out)
    roots = {str(tmp_path), str(tmp_path.resolve())}
    for path in out.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            if path.suffix == ".json":
                doc = json.loads(raw)
                if "payload" in doc:
                    raw = __import__("base64").b64decode(doc["payload"])
            assert not any(r.encode() in raw for r in roots), path
    rows = read_mix(out)
    assert {r["source"].rsplit("#", 1)[0] for r in rows} == {"../human/a.jsonl", "../synthetic/s.jsonl"}
    statement = json.loads(__import__("base64").b64decode(json.loads((out / "manifest.json").read_text())["payload"]))
    (parent,) = statement["predicate"]["parents"]
    assert parent["path"] == "../human/manifest.json"
    assert parent["sha256"] == hashlib.sha256((human / "manifest.json").read_bytes()).hexdigest()
    shutil.rmtree(out)
