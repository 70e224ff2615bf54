"""Closed-form predictions the simulations are checked against.

Index convention: ``fits`` counts the models fitted so far. Generation g of a run is the
(g + 1)-th fit (generation 0 is fitted to M_0 samples of the truth: the paper's mu_1, sigma_1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln


def sample_variance(sigma2: float, m: int, fits: int) -> float:
    """Var(X^n) = sigma^2 (1 + n / M): a draw from the n-th refit model, unbiased estimator
    (Shumailov et al. 2024, eq. 3; mean random walk with a martingale variance)."""
    return sigma2 * (1 + fits / m)


def mle_variance(sigma2: float, m: int, fits: int) -> float:
    """E[sigma_n^2] = sigma^2 (1 - 1/M)^n with the biased (maximum-likelihood) estimator."""
    return sigma2 * (1 - 1 / m) ** fits


def w2_seed_text(sigma2: float, sizes) -> float:
    """The seed text's printed E[W2^2] = sigma^2 (1/M_0 + ... + 1/M_{n-1} + 3 / (2 M_n))."""
    sizes = np.asarray(sizes, dtype=float)
    return float(sigma2 * ((1 / sizes[:-1]).sum() + 1.5 / sizes[-1]))


def w2_second_order(sigma2: float, sizes) -> float:
    """Second-order expansion: E[mu_n^2] + E[(sigma_n - sigma)^2]
    ~ sigma^2 sum_i (1/M_i + 1/(2 (M_i - 1))), about 1.5 sigma^2 sum_i 1/M_i."""
    sizes = np.asarray(sizes, dtype=float)
    return float(sigma2 * (1 / sizes + 1 / (2 * (sizes - 1))).sum())


def chi_mean_ratio(m: int) -> float:
    """c_M = E[sqrt(chi2_{M-1} / (M-1))] = sqrt(2/(M-1)) Gamma(M/2) / Gamma((M-1)/2)."""
    return math.exp(0.5 * math.log(2 / (m - 1)) + gammaln(m / 2) - gammaln((m - 1) / 2))


def w2_exact_unbiased(sigma2: float, m: int, fits: int) -> float:
    """Exact E[W2^2] for constant M and the unbiased estimator:
    n sigma^2 / M (mean walk) + 2 sigma^2 (1 - c_M^n) (sigma_n = sigma * prod of chi ratios)."""
    return sigma2 * (fits / m + 2 * (1 - chi_mean_ratio(m) ** fits))


def accumulate_mean_sq(sigma2: float, m: int, fits: int) -> float:
    """E[mu_n^2] under accumulate with constant M: mu moves by eps/k at the k-th fit, so
    sigma^2/M * sum_{k<=n} 1/k^2 < pi^2/6 * sigma^2/M (cf. Gerstgrasser et al. 2024)."""
    return sigma2 / m * sum(1 / k**2 for k in range(1, fits + 1))


def mv_w2_lower_bound(trace_cov: float, sizes) -> float:
    """Noisy multivariate approximation: E[W2^2] >= Tr(Sigma) sum_i 1/M_i (paper, Theorem 3.1).
    Constant M makes it grow without bound; it stays finite only for superlinear M_i."""
    return float(trace_cov * (1 / np.asarray(sizes, dtype=float)).sum())


def absorption_time(m: int, freqs) -> float:
    """Mean generations until a neutral Wright-Fisher chain of M samples keeps one state,
    -2M sum_i (1 - x_i) ln(1 - x_i) (diffusion approximation; Littler 1975)."""
    x = np.asarray(freqs, dtype=float)
    x = x[(x > 0) & (x < 1)]
    return float(-2 * m * ((1 - x) * np.log1p(-x)).sum())


def absorption_time_large_k(m: int, states: int) -> float:
    """The large-K form of absorption_time for K equally likely states: about 2M (1 - 1/K)."""
    return 2 * m * (1 - 1 / states)
