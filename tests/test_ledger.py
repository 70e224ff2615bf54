"""The on-disk ledger: containment finds pasted generations, settings mismatches are refused."""

from __future__ import annotations

import random

import numpy as np
import pytest

from collapseguard.detectors.dedup.ledger import (
    Ledger,
    MinHashConfig,
    MinHashDetector,
    SketchConfig,
)
from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles
from collapseguard.errors import CollapseguardError

VOCAB = [f"t{i}" for i in range(3000)]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def set_containment(record: str, item: str, n: int = 5) -> float:
    a, b = set(shingles(record, n)), set(shingles(item, n))
    return len(a & b) / len(b)


def test_pasted_generation_found_by_containment(tmp_path):
    rng = random.Random(1)
    generations = [words(rng, 60) for _ in range(20)]
    ledger = Ledger.create(tmp_path / "L")
    assert ledger.add(generations[:10], [f"g{i}" for i in range(10)]) == 10
    assert Ledger.open(tmp_path / "L").add(generations[10:], [f"g{i}" for i in range(10, 20)]) == 10
    ledger = Ledger.open(tmp_path / "L")
    assert len(ledger) == 20 and len(list((tmp_path / "L").glob("chunk-*.npz"))) == 2

    document = words(rng, 400) + " " + generations[13] + " " + words(rng, 400)
    clean = words(rng, 500)
    matches = ledger.query([document, clean], threshold=0.8)
    assert [(m.record, m.ledger_id) for m in matches] == [(0, "g13")]
    m = matches[0]
    assert m.containment == pytest.approx(set_containment(document, generations[13]))
    assert m.jaccard < 0.2  # a Jaccard index alone would miss it
    # Jaccard mode (LSH + exact verification) does not report the pasted copy, but finds an edit.
    edited = generations[4].replace(generations[4].split()[30], "zzz")
    jac = ledger.query([document, edited], threshold=0.8, mode="jaccard")
    assert [(j.record, j.ledger_id) for j in jac] == [(1, "g4")]


def test_containment_equals_python_sets(tmp_path):
    rng = random.Random(4)
    items = [words(rng, rng.randint(3, 40)) for _ in range(15)]
    records = [" ".join(rng.sample(items, 3)) + " " + words(rng, 10) for _ in range(8)] + ["", words(rng, 2)]
    ledger = Ledger.create(tmp_path / "L", SketchConfig(ngram=3))
    ledger.add(items, [str(i) for i in range(15)])
    got = {(m.record, m.ledger_id): m.containment for m in ledger.query(records, threshold=0.01)}
    want = {
        (r, str(i)): set_containment(rec, item, 3)
        for r, rec in enumerate(records)
        for i, item in enumerate(items)
        if set_containment(rec, item, 3) >= 0.01
    }
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value)
    scores = MinHashDetector(MinHashConfig(str(tmp_path / "L"))).score(records)
    assert np.isnan(scores[8])
    for r, rec in enumerate(records[:8]):
        assert scores[r] == pytest.approx(max(set_containment(rec, item, 3) for item in items))


def test_stored_signatures_equal_minhash_signatures(tmp_path):
    texts = ["a b c d e f g", "x y z", "naïve café 日本語 tokens here and there"]
    ledger = Ledger.create(tmp_path / "L", SketchConfig(num_perm=64, seed=9))
    ledger.add(texts, ["a", "b", "c"])
    again = Ledger.open(tmp_path / "L")
    np.testing.assert_array_equal(again.items.signatures, minhash_signatures(texts, num_perm=64, seed=9))


def test_settings_mismatch_refused_naming_the_settings(tmp_path):
    Ledger.create(tmp_path / "L", SketchConfig(num_perm=64, seed=3, ngram=4))
    with pytest.raises(CollapseguardError) as err:
        Ledger.open(tmp_path / "L", SketchConfig(num_perm=128, seed=3, ngram=5))
    message = str(err.value)
    assert "num_perm: ledger 64, requested 128" in message
    assert "ngram: ledger 4, requested 5" in message
    assert "seed" not in message
    with pytest.raises(CollapseguardError, match="seed: ledger 3, requested 1"):
        Ledger.create(tmp_path / "L", SketchConfig(num_perm=64, seed=1, ngram=4))
    Ledger.open(tmp_path / "L", {"seed": 3})  # matching settings open fine


def test_bad_ledger_inputs(tmp_path):
    with pytest.raises(CollapseguardError, match="no such directory"):
        Ledger.open(tmp_path / "missing")
    ledger = Ledger.create(tmp_path / "L")
    assert ledger.add(["", "  "], ["e1", "e2"]) == 0
    ledger.add(["one two three"], ["x"])
    with pytest.raises(CollapseguardError, match="already in the ledger"):
        ledger.add(["four five"], ["x"])
    (tmp_path / "L" / "header.json").write_text("{not json")
    with pytest.raises(CollapseguardError, match="unreadable ledger header"):
        Ledger.open(tmp_path / "L")


