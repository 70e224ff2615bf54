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
