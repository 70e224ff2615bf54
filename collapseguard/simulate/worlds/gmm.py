"""Gaussian-mixture world: EM refit on its own samples (the seed paper's Fig. 8 experiment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.simulate.data import Samples
from collapseguard.simulate.worlds.base import World

W2_SAMPLES = 256  # points per side for the plug-in W2 estimate


@dataclass
class Mixture:
    """Mixture parameters per seed: weights (S, k), means (S, k, d), covariances (S, k, d, d)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray


def gaussian_overlap(m1, c1, m2, c2) -> np.ndarray:
    """Integral of N(x; m1, c1) N(x; m2, c2) dx = N(m1; m2, c1 + c2), batched over leading axes."""
    cov = c1 + c2
    d = m1.shape[-1]
    diff = m1 - m2
    sol = np.linalg.solve(cov, diff[..., None])[..., 0]
    _, logdet = np.linalg.slogdet(cov)
    return np.exp(-0.5 * (diff * sol).sum(-1) - 0.5 * logdet - 0.5 * d * np.log(2 * np.pi))


def mixture_inner(a: Mixture, b: Mixture) -> np.ndarray:
    """<f_a, f_b> = sum_ij w_i v_j N(mu_i; nu_j, S_i + G_j), shape (S,)."""
    ov = gaussian_overlap(a.means[:, :, None], a.covs[:, :, None], b.means[:, None, :], b.covs[:, None, :])
    return np.einsum("si,sj,sij->s", a.weights, b.weights, ov)


def l2_distance(a: Mixture, b: Mixture) -> np.ndarray:
    """Closed-form L2 distance between mixture densities, shape (S,)."""
    sq = mixture_inner(a, a) + mixture_inner(b, b) - 2 * mixture_inner(a, b)
    return np.sqrt(np.clip(sq, 0, None))


def sample_mixture(m: Mixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points per seed, shape (S, n, d)."""
    s, k, d = m.means.shape
    cum = np.cumsum(m.weights, axis=1)
    comp = (rng.random((s, n, 1)) > cum[:, None, :-1]).sum(-1)  # (S, n) component index
    chol = np.linalg.cholesky(m.covs + 1e-12 * np.eye(d))  # (S, k, d, d)
    z = rng.standard_normal((s, n, d))
    rows = np.arange(s)[:, None]
    return m.means[rows, comp] + np.einsum("snij,snj->sni", chol[rows, comp], z)


def empirical_w2_sq(x: np.ndarray, y: np.ndarray) -> float:
    """Exact optimal-transport W2^2 between two equal-size point clouds (n, d)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


class GMMWorld(World):
    """Truth: two equal-weight 2-D Gaussians at (-2, 0) and (2, 0) with unit covariance.

    Model: a k-component full-covariance mixture fitted by EM (scikit-learn) per seed.
    """

    name = "gmm"
    primary_metric = "l2"

    def __init__(self, seeds: int, components: int = 2, separation: float = 2.0):
        super().__init__(seeds)
        if components < 1:
            raise CollapseguardError(f"gmm needs --components of at least 1, got {components}")
        self.components, self.separation = int(components), float(separation)
        self.min_samples = 2 * self.components
        means = np.array([[-separation, 0.0], [separation, 0.0]])
        self.true = Mixture(
            np.full((seeds, 2), 0.5), np.broadcast_to(means, (seeds, 2, 2)).copy(),
            np.broadcast_to(np.eye(2), (seeds, 2, 2, 2)).copy(),
        )

    def params(self) -> dict:
        return {"components": self.components, "separation": self.separation}

    def truth(self, n, rng):
        return Samples(sample_mixture(self.true, n, rng))

    def fit(self, data, rng):
        from sklearn.mixture import GaussianMixture

        fits = []
        for x in data.x:
            gm = GaussianMixture(self.components, covariance_type="full",
                                 random_state=int(rng.integers(2**31 - 1)))
            fits.append(gm.fit(x))
        return Mixture(
            np.stack([f.weights_ for f in fits]), np.stack([f.means_ for f in fits]),
            np.stack([f.covariances_ for f in fits]),
        )

    def sample(self, model, n, rng):
        return Samples(sample_mixture(model, n, rng))

    def metrics(self, model):
        rng = np.random.default_rng(0)  # fixed draws: the estimate's noise stays the same across generations
        xs = sample_mixture(model, W2_SAMPLES, rng)
        ys = sample_mixture(self.true, W2_SAMPLES, rng)
        return {
            "l2": l2_distance(model, self.true),
            "w2_sq": np.array([empirical_w2_sq(x, y) for x, y in zip(xs, ys)]),
            "weight_min": model.weights.min(axis=1),
        }
