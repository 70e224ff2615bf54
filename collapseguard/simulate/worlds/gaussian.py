"""1-D Gaussian world: the seed paper's eq. (1) refit loop with an exact closed-form W2."""

from __future__ import annotations

import numpy as np

from collapseguard.errors import check_choice
from collapseguard.simulate.data import GaussianStats, Samples
from collapseguard.simulate.worlds.base import World

ESTIMATORS = ("unbiased", "mle")


class GaussianWorld(World):
    """Truth N(mu, sigma^2); each generation refits mean and variance.

    ``estimator='unbiased'`` divides by M - 1 (the paper's eq. 1), ``'mle'`` by M.
    With ``exact_statistics`` the data are sufficient statistics sampled exactly
    (mean ~ N(mu, s^2/n), m2 ~ s^2 chi2(n-1)); otherwise explicit samples, which the
    loop needs when a policy subsamples previous data.
    """

    name = "gaussian"
    accumulate_growth = 0.0  # sufficient statistics
    primary_metric = "w2_sq"

    def __init__(self, seeds: int, mu: float = 0.0, sigma: float = 1.0,
                 estimator: str = "unbiased", exact_statistics: bool = True):
        super().__init__(seeds)
        self.mu, self.sigma = float(mu), float(sigma)
        self.estimator = check_choice("estimator", estimator, ESTIMATORS)
        self.exact_statistics = exact_statistics

    def params(self) -> dict:
        return {"mu": self.mu, "sigma": self.sigma, "estimator": self.estimator}

    def _draw(self, mean: np.ndarray, std: np.ndarray, n: int, rng: np.random.Generator):
        if self.exact_statistics:
            m = rng.normal(mean, std / np.sqrt(n))
            m2 = std**2 * rng.chisquare(n - 1, size=self.seeds) if n > 1 else np.zeros(self.seeds)
            return GaussianStats(n, m, m2)
        return Samples(mean[:, None] + std[:, None] * rng.standard_normal((self.seeds, n)))

    def truth(self, n, rng):
        full = np.full(self.seeds, 1.0)
        return self._draw(self.mu * full, self.sigma * full, n, rng)

    def fit(self, data, rng):
        ddof = 1 if self.estimator == "unbiased" else 0
        if isinstance(data, GaussianStats):
            return data.mean, data.m2 / (data.n - ddof)
        return data.x.mean(axis=1), data.x.var(axis=1, ddof=ddof)

    def sample(self, model, n, rng):
        mean, var = model
        return self._draw(mean, np.sqrt(var), n, rng)

    def metrics(self, model):
        mean, var = model
        w2_sq = (mean - self.mu) ** 2 + (np.sqrt(var) - self.sigma) ** 2  # W2 between 1-D Gaussians
        return {"mean": mean, "variance": var, "w2_sq": w2_sq}
