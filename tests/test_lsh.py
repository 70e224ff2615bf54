"""LSH: band choice against datasketch's optimiser, recall on planted near-duplicates against
datasketch's default MinHashLSH, and clusters built only from exactly verified edges."""

from __future__ import annotations

import random

import numpy as np
import pytest

from collapseguard.detectors.dedup.lsh import (
    MinHashLSH,
    choose_bands,
    collision_probability,
    near_duplicate_clusters,
)
from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles
from collapseguard.errors import CollapseguardError

datasketch = pytest.importorskip("datasketch")


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(shingles(a, n)), set(shingles(b, n))
    return len(sa & sb) / len(sa | sb)


def planted_pairs(rng: random.Random, count: int, length: int = 150):
    """Base documents and edited copies with true Jaccard spread over [0.8, 1)."""
    vocab = [f"w{i}" for i in range(20000)]
    bases, variants, truth = [], [], []
    while len(bases) < count:
        words = [rng.choice(vocab) for _ in range(length)]
        copy = list(words)
        for pos in rng.sample(range(length), rng.randint(1, 5)):
            copy[pos] = rng.choice(vocab)
        a, b = " ".join(words), " ".join(copy)
        j = exact_jaccard(a, b)
        if j >= 0.8:
            bases.append(a)
            variants.append(b)
            truth.append(j)
    return bases, variants, np.array(truth)


@pytest.mark.parametrize("threshold,num_perm", [(0.8, 128), (0.5, 64), (0.9, 96)])
def test_equal_weights_reproduce_datasketch_choice(threshold, num_perm):
    from datasketch.lsh import _optimal_param

    assert choose_bands(threshold, num_perm, 0.5) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_recall_weighting_raises_the_s_curve_at_the_threshold():
    ours = choose_bands(0.8, 128)
    default = choose_bands(0.8, 128, 0.5)
    assert collision_probability(0.8, *ours) > collision_probability(0.8, *default)


def test_recall_on_planted_near_duplicates_beats_datasketch_default():
    bases, variants, truth = planted_pairs(random.Random(11), 250)
    n = len(bases)
    ours = MinHashLSH(threshold=0.8, num_perm=128)
    ours.insert(minhash_signatures(bases))
    q, item = ours.query(minhash_signatures(variants))
    found_ours = np.zeros(n, dtype=bool)
    found_ours[q[q == item]] = True

    ref = datasketch.MinHashLSH(threshold=0.8, num_perm=128)
    for i, text in enumerate(bases):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        ref.insert(i, m)
    found_ref = np.zeros(n, dtype=bool)
    for i, text in enumerate(variants):
        m = datasketch.MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        found_ref[i] = i in ref.query(m)

    recall_ours, recall_ref = found_ours.mean(), found_ref.mean()
    assert recall_ours > recall_ref
    # Each measured recall sits near its S-curve averaged over the planted Jaccards (binomial band).
    for recall, (b, r) in [(recall_ours, (ours.bands, ours.rows)), (recall_ref, (ref.b, ref.r))]:
        expected = collision_probability(truth, b, r).mean()
        assert abs(recall - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 0.02


@pytest.mark.parametrize("path", ["serial", "parallel", "numpy"])
def test_query_equals_brute_force_band_matching(path, monkeypatch):
    from collapseguard.detectors.dedup import kernels

    if path != "numpy" and not kernels.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(kernels, "PARALLEL_MIN_WORK", 0 if path == "parallel" else 10**12)
    monkeypatch.setattr(kernels, "AVAILABLE", path != "numpy")
    rng = random.Random(5)
    texts = [" ".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 12))) for _ in range(80)]
    sig = minhash_signatures(texts, num_perm=32, ngram=2)
    lsh = MinHashLSH(threshold=0.5, num_perm=32, bands=8, rows=4)
    lsh.insert(sig[:50])
    q, item = lsh.query(sig[50:])
    got = set(zip(q.tolist(), item.tolist(), strict=True))
    want = {
        (i, j)
        for i in range(30)
        for j in range(50)
        if any(np.array_equal(sig[50 + i, 4 * b : 4 * b + 4], sig[j, 4 * b : 4 * b + 4]) for b in range(8))
    }
    assert got == want
    order = np.lexsort((item, q))
    assert np.array_equal(order, np.arange(len(q)))  # sorted by query, then item
    ci, cj = lsh.candidate_pairs()
    assert set(zip(ci.tolist(), cj.tolist(), strict=True)) == {
        (i, j) for i in range(50) for j in range(i + 1, 50)
        if any(np.array_equal(sig[i, 4 * b : 4 * b + 4], sig[j, 4 * b : 4 * b + 4]) for b in range(8))
    }


def test_clusters_use_only_verified_edges():
    rng = random.Random(2)
    vocab = [f"v{i}" for i in range(5000)]
    a = [rng.choice(vocab) for _ in range(120)]
    b = list(a)
    b[60] = "zz"  # J(a, b) high
    c = list(b)
    for pos in range(0, 120, 9):
        c[pos] = rng.choice(vocab)  # J(b, c) well below 0.8
    unrelated = [" ".join(rng.choice(vocab) for _ in range(120)) for _ in range(5)]
    texts = [" ".join(a), " ".join(b), " ".join(c), *unrelated, " ".join(a), ""]
    result = near_duplicate_clusters(texts, threshold=0.8)
    for i, j, jac in zip(result.edges_i, result.edges_j, result.jaccard, strict=True):
        assert jac == pytest.approx(exact_jaccard(texts[i], texts[j]))
        assert jac >= 0.8
    assert result.groups() == [[0, 1, 8]]
    assert exact_jaccard(texts[1], texts[2]) < 0.8


def test_bad_lsh_settings_refused():
    with pytest.raises(CollapseguardError, match="exceeds num_perm"):
        MinHashLSH(num_perm=16, bands=8, rows=4)
    with pytest.raises(CollapseguardError, match="num_perm=128"):
        MinHashLSH().insert(np.zeros((2, 64), dtype=np.uint32))
    with pytest.raises(CollapseguardError, match="threshold"):
        choose_bands(1.5, 128)


def test_exact_copies_cluster_without_quadratic_candidates():
    rng = random.Random(6)
    vocab = [f"c{i}" for i in range(5000)]
    doc = " ".join(rng.choice(vocab) for _ in range(60))
    near = doc.replace(doc.split()[30], "qqq", 1)
    others = [" ".join(rng.choice(vocab) for _ in range(60)) for _ in range(4)]
    texts = [doc] * 50 + [near] + others + [doc]
    result = near_duplicate_clusters(texts, threshold=0.8)
    assert result.groups() == [[*range(51), 55]]
    assert result.candidates < 60  # 50 copies checked against their first, not 50^2 pairs
    for i, j, jac in zip(result.edges_i, result.edges_j, result.jaccard, strict=True):
        assert jac == pytest.approx(exact_jaccard(texts[i], texts[j])) and jac >= 0.8
