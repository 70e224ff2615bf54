"""Gaussian-mixture world: EM refit on its own samples (the seed paper's Fig. 8 experiment)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.simulate.data import Samples
from collapseguard.simulate.worlds.base import World

W2_SAMPLES = 128  # points per side for the plug-in W2 estimate


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


def log_gaussian(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log N(x_n; mu_k, S_k) for x (S, n, d), means (S, k, d), covs (S, k, d, d) -> (S, n, k)."""
    d = x.shape[-1]
    precision = np.linalg.inv(covs)  # (S, k, d, d)
    _, logdet = np.linalg.slogdet(covs)  # (S, k)
    diff = x[:, :, None, :] - means[:, None, :, :]  # (S, n, k, d)
    maha = np.einsum("snki,skij,snkj->snk", diff, precision, diff, optimize=True)
    return -0.5 * maha - 0.5 * logdet[:, None, :] - 0.5 * d * np.log(2 * np.pi)


def kmeans_pp_init(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding per seed: means (S, k, d), each next mean drawn with prob ~ squared distance."""
    s, n, _ = x.shape
    rows = np.arange(s)
    means = [x[rows, rng.integers(n, size=s)]]
    for _ in range(1, k):
        d2 = np.min([((x - m[:, None, :]) ** 2).sum(-1) for m in means], axis=0)  # (S, n)
        p = d2 / np.maximum(d2.sum(1, keepdims=True), 1e-300)
        pick = (rng.random((s, 1)) > np.cumsum(p, axis=1)).sum(1).clip(max=n - 1)
        means.append(x[rows, pick])
    return np.stack(means, axis=1)


def fit_em(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 200,
           tol: float = 1e-3, reg_covar: float = 1e-6) -> Mixture:
    """Full-covariance EM for every seed at once, x (S, n, d); k-means++ seeding.

    Stops when every seed's mean log-likelihood moves less than `tol` (scikit-learn's rule and
    its default reg_covar); the tests compare the fit with scikit-learn's GaussianMixture.
    """
    s, n, d = x.shape
    eye = reg_covar * np.eye(d)
    means = kmeans_pp_init(x, k, rng)
    covs = np.broadcast_to(np.einsum("snd,sne->sde", x - x.mean(1, keepdims=True),
                                     x - x.mean(1, keepdims=True))[:, None] / n + eye, (s, k, d, d)).copy()
    weights = np.full((s, k), 1.0 / k)
    previous = np.full(s, -np.inf)
    for _ in range(max_iter):
        logp = log_gaussian(x, means, covs) + np.log(weights)[:, None, :]  # (S, n, k)
        norm = np.logaddexp.reduce(logp, axis=2, keepdims=True)
        resp = np.exp(logp - norm)  # (S, n, k)
        nk = resp.sum(1) + 10 * np.finfo(float).eps  # (S, k)
        weights = nk / n
        means = np.einsum("snk,snd->skd", resp, x) / nk[..., None]
        second = np.einsum("snk,sni,snj->skij", resp, x, x, optimize=True) / nk[..., None, None]
        covs = second - np.einsum("ski,skj->skij", means, means) + eye
        ll = norm[..., 0].mean(1)
        if np.all(np.abs(ll - previous) < tol):
            break
        previous = ll
    return Mixture(weights, means, covs)


class GMMWorld(World):
    """Truth: two equal-weight 2-D Gaussians at (-2, 0) and (2, 0) with unit covariance.

    Model: a k-component full-covariance mixture fitted by EM, vectorised over seeds.
    """

    name = "gmm"
    point_cost = 16_000.0  # EM iterations
    accumulate_growth = 0.6
    primary_metric = "l2"

    def __init__(self, seeds: int, components: int = 2, separation: float = 2.0):
        super().__init__(seeds)
        if components < 1:
            raise CollapseguardError(f"gmm needs -o components=1 or more, got {components}")
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
        return fit_em(data.x, self.components, rng)

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
