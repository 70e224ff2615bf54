"""World building blocks against independent references (scikit-learn, scipy, numerical integration)."""

import numpy as np
import pytest

from collapseguard.simulate.data import Counts, Samples
from collapseguard.simulate.worlds.gmm import GMMWorld, Mixture, fit_em, l2_distance, log_gaussian
from collapseguard.simulate.worlds.mvgaussian import w2_sq_gaussians


def test_em_matches_scikit_learn_likelihood():
    from sklearn.mixture import GaussianMixture

    world = GMMWorld(8)
    rng = np.random.default_rng(3)
    x = world.truth(800, rng).x
    ours = fit_em(x, 2, rng)
    for i in range(8):
        ref = GaussianMixture(2, random_state=i, tol=1e-6).fit(x[i])
        ll = np.logaddexp.reduce(log_gaussian(x[i:i + 1], ours.means[i:i + 1], ours.covs[i:i + 1])
                                 + np.log(ours.weights[i:i + 1])[:, None, :], axis=2).mean()
        assert ll == pytest.approx(ref.score(x[i]), abs=2e-3)
        assert np.sort(ours.means[i, :, 0]) == pytest.approx(np.sort(ref.means_[:, 0]), abs=0.05)


def test_log_gaussian_matches_scipy():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 2))
    mean, cov = np.array([0.3, -1.0]), np.array([[2.0, 0.4], [0.4, 0.5]])
    ours = log_gaussian(x, mean[None, None], cov[None, None])[0, :, 0]
    assert ours == pytest.approx(multivariate_normal(mean, cov).logpdf(x[0]))


def test_l2_distance_matches_numerical_integration():
    from scipy.stats import multivariate_normal

    a = Mixture(np.array([[0.3, 0.7]]), np.array([[[-1.0, 0.0], [1.5, 0.5]]]),
                np.array([[np.eye(2), [[0.5, 0.1], [0.1, 0.8]]]]))
    b = Mixture(np.array([[1.0]]), np.array([[[0.2, 0.1]]]), np.array([[np.eye(2) * 1.5]]))
    grid = np.linspace(-8, 8, 401)
    xx = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)

    def density(m):
        return sum(w * multivariate_normal(mu, c).pdf(xx) for w, mu, c in zip(m.weights[0], m.means[0], m.covs[0]))

    numeric = np.sqrt(((density(a) - density(b)) ** 2).sum() * (grid[1] - grid[0]) ** 2)
    assert l2_distance(a, b)[0] == pytest.approx(numeric, rel=1e-4)


def test_w2_gaussians_matches_scipy_sqrtm_and_1d_form():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    c1, c2 = a @ a.T + np.eye(3), b @ b.T + 0.5 * np.eye(3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    r2 = sqrtm(c2)
    ref = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * sqrtm(r2 @ c1 @ r2)).real
    assert w2_sq_gaussians(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-8)
    one_d = w2_sq_gaussians(np.array([0.5]), np.array([[4.0]]), np.array([0.0]), np.array([[1.0]]))
    assert one_d == pytest.approx(0.25 + (2 - 1) ** 2)


def test_counts_take_is_a_subset_of_the_requested_size():
    rng = np.random.default_rng(0)
    pool = Counts(rng.multinomial(100, [0.5, 0.3, 0.15, 0.05], size=1000))
    sub = pool.take(30, rng)
    assert (sub.counts.sum(1) == 30).all() and (sub.counts <= pool.counts).all()
    # A uniform subset keeps each category's share in expectation.
    assert sub.counts.mean(0) / 30 == pytest.approx(pool.counts.mean(0) / 100, abs=0.01)


def test_samples_take_draws_without_replacement():
    x = np.tile(np.arange(50.0), (20, 1))
    sub = Samples(x).take(10, np.random.default_rng(0)).x
    assert sub.shape == (20, 10)
    assert all(len(set(row)) == 10 for row in sub)
