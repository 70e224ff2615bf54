"""Locality-sensitive hashing over MinHash signatures, tuned for recall, with exact verification.

Banding (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3): a signature of
``bands * rows`` values is cut into ``bands`` bands; two documents are candidates when any band
is identical, which happens with probability ``P(s) = 1 - (1 - s^rows)^bands`` for Jaccard ``s``.
datasketch picks (bands, rows) minimising the equal-weighted areas of false positives below and
false negatives above the threshold (``lsh.py: _optimal_param``); at 0.8 and 128 permutations
that is (9, 13) with P(0.8) = 0.40. Because every candidate here is verified by exact Jaccard on
the stored shingle-hash sets, false positives only cost time, so ``choose_bands`` weights false
negatives ``recall_weight`` = 0.9 by default: (14, 9), P(0.8) = 0.87.

Index layout: one uint64 key per (document, band); queries are vectorised ``searchsorted``
look-ups into per-band sorted key arrays, not Python dict probes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from collapseguard.detectors.dedup import kernels
from collapseguard.detectors.dedup.minhash import (
    fmix,
    shingle_hashes,
    signatures_from_hashes,
    unique_per_document,
)
from collapseguard.errors import CollapseguardError


def collision_probability(s, bands: int, rows: int):
    """P(two documents with Jaccard s share at least one band) = 1 - (1 - s^rows)^bands."""
    return 1.0 - (1.0 - np.asarray(s, dtype=float) ** rows) ** bands


def _area(fn, lo: float, hi: float, points: int = 513) -> float:
    x = np.linspace(lo, hi, points)
    return float(np.trapezoid(fn(x), x))


def false_positive_area(threshold: float, bands: int, rows: int) -> float:
    """∫_0^t P(s) ds: the chance mass of candidates below the threshold (datasketch's FP)."""
    return _area(lambda s: collision_probability(s, bands, rows), 0.0, threshold)


def false_negative_area(threshold: float, bands: int, rows: int) -> float:
    """∫_t^1 (1 - P(s)) ds: the mass of true pairs above the threshold that are missed."""
    return _area(lambda s: 1.0 - collision_probability(s, bands, rows), threshold, 1.0)


@lru_cache(maxsize=64)
def choose_bands(threshold: float, num_perm: int, recall_weight: float = 0.9) -> tuple[int, int]:
    """(bands, rows) minimising (1-w)·FP + w·FN with bands·rows <= num_perm."""
    if not 0.0 < threshold < 1.0:
        raise CollapseguardError(f"threshold {threshold} must be between 0 and 1 (exclusive); pass e.g. --threshold 0.8")
    if not 0.0 <= recall_weight <= 1.0:
        raise CollapseguardError(f"recall_weight {recall_weight} must be in [0, 1]")
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            err = (1 - recall_weight) * false_positive_area(threshold, bands, rows)
            err += recall_weight * false_negative_area(threshold, bands, rows)
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (document, band): a fmix64 chain over the band's values. (n, bands)."""
    sig = np.asarray(signatures)
    if sig.ndim != 2 or sig.shape[1] < bands * rows:
        raise CollapseguardError(
            f"signatures of shape {sig.shape} cannot fill {bands} bands x {rows} rows; "
            "compute them with the index's num_perm"
        )
    if kernels.AVAILABLE:
        return kernels.run(kernels.band_keys, sig.shape[0] * bands, np.ascontiguousarray(sig), bands, rows,
                           min_work=kernels.LSH_PARALLEL_MIN_WORK)
    values = sig[:, : bands * rows].astype(np.uint64).reshape(len(sig), bands, rows)
    keys = np.full((len(sig), bands), np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = fmix(keys ^ values[:, :, r], 64) + np.uint64(r + 1)
    return keys


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, position) for every position in each [lo[i], hi[i])."""
    counts = hi - lo
    owner = np.repeat(np.arange(len(lo)), counts)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return owner, starts + np.arange(int(counts.sum()))


@dataclass
class MinHashLSH:
    """An in-memory banded LSH index over signatures; items are numbered 0, 1, ... as inserted."""

    threshold: float = 0.8
    num_perm: int = 128
    bands: int | None = None
    rows: int | None = None
    recall_weight: float = 0.9

    def __post_init__(self):
        if (self.bands is None) != (self.rows is None):
            raise CollapseguardError("give both bands and rows, or neither (they are then chosen for recall)")
        if self.bands is None:
            self.bands, self.rows = choose_bands(self.threshold, self.num_perm, self.recall_weight)
        if self.bands * self.rows > self.num_perm:
            raise CollapseguardError(
                f"bands x rows = {self.bands} x {self.rows} exceeds num_perm={self.num_perm}; lower them"
            )
        self._chunks: list[np.ndarray] = []
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None
        self._table: tuple | None = None  # per-band hash tables over the sorted keys (compiled path)

    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks)

    def recall_at_threshold(self) -> float:
        """The S-curve at the threshold: the chance a pair exactly at it becomes a candidate."""
        return float(collision_probability(self.threshold, self.bands, self.rows))

    def insert(self, signatures: np.ndarray) -> np.ndarray:
        """Add signatures (n, num_perm); returns their item ids."""
        self._check_width(signatures)
        start = len(self)
        self.insert_keys(band_keys(signatures, self.bands, self.rows))
        return np.arange(start, len(self))

    def insert_keys(self, keys: np.ndarray) -> None:
        """Add precomputed band keys (n, bands)."""
        self._chunks.append(np.asarray(keys, dtype=np.uint64))
        self._sorted = self._table = None

    def _check_width(self, signatures) -> None:
        width = np.shape(signatures)[1] if np.ndim(signatures) == 2 else None
        if width != self.num_perm:
            raise CollapseguardError(
                f"signatures have {width} permutations but the index uses num_perm={self.num_perm}; "
                "compute them with the same num_perm"
            )

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Per band, the sorted keys and the item order: two contiguous (bands, n) arrays."""
        if self._sorted is None:
            keys = np.concatenate(self._chunks) if self._chunks else np.zeros((0, self.bands), np.uint64)
            keys = np.ascontiguousarray(keys.T)  # (bands, n)
            order = np.argsort(keys, axis=1, kind="stable")
            self._sorted = (np.take_along_axis(keys, order, axis=1), order)
        return self._sorted

    def query(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs (query_index, item_id), unique, sharing at least one band."""
        self._check_width(signatures)
        return self.query_keys(band_keys(signatures, self.bands, self.rows))

    def query_keys(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs (query_index, item_id) for precomputed band keys (nq, bands), sorted."""
        sorted_keys, order = self._tables()
        if kernels.AVAILABLE:
            if self._table is None:
                self._table = kernels.run(kernels.band_tables, sorted_keys.size, sorted_keys)
            return _query_compiled(np.ascontiguousarray(keys, dtype=np.uint64), order, self._table)
        n_items = max(order.shape[1], 1)
        codes = []
        for band in range(self.bands):
            haystack = sorted_keys[band]
            query_order = np.argsort(keys[:, band])  # sorted needles make searchsorted ~3x faster
            needles = keys[query_order, band]
            lo = np.searchsorted(haystack, needles, side="left")
            hit = lo < len(haystack)
            hit[hit] = haystack[lo[hit]] == needles[hit]
            if not hit.any():
                continue
            lo, needles, query_order = lo[hit], needles[hit], query_order[hit]
            hi = np.searchsorted(haystack, needles, side="right")
            q, pos = expand_ranges(lo, hi)
            codes.append(query_order[q].astype(np.int64) * n_items + order[band, pos])
        code = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
        return code // n_items, code % n_items

    def candidate_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs (i, j), i < j, among the inserted items."""
        sorted_keys, order = self._tables()
        keys = np.empty_like(sorted_keys)
        np.put_along_axis(keys, order, sorted_keys, axis=1)
        i, j = self.query_keys(keys.T)
        keep = i < j
        return i[keep], j[keep]


def _query_compiled(keys, order, tables) -> tuple[np.ndarray, np.ndarray]:
    """Hash-table probe per (query, band), then each query's runs gathered, sorted and de-duplicated;
    queries in parallel. Returns unique pairs sorted by query, then item."""
    lsh_work = {"min_work": kernels.LSH_PARALLEL_MIN_WORK}
    start, length = kernels.run(kernels.lsh_probe, keys.size, keys, *tables, **lsh_work)
    upper = length.sum(axis=1)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(upper, out=offsets[1:])
    items, counts = kernels.run(kernels.lsh_gather, keys.size, start, length, order, offsets, **lsh_work)
    new_offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    return np.repeat(np.arange(len(keys)), counts), kernels.run(kernels.compact, keys.size, items, offsets, counts, new_offsets, **lsh_work)


def jaccard_pairs(hashes_a, offsets_a, hashes_b, offsets_b, ia, ib) -> tuple[np.ndarray, np.ndarray]:
    """Exact Jaccard and intersection sizes of sorted hash sets A[ia[p]] and B[ib[p]]."""
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    inter = intersection_sizes(hashes_a, offsets_a, hashes_b, offsets_b, ia, ib)
    size_a = np.diff(offsets_a)[ia]
    size_b = np.diff(offsets_b)[ib]
    union = size_a + size_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return jac, inter


def intersection_sizes(hashes_a, offsets_a, hashes_b, offsets_b, ia, ib) -> np.ndarray:
    """|A ∩ B| per pair; compiled merge walk, or np.intersect1d per pair without numba."""
    if kernels.AVAILABLE:
        return kernels.intersection_sizes(hashes_a, offsets_a, hashes_b, offsets_b, ia, ib)
    return np.array(
        [
            len(np.intersect1d(hashes_a[offsets_a[i] : offsets_a[i + 1]], hashes_b[offsets_b[j] : offsets_b[j + 1]], assume_unique=True))
            for i, j in zip(ia, ib, strict=True)
        ],
        dtype=np.int64,
    )


@dataclass
class Clusters:
    """Near-duplicate clusters: `labels[i]` is the smallest member index of i's cluster.

    Every edge (i, j, jaccard) was verified by exact Jaccard >= threshold; clusters are the
    connected components of verified edges only (no unverified match ever joins two groups).
    """

    labels: np.ndarray
    edges_i: np.ndarray
    edges_j: np.ndarray
    jaccard: np.ndarray
    candidates: int

    def groups(self) -> list[list[int]]:
        """Clusters with two or more members, each sorted."""
        out: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels.tolist()):
            out.setdefault(label, []).append(i)
        return [g for g in out.values() if len(g) > 1]


def union_find(n: int, edges_i: np.ndarray, edges_j: np.ndarray) -> np.ndarray:
    """Connected components of the given edges; each label is the component's smallest index."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(edges_i.tolist(), edges_j.tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(x) for x in range(n)], dtype=np.int64)


def near_duplicate_clusters(
    texts: list[str],
    threshold: float = 0.8,
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    bands: int | None = None,
    rows: int | None = None,
    recall_weight: float = 0.9,
) -> Clusters:
    """Group texts whose word-shingle Jaccard is >= threshold, every edge exactly verified.

    Texts with identical signatures are banded once (a bucket of m exact copies would otherwise
    yield m^2 candidate pairs): each copy is verified against its group's first member, and
    only the first members go through LSH. Texts with no shingles are never clustered.
    """
    hashes, offsets = shingle_hashes(list(texts), ngram)
    signatures = signatures_from_hashes(hashes, offsets, num_perm, seed)
    set_hashes, set_offsets = unique_per_document(hashes, offsets)
    _, first, group = np.unique(signatures, axis=0, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    members = np.flatnonzero(first[group] != np.arange(len(texts)))
    reps = np.sort(first)
    lsh = MinHashLSH(threshold, num_perm, bands, rows, recall_weight)
    lsh.insert(signatures[reps])
    ri, rj = lsh.candidate_pairs()
    ci = np.concatenate([first[group[members]], reps[ri]])
    cj = np.concatenate([members, reps[rj]])
    jac, _ = jaccard_pairs(set_hashes, set_offsets, set_hashes, set_offsets, ci, cj)
    ok = (jac >= threshold) & (np.diff(set_offsets)[ci] > 0)
    labels = union_find(len(texts), ci[ok], cj[ok])
    return Clusters(labels, ci[ok], cj[ok], jac[ok], int(len(ci)))
