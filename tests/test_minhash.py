"""MinHash signatures equal datasketch's (the reference) on random, unicode, empty and short texts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from collapseguard.detectors.dedup import kernels as minhash_kernels
from collapseguard.detectors.dedup import minhash as mh
from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles
from collapseguard.errors import CollapseguardError

datasketch = pytest.importorskip("datasketch")

# Tokens include look-alikes of whitespace that str.split() does not split on.
WORDS = ["the", "cat", "sat", "a", "naïve", "café", "日本語", "😀", "x" * 70, "Ωμέγα", "ß", "a\u200bb", "\u2060", "\u180e", "\u00ad"]
SPACES = [" ", "  ", "\t", "\n", " \r\n ", *(chr(c) for c in range(0x3001) if chr(c).isspace())]


def random_texts(rng: random.Random, count: int) -> list[str]:
    texts = ["", "   ", "\u00a0\n", "one", "two words", "a b c d", "a b c d e", "a b c d e f"]
    for _ in range(count):
        n = rng.choice([0, 1, 3, 4, 5, 6, 12, 40, 200])
        parts = []
        for _ in range(n):
            parts += [rng.choice(WORDS), rng.choice(SPACES)]
        texts.append(rng.choice(["", " ", "\t"]) + "".join(parts))
    return texts


def xxh64_hashfunc(scheme):
    """datasketch hashfunc for shingle_hash="xxh64", from the xxhash package (an independent XXH64)."""
    xxhash = pytest.importorskip("xxhash")
    if scheme == "affine64":
        return xxhash.xxh64_intdigest
    return lambda b: xxhash.xxh64_intdigest(b) & 0xFFFFFFFF


def reference(texts, num_perm, seed, ngram, scheme, hashfunc=None):
    out = []
    for text in texts:
        m = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=hashfunc)
        for s in shingles(text, ngram):
            m.update(s.encode("utf-8"))
        out.append(m.hashvalues)
    return np.array(out)


@pytest.mark.parametrize("scheme", ["affine32", "affine64", "legacy"])
@pytest.mark.parametrize("compiled", [True, False])
def test_signatures_equal_datasketch(scheme, compiled, monkeypatch):
    if compiled and not minhash_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(minhash_kernels, "AVAILABLE", compiled)
    texts = random_texts(random.Random(7), 60)
    for num_perm, seed, ngram in [(128, 1, 5), (64, 42, 3), (7, 3, 1)]:
        got = minhash_signatures(texts, num_perm=num_perm, seed=seed, ngram=ngram, scheme=scheme)
        want = reference(texts, num_perm, seed, ngram, scheme)
        assert got.shape == (len(texts), num_perm)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("scheme", ["affine32", "affine64", "legacy"])
@pytest.mark.parametrize("compiled", [True, False])
def test_xxh64_signatures_equal_datasketch_given_its_hashfunc(scheme, compiled, monkeypatch):
    """shingle_hash="xxh64": each row equals datasketch's MinHash with hashfunc = XXH64 (seed 0) of
    the shingle's UTF-8 (low 32 bits for the 32-bit schemes), as the xxhash package computes it."""
    if compiled and not minhash_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    hashfunc = xxh64_hashfunc(scheme)
    monkeypatch.setattr(minhash_kernels, "AVAILABLE", compiled)
    texts = random_texts(random.Random(5), 60)
    for num_perm, seed, ngram in [(128, 1, 5), (7, 3, 1)]:
        got = minhash_signatures(texts, num_perm=num_perm, seed=seed, ngram=ngram, scheme=scheme, shingle_hash="xxh64")
        np.testing.assert_array_equal(got, reference(texts, num_perm, seed, ngram, scheme, hashfunc))
    assert not np.array_equal(got, minhash_signatures(texts, num_perm=7, seed=3, ngram=1, scheme=scheme))


def test_xxh64_kernel_equals_xxhash():
    """Every input length class of XXH64 (stripes of 32, words of 8 and 4, single bytes)."""
    xxhash = pytest.importorskip("xxhash")
    rng = random.Random(2)
    for length in [*range(70), 100, 257, 1000]:
        data = bytes(rng.randrange(256) for _ in range(length))
        assert int(minhash_kernels.xxh64(np.frombuffer(data, np.uint8), 0, length)) == xxhash.xxh64_intdigest(data)
    texts = random_texts(random.Random(4), 30)
    hashes, offsets = mh.shingle_hash_sets(texts, 3, "xxh64")
    for i, text in enumerate(texts):
        want = np.unique(np.array([xxhash.xxh64_intdigest(s.encode()) for s in shingles(text, 3)], dtype=np.uint64))
        np.testing.assert_array_equal(hashes[offsets[i] : offsets[i + 1]], want)


def test_default_scheme_is_datasketch_default():
    texts = ["the quick brown fox jumps over the lazy dog", ""]
    m = datasketch.MinHash(num_perm=128, seed=1)
    for s in shingles(texts[0]):
        m.update(s.encode("utf-8"))
    sig = minhash_signatures(texts)
    np.testing.assert_array_equal(sig[0], m.hashvalues)
    np.testing.assert_array_equal(sig[1], datasketch.MinHash(num_perm=128, seed=1).hashvalues)


