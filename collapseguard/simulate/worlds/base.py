"""The World interface every collapse world implements, vectorised over seeds."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class World:
    """A true distribution plus a model family fitted to data from it.

    Every method works on a batch of S independent seeds at once: data containers hold one
    dataset per seed, models hold one parameter set per seed, metrics return arrays (S,).
    """

    name: ClassVar[str]
    primary_metric: ClassVar[str]  # the metric reports and plots call "degradation"
    higher_is_worse: ClassVar[bool] = True
    min_samples: ClassVar[int] = 2
    # CPU nanoseconds to fit one data point of one seed (measured on 2 cores, 2026-12-05); weighs
    # the sweep's progress by work, since a gmm generation costs ~10^4 gaussian ones
    point_cost: ClassVar[float] = 1.0
    # under accumulate a generation fits on k times the fresh data and costs ~k**accumulate_growth
    # times as much (measured: 0 for sufficient statistics, ~0.3 discrete, ~0.6 gmm's EM)
    accumulate_growth: ClassVar[float] = 1.0

    def __init__(self, seeds: int):
        self.seeds = seeds

    def truth(self, n: int, rng: np.random.Generator) -> Any:
        """Draw n fresh samples per seed from the true distribution."""
        raise NotImplementedError

    def fit(self, data: Any, rng: np.random.Generator) -> Any:
        """Fit one model per seed to its data (rng for worlds whose fitting is random)."""
        raise NotImplementedError

    def sample(self, model: Any, n: int, rng: np.random.Generator) -> Any:
        """Draw n samples per seed from the fitted models."""
        raise NotImplementedError

    def metrics(self, model: Any) -> dict[str, np.ndarray]:
        """Metrics of each seed's model against the truth, name -> array (S,)."""
        raise NotImplementedError

    def params(self) -> dict:
        """The world's parameters, recorded with every result."""
        return {}