def test_detector_through_registry_and_fingerprint(tmp_path):
    from collapseguard.detectors.registry import build_detector

    rng = random.Random(8)
    gen = words(rng, 40)
    Ledger.create(tmp_path / "L", SketchConfig(ngram=4)).add([gen], ["g"])
    det = build_detector("minhash_v1", {"model_dir": str(tmp_path / "L")})
    assert det.name == "minhash_v1" and det.config.ngram == 4
    doc = words(rng, 100) + " " + gen
    np.testing.assert_allclose(det.score([doc, words(rng, 50)]), [1.0, 0.0])
    Ledger.create(tmp_path / "M", SketchConfig(ngram=5)).add([gen], ["g"])
    assert MinHashDetector(MinHashConfig(str(tmp_path / "M"))).fingerprint() != det.fingerprint()
    with pytest.raises(CollapseguardError, match="ngram: ledger 4, requested 5"):
        build_detector("minhash_v1", {"model_dir": str(tmp_path / "L"), "ngram": "5"})


def test_ten_megabyte_record(tmp_path):
    rng = random.Random(9)
    gen = words(rng, 80)
    ledger = Ledger.create(tmp_path / "L")
    ledger.add([gen], ["g"])
    filler = words(rng, 2000)
    big = " ".join([filler] * 900)  # ~10 MB
    assert len(big.encode()) > 9_000_000
    matches = ledger.query([big[: len(big) // 2] + " " + gen + " " + big[len(big) // 2 :]])
    assert [(m.record, m.ledger_id, m.containment) for m in matches] == [(0, "g", 1.0)]


def test_previous_state_files_survive_one_commit(tmp_path):
    """A reader that has just read the old state.json can still open its files after one more add."""
    import json

    rng = random.Random(3)
    ledger = Ledger.create(tmp_path / "L")
    ledger.add([words(rng, 30)], ["a"])
    first = json.loads((tmp_path / "L" / "state.json").read_text())["index"]["keys"]
    ledger.add([words(rng, 30)], ["b"])
    assert (tmp_path / "L" / first).exists()
    ledger.add([words(rng, 30)], ["c"])
    assert not (tmp_path / "L" / first).exists()
    assert len(Ledger.open(tmp_path / "L")) == 3


def test_shingle_hash_recorded_and_never_mixed(tmp_path):
    """An xxh64 ledger stores xxh64 shingle sets, finds pasted text, and refuses sha1 sketches;
    a header from before the setting (no shingle_hash, same fingerprint) opens as sha1."""
    import hashlib
    import json

    from collapseguard.detectors.dedup import store

    xxhash = pytest.importorskip("xxhash")
    rng = random.Random(8)
    generations = [words(rng, 50) for _ in range(6)]
    fast = Ledger.create(tmp_path / "X", SketchConfig(shingle_hash="xxh64"))
    fast.add(generations, [f"g{i}" for i in range(6)])
    assert json.loads((tmp_path / "X" / "header.json").read_text())["shingle_hash"] == "xxh64"
    fast = Ledger.open(tmp_path / "X")
    want = np.unique(np.array([xxhash.xxh64_intdigest(s.encode()) for s in shingles(generations[2])], dtype=np.uint64))
    items = fast.items
    np.testing.assert_array_equal(items.set_hashes[items.set_offsets[2] : items.set_offsets[3]], want)
    np.testing.assert_array_equal(items.signatures, minhash_signatures(generations, shingle_hash="xxh64"))
    document = words(rng, 200) + " " + generations[2] + " " + words(rng, 200)
    assert [(m.record, m.ledger_id) for m in fast.query([document], threshold=0.9)] == [(0, "g2")]
    with pytest.raises(CollapseguardError, match="shingle_hash: ledger 'xxh64', requested 'sha1'"):
        Ledger.open(tmp_path / "X", {"shingle_hash": "sha1"})
    with pytest.raises(CollapseguardError, match="shingle_hash: ledger 'xxh64', requested 'sha1'"):
        Ledger.create(tmp_path / "X", SketchConfig())
    with pytest.raises(CollapseguardError, match="shingle hash"):
        SketchConfig(shingle_hash="md5")

    Ledger.create(tmp_path / "S").add(generations, [f"g{i}" for i in range(6)])
    path = tmp_path / "S" / "header.json"
    header = json.loads(path.read_text())
    assert header["shingle_hash"] == "sha1"
    del header["shingle_hash"]  # as written before the setting existed
    old = {k: header.get(k) for k in store.SETTINGS}
    header["fingerprint"] = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    assert header["fingerprint"] == store.settings_fingerprint(header)
    path.write_text(json.dumps(header))
    state = json.loads((tmp_path / "S" / "state.json").read_text())
    (tmp_path / "S" / "state.json").write_text(json.dumps({**state, "fingerprint": header["fingerprint"]}))
    old_ledger = Ledger.open(tmp_path / "S")
    assert old_ledger.config.shingle_hash == "sha1"
    assert [(m.record, m.ledger_id) for m in old_ledger.query([document], threshold=0.9)] == [(0, "g2")]
    with pytest.raises(CollapseguardError, match="shingle_hash: ledger 'sha1', requested 'xxh64'"):
        Ledger.open(tmp_path / "S", {"shingle_hash": "xxh64"})