def test_shingle_definition():
    assert shingles("a  b\tc d e f", 5) == ["a b c d e", "b c d e f"]
    assert shingles("a b", 5) == ["a b"]
    assert shingles(" \n ", 5) == []
    assert shingles("x x x x x x x", 2) == ["x x"]


@pytest.mark.parametrize("compiled", [True, False])
def test_shingle_hashes_match_hashlib_sets(compiled, monkeypatch):
    if compiled and not minhash_kernels.AVAILABLE:
        pytest.skip("numba not installed")
    monkeypatch.setattr(minhash_kernels, "AVAILABLE", compiled)
    texts = random_texts(random.Random(3), 30)
    hashes, offsets = mh.shingle_hash_sets(texts, 4)
    for i, text in enumerate(texts):
        want = np.unique(mh.sha1_hash64_array(shingles(text, 4)))
        np.testing.assert_array_equal(hashes[offsets[i] : offsets[i + 1]], want)


def test_bad_settings_refused():
    with pytest.raises(CollapseguardError, match="ngram"):
        minhash_signatures(["a"], ngram=0)
    with pytest.raises(CollapseguardError, match="scheme"):
        minhash_signatures(["a"], scheme="affine16")
    with pytest.raises(CollapseguardError, match="shingle hash"):
        minhash_signatures(["a"], shingle_hash="md5")
    with pytest.raises(CollapseguardError, match="record 1"):
        minhash_signatures(["a", b"bytes"])


def test_lazy_package_exports():
    import subprocess
    import sys

    code = (
        "import sys, collapseguard.detectors as d; "
        "assert 'numba' not in sys.modules and 'collapseguard.detectors.dedup.minhash' not in sys.modules; "
        "from collapseguard.detectors import shingles, minhash_signatures; "
        "assert shingles('a b c', 2) == ['a b', 'b c'] and minhash_signatures(['a b c']).shape == (1, 128)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_batches_and_threads_do_not_change_signatures(monkeypatch):
    """Small internal batches and any thread count give the same rows (and the errors name the
    record by its index in the whole input)."""
    texts = random_texts(random.Random(11), 80)
    want = reference(texts, 32, 5, 3, "affine32")
    np.testing.assert_array_equal(minhash_signatures(texts, 32, 5, 3, batch_chars=50), want)
    if minhash_kernels.AVAILABLE:
        import numba

        before = numba.get_num_threads()
        monkeypatch.setattr(minhash_kernels, "PARALLEL_MIN_WORK", 0)  # parallel kernels even for tiny inputs
        try:
            for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
                numba.set_num_threads(threads)
                np.testing.assert_array_equal(minhash_signatures(texts, 32, 5, 3, batch_chars=300), want)
                for scheme in ("affine64", "legacy"):
                    np.testing.assert_array_equal(minhash_signatures(texts, 16, 5, 3, scheme),
                                                  reference(texts, 16, 5, 3, scheme))
                np.testing.assert_array_equal(minhash_signatures(texts, 32, 5, 3, shingle_hash="xxh64", batch_chars=300),
                                              minhash_signatures(texts, 32, 5, 3, shingle_hash="xxh64"))
        finally:
            numba.set_num_threads(before)
    with pytest.raises(CollapseguardError, match="record 41"):
        minhash_signatures(texts[:41] + ["\ud800 lone surrogate"], batch_chars=10)


def test_memory_is_bounded_by_the_batch_not_the_input():
    """Peak traced memory beyond the output grows with the batch size, not with the input."""
    import tracemalloc

    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(500)]

    def peak(n_texts: int) -> int:
        texts = [" ".join(rng.choice(vocab) for _ in range(150)) for _ in range(n_texts)]
        minhash_signatures(texts[:2], batch_chars=20_000)
        tracemalloc.start()
        minhash_signatures(texts, batch_chars=20_000)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top - n_texts * 128 * 4  # minus the output itself

    small, large = peak(200), peak(3000)
    assert large < 2 * small


def test_xxh64_without_numba_matches_the_compiled_kernel():
    """With numba absent the same XXH64 code runs as Python on numpy scalars (the fallback path)."""
    import json
    import subprocess
    import sys

    texts = random_texts(random.Random(9), 12)
    code = (
        "import json, sys; sys.modules['numba'] = None\n"
        "from collapseguard.detectors.dedup import kernels, minhash\n"
        "assert not kernels.AVAILABLE\n"
        "texts = json.loads(sys.stdin.read())\n"
        "print(json.dumps(minhash.minhash_signatures(texts, 16, 1, 3, shingle_hash='xxh64').tolist()))"
    )

    out = subprocess.run([sys.executable, "-W", "error", "-c", code], input=json.dumps(texts), capture_output=True,
                         text=True, check=True)
    want = minhash_signatures(texts, 16, 1, 3, shingle_hash="xxh64")
    np.testing.assert_array_equal(np.array(json.loads(out.stdout), dtype=np.uint32), want)
