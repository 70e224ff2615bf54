"""N-d Gaussian world with the seed paper's noisy-approximation model (Theorem 3.1)."""

from __future__ import annotations

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.simulate.data import Samples
from collapseguard.simulate.worlds.base import World


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of positive semi-definite matrices, shape (..., d, d)."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(v, -1, -2)


def w2_sq_gaussians(m1, c1, m2, c2) -> np.ndarray:
    """Squared Wasserstein-2 distance between N(m1, c1) and N(m2, c2), batched over leading axes.

    W2^2 = |m1 - m2|^2 + Tr(c1 + c2 - 2 (c2^1/2 c1 c2^1/2)^1/2)  (Dowson & Landau 1982).
    """
    r2 = sqrtm_psd(c2)
    cross = np.linalg.eigvalsh(r2 @ c1 @ r2)
    bures = np.trace(c1, axis1=-2, axis2=-1) + np.trace(c2, axis1=-2, axis2=-1) - 2 * np.sqrt(np.clip(cross, 0, None)).sum(-1)
    return ((m1 - m2) ** 2).sum(-1) + bures


class MVGaussianWorld(World):
    """Truth N(0, diag(1, 1/2, ..., 1/d)); refit mean and unbiased covariance each generation.

    ``noise`` adds N(0, noise^2 I) to each fitted mean: the paper's functional-approximation
    error, which makes E[W2^2] >= Tr(Sigma) * sum_i 1/M_i grow without bound for constant M.
    """

    name = "mvgaussian"
    point_cost = 250.0
    primary_metric = "w2_sq"

    def __init__(self, seeds: int, dim: int = 4, noise: float = 0.0):
        super().__init__(seeds)
        if dim < 1:
            raise CollapseguardError(f"mvgaussian needs -o dim=1 or more, got {dim}")
        if noise < 0:
            raise CollapseguardError(f"-o noise must be >= 0, got {noise}")
        self.dim, self.noise = int(dim), float(noise)
        self.min_samples = self.dim + 1
        self.cov = np.diag(1.0 / np.arange(1, self.dim + 1))  # (d, d)
        self.chol = np.linalg.cholesky(self.cov)

    def params(self) -> dict:
        return {"dim": self.dim, "noise": self.noise}

    def truth(self, n, rng):
        z = rng.standard_normal((self.seeds, n, self.dim))
        return Samples(z @ self.chol.T)

    def fit(self, data, rng):
        x = data.x  # (S, n, d)
        mean = x.mean(axis=1)
        centred = x - mean[:, None, :]
        cov = np.einsum("snd,sne->sde", centred, centred) / (x.shape[1] - 1)
        if self.noise:
            mean = mean + self.noise * rng.standard_normal(mean.shape)
        return mean, cov

    def sample(self, model, n, rng):
        mean, cov = model
        chol = np.linalg.cholesky(cov + 1e-12 * np.eye(self.dim))  # (S, d, d)
        z = rng.standard_normal((self.seeds, n, self.dim))
        return Samples(mean[:, None, :] + z @ np.swapaxes(chol, -1, -2))

    def metrics(self, model):
        mean, cov = model
        zero = np.zeros(self.dim)
        return {
            "w2_sq": w2_sq_gaussians(mean, cov, zero, self.cov),
            "trace_cov": np.trace(cov, axis1=-2, axis2=-1),
        }
