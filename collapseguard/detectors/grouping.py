"""Source groups: texts that share a source stay on one side of every split.

Labelled detector data reuses its sources: one article cut at several lengths, a machine text
that continues a human text's opening words, near-duplicates. A split by exact text leaves the
same source on both sides, and every figure measured on it is inflated. Two rules join texts
into one group (union-find, so groups are transitive):

- **shared opening**: the same first ``prefix_words`` words (case, punctuation and whitespace folded). An
  opening that many different texts start with (``Media playback is not supported on this
  device``: more than ``max_branches`` distinct next ``prefix_words`` words) is boilerplate:
  those texts are keyed by ``prefix_words`` more words, up to four times the length;
- **shingle overlap**: word ``ngram``-shingle sets (our own 64-bit hashes,
  `collapseguard.detectors.dedup.minhash`) whose containment |A ∩ B| / min(|A|, |B|) is at least
  ``containment``, or that share ``min_shared`` shingles (a verbatim passage of
  ``min_shared + ngram - 1`` words). Shingles found in more than ``max_df`` texts are boilerplate
  and ignored.

`SourceRecord` keeps what a check needs of a training set (opening keys and a 1-in-``SAMPLE``
sample of its shingle hashes) so a model folder can later refuse calibration or evaluation text
that overlaps its training text without keeping that text. Against the pooled training shingles
only the opening and containment rules apply (a long text shares a few common phrases with any
large corpus).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError

SAMPLE = 4  # a SourceRecord keeps shingle hashes h with h % SAMPLE == 0 (consistent sampling)
RECORD_FILE = "sources.npz"


@dataclass(frozen=True)
class GroupingConfig:
    """How texts are joined into source groups (see the module docstring)."""

    prefix_words: int = 6
    max_branches: int = 4
    ngram: int = 5
    containment: float = 0.5
    min_shared: int = 25
    max_df: int = 200

    def __post_init__(self):
        if self.prefix_words < 3 or self.max_branches < 1 or self.ngram < 1 or self.min_shared < 1 or self.max_df < 2:
            raise CollapseguardError(f"grouping settings out of range: {asdict(self)}; "
                                     "need prefix_words >= 3, max_branches >= 1, ngram >= 1, min_shared >= 1, max_df >= 2")
        if not 0.0 < self.containment <= 1.0:
            raise CollapseguardError(f"grouping containment {self.containment} must be in (0, 1]")


_PUNCT = re.compile(r"[^\w\s]+")


def fold(text: str) -> str:
    """Case, punctuation and whitespace folded: the form both rules compare."""
    return " ".join(_PUNCT.sub("", text.lower()).split())


def opening_keys(texts: list[str], words: int, max_branches: int, levels: int = 4) -> list[str | None]:
    """Each text's opening key (None when it is shorter than `words` words).

    A key shared by texts with more than `max_branches` distinct continuations of `words` more
    words is boilerplate; those texts are keyed again by `words` more words (up to `levels` times).
    """
    from collections import defaultdict

    split = [fold(t).split(" ") for t in texts]
    keys: list[str | None] = [None] * len(texts)
    active = [i for i, w in enumerate(split) if len(w) >= words and w[0]]
    for level in range(levels):
        k = words * (level + 1)
        short = {i: " ".join(split[i][:k]) for i in active if len(split[i]) >= k}
        branches = defaultdict(set)
        for i, key in short.items():
            branches[key].add(" ".join(split[i][:k + words]))
        for i, key in short.items():
            if len(branches[key]) <= max_branches or level == levels - 1:
                keys[i] = key
        active = [i for i in short if keys[i] is None]
    return keys


def key_hash(key: str) -> int:
    """A 63-bit hash of an opening key (stored instead of the words)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def shingle_sets(texts: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Each folded text's sorted set of shingle hashes, flattened: (hashes, offsets)."""
    from collapseguard.detectors.dedup.minhash import shingle_hash_sets

    return shingle_hash_sets([fold(t) for t in texts], ngram)


class UnionFind:
    """Disjoint sets over 0..n-1; `roots()` labels each element by its set's smallest member."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return int(i)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def shared_shingle_pairs(hashes: np.ndarray, offsets: np.ndarray, max_df: int):
    """(a, b, shared) for every pair of texts sharing a non-boilerplate shingle (a < b)."""
    from scipy import sparse

    n = len(offsets) - 1
    doc = np.repeat(np.arange(n), np.diff(offsets))
    uniq, col, df = np.unique(hashes, return_inverse=True, return_counts=True)
    keep = df[col] <= max_df
    x = sparse.csr_matrix((np.ones(int(keep.sum()), dtype=np.int32), (doc[keep], col[keep])),
                          shape=(n, len(uniq)))
    shared = sparse.triu(x @ x.T, k=1).tocoo()
    return shared.row, shared.col, shared.data


def source_parts(texts, config: GroupingConfig = GroupingConfig()) -> tuple[list, np.ndarray, np.ndarray]:
    """What both rules read of `texts`: opening keys, and shingle hashes with their offsets.
    Pass it to `source_groups` and `SourceRecord.of` of the same texts to compute it once."""
    texts = list(texts)
    return (opening_keys(texts, config.prefix_words, config.max_branches), *shingle_sets(texts, config.ngram))


def source_groups(texts, config: GroupingConfig = GroupingConfig(), parts=None) -> np.ndarray:
    """A group label per text (the index of the group's first text); shape (n,)."""
    keys, hashes, offsets = parts if parts is not None else source_parts(texts, config)
    uf = UnionFind(len(keys))
    first_of: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            uf.union(first_of.setdefault(key, i), i)
    sizes = np.diff(offsets)
    a, b, shared = shared_shingle_pairs(hashes, offsets, config.max_df)
    smaller = np.maximum(np.minimum(sizes[a], sizes[b]), 1)
    join = (shared / smaller >= config.containment) | (shared >= config.min_shared)
    for i, j in zip(a[join].tolist(), b[join].tolist()):
        uf.union(i, j)
    return uf.roots()


def group_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """A fold number in 0..k-1 per text; every group lies in one fold (seeded, balanced by size)."""
    groups = np.asarray(groups)
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(labels) < k:
        raise CollapseguardError(f"only {len(labels)} source groups for {k} folds; pass more distinct texts")
    order = np.random.default_rng(seed).permutation(len(labels))
    order = order[np.argsort(-counts[order], kind="stable")]  # largest groups first, ties seeded
    load = np.zeros(k, dtype=np.int64)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of[g] = f
        load[f] += counts[g]
    return fold_of[inverse]


def source_maxima(scores: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """(sources, k): each source's highest score per column (NaN where it has none), sources in sorted
    order: versions of one article count once, as the text of it that scores highest."""
    labels, inverse = np.unique(sources, return_inverse=True)
    out = np.full((len(labels), scores.shape[1]), -np.inf)
    np.fmax.at(out, inverse, scores)
    out[np.isneginf(out)] = np.nan
    return out


def group_split(groups: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask selecting whole groups holding about `fraction` of the texts."""
    if not 0.0 < fraction < 1.0:
        raise CollapseguardError(f"split fraction {fraction} must lie strictly between 0 and 1")
    groups = np.asarray(groups)
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    taken = np.cumsum(counts[order]) <= fraction * len(groups)
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[order[taken]] = True
    return chosen[inverse]


@dataclass
class SourceRecord:
    """What an overlap check needs of a training set: opening keys and sampled shingle hashes."""

    prefix_keys: np.ndarray  # (m,) int64, sorted unique key_hash of every opening
    shingles: np.ndarray  # (s,) uint64, sorted unique sampled shingle hashes
    n_texts: int
    config: GroupingConfig

    @classmethod
    def of(cls, texts, config: GroupingConfig = GroupingConfig(), parts=None) -> SourceRecord:
        """The record of `texts` (`parts`: their `source_parts`, when already computed)."""
        openings, hashes, _ = parts if parts is not None else source_parts(texts, config)
        keys = {key_hash(k) for k in openings if k is not None}
        sampled = np.unique(hashes[hashes % SAMPLE == 0])
        return cls(np.array(sorted(keys), dtype=np.int64), sampled, len(openings), config)

    def save(self, folder: str | Path) -> Path:
        """Write sources.npz into `folder` atomically."""
        import io

        from collapseguard.io.atomic import atomic_path

        buf = io.BytesIO()
        np.savez(buf, prefix_keys=self.prefix_keys, shingles=self.shingles, n_texts=np.int64(self.n_texts),
                 config=np.array([getattr(self.config, f) for f in CONFIG_FIELDS], dtype=np.float64))
        path = Path(folder) / RECORD_FILE
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> SourceRecord | None:
        """The record in `folder`, or None when it has none (a folder from before source records)."""
        path = Path(folder) / RECORD_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                values = z["config"].tolist()
                config = GroupingConfig(**{f: (float(v) if f == "containment" else int(v))
                                           for f, v in zip(CONFIG_FIELDS, values)})
                return cls(z["prefix_keys"].astype(np.int64), z["shingles"].astype(np.uint64),
                           int(z["n_texts"]), config)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CollapseguardError(f"{path}: unreadable source record ({exc}); retrain the detector") from None

    def has_opening(self, text: str) -> bool:
        """Whether any opening key the training texts could have had is this text's opening."""
        split = fold(text).split(" ")
        lengths = [self.config.prefix_words * (level + 1) for level in range(4)]
        keys = (key_hash(" ".join(split[:k])) for k in lengths if len(split) >= k and split[0])
        sorted_keys = self.prefix_keys
        for k in keys:
            j = np.searchsorted(sorted_keys, k)
            if j < len(sorted_keys) and sorted_keys[j] == k:
                return True
        return False

    def overlapping(self, texts) -> np.ndarray:
        """A mask of the texts that share a source with the recorded training texts."""
        texts = list(texts)
        cfg = self.config
        hit = np.array([self.has_opening(t) for t in texts], dtype=bool)
        hashes, offsets = shingle_sets(texts, cfg.ngram)
        sampled = hashes % SAMPLE == 0
        found = np.isin(hashes, self.shingles) & sampled
        doc = np.repeat(np.arange(len(texts)), np.diff(offsets))
        n_sampled = np.bincount(doc[sampled], minlength=len(texts))
        n_found = np.bincount(doc[found], minlength=len(texts))
        contained = (n_sampled >= 4) & (n_found >= cfg.containment * np.maximum(n_sampled, 1))
        return hit | contained


CONFIG_FIELDS = ("prefix_words", "max_branches", "ngram", "containment", "min_shared", "max_df")


def overlap_message(n_overlap: int, n_texts: int, what: str, trained: str) -> str:
    """The refusal for `what` texts that share sources with `trained`'s training text."""
    return (f"{n_overlap} of {n_texts} {what} texts ({n_overlap / max(n_texts, 1):.1%}) share a source with the "
            f"texts {trained} was trained on (same opening words or overlapping passages), so the figures would "
            "be inflated; use texts from other sources, or pass --allow-overlap to proceed and report it")


def check_overlap(record: SourceRecord | None, texts, what: str, trained: str, allow: bool) -> dict:
    """Count `texts` overlapping `record`; raise unless `allow` when any do. Returns the counts."""
    texts = list(texts)
    if record is None:
        return {"checked": False, "overlap": None, "texts": len(texts)}
    n = int(record.overlapping(texts).sum()) if texts else 0
    if n and not allow:
        raise CollapseguardError(overlap_message(n, len(texts), what, trained))
    return {"checked": True, "overlap": n, "texts": len(texts)}
