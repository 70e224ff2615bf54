"""Training-data containers the loop mixes: every one holds one dataset per seed.

Each container has ``size`` (samples per seed), ``concat(others)`` and ``take(k, rng)``
(a uniform draw of k samples per seed without replacement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Samples:
    """Explicit samples, shape (S seeds, n samples, *event shape)."""

    x: np.ndarray

    @property
    def size(self) -> int:
        return self.x.shape[1]

    def concat(self, others: list[Samples]) -> Samples:
        return Samples(np.concatenate([self.x] + [o.x for o in others], axis=1))

    def take(self, k: int, rng: np.random.Generator) -> Samples:
        keys = rng.random(self.x.shape[:2])  # (S, n): a random order per seed
        idx = np.argpartition(keys, k - 1, axis=1)[:, :k] if k < self.size else np.argsort(keys, axis=1)
        idx = idx.reshape(idx.shape + (1,) * (self.x.ndim - 2))
        return Samples(np.take_along_axis(self.x, idx, axis=1))


@dataclass
class Counts:
    """Samples from K categories stored as counts, shape (S seeds, K)."""

    counts: np.ndarray

    @property
    def size(self) -> int:
        return int(self.counts[0].sum())

    def concat(self, others: list[Counts]) -> Counts:
        return Counts(self.counts + sum(o.counts for o in others))

    def take(self, k: int, rng: np.random.Generator) -> Counts:
        # Multivariate hypergeometric draw, one category at a time, vectorised over seeds.
        left = self.counts.sum(axis=1)
        want = np.full(len(self.counts), k, dtype=np.int64)
        out = np.zeros_like(self.counts)
        for j in range(self.counts.shape[1] - 1):
            good = self.counts[:, j]
            draw = rng.hypergeometric(good, left - good, want) if want.any() else np.zeros_like(want)
            out[:, j] = draw
            want -= draw
            left -= good
        out[:, -1] = want
        return Counts(out)


@dataclass
class GaussianStats:
    """Sufficient statistics of 1-D samples per seed: count, mean and sum of squared deviations.

    Sampling the statistics directly (mean ~ N, m2 ~ sigma^2 chi2) is exact in distribution
    and costs O(seeds) per generation instead of O(seeds * samples).
    """

    n: int
    mean: np.ndarray  # (S,)
    m2: np.ndarray  # (S,)

    @property
    def size(self) -> int:
        return self.n

    def concat(self, others: list[GaussianStats]) -> GaussianStats:
        parts = [self, *others]
        n = sum(p.n for p in parts)
        mean = sum(p.n * p.mean for p in parts) / n
        m2 = sum(p.m2 + p.n * (p.mean - mean) ** 2 for p in parts)
        return GaussianStats(n, mean, m2)

    def take(self, k: int, rng: np.random.Generator) -> GaussianStats:
        raise NotImplementedError("sufficient statistics cannot be subsampled; use explicit samples")


def concat(parts: list):
    """Concatenate same-kind containers (at least one)."""
    return parts[0].concat(parts[1:]) if len(parts) > 1 else parts[0]
