"""The simulated worlds against closed forms (means over many seeds, within their intervals)."""

import numpy as np
import pytest

from collapseguard.simulate import theory
from collapseguard.simulate.loop import SimConfig, run_simulation
from collapseguard.simulate.policy import Policy

Z = 3.0  # +-3 standard errors: a fixed seed makes each check deterministic


def within(values: np.ndarray, predicted: float) -> bool:
    se = values.std(ddof=1) / np.sqrt(len(values))
    return abs(values.mean() - predicted) <= Z * se


@pytest.mark.parametrize("exact_statistics", [True, False])
def test_gaussian_variance_law(exact_statistics):
    m = 50
    r = run_simulation(SimConfig("gaussian", 20, m, 4000, 7, Policy("replace"),
                                 {"exact_statistics": exact_statistics}))
    for g in (0, 5, 20):
        per_seed = r.metrics["variance"][:, g] + r.metrics["mean"][:, g] ** 2
        assert within(per_seed, theory.sample_variance(1.0, m, g + 1)), g


def test_mle_variance_decays_as_predicted():
    m = 20
    r = run_simulation(SimConfig("gaussian", 30, m, 4000, 3, Policy("replace"), {"estimator": "mle"}))
    for g in (0, 10, 30):
        assert within(r.metrics["variance"][:, g], theory.mle_variance(1.0, m, g + 1)), g
    assert r.metrics["variance"][:, 30].mean() < r.metrics["variance"][:, 0].mean()


def test_w2_exact_form_matches_and_seed_text_underestimates():
    m = 100
    r = run_simulation(SimConfig("gaussian", 30, m, 6000, 11, Policy("replace")))
    w = r.metrics["w2_sq"][:, 30]
    assert within(w, theory.w2_exact_unbiased(1.0, m, 31))
    assert within(w, theory.w2_second_order(1.0, [m] * 31))
    assert w.mean() - Z * w.std() / np.sqrt(len(w)) > theory.w2_seed_text(1.0, [m] * 31)


def test_accumulate_mean_walk_is_bounded():
    m = 50
    r = run_simulation(SimConfig("gaussian", 40, m, 6000, 5, Policy("accumulate")))
    sq = r.metrics["mean"][:, 40] ** 2
    assert within(sq, theory.accumulate_mean_sq(1.0, m, 41))
    se = sq.std(ddof=1) / np.sqrt(len(sq))
    assert sq.mean() - Z * se < np.pi**2 / 6 / m  # not above the bound beyond noise
    replace = run_simulation(SimConfig("gaussian", 40, m, 6000, 5, Policy("replace")))
    assert (replace.metrics["mean"][:, 40] ** 2).mean() > 10 * sq.mean()  # replace's walk keeps growing


def test_discrete_absorbs_near_the_wright_fisher_time():
    m, k = 30, 4
    r = run_simulation(SimConfig("discrete", 600, m, 2000, 2, Policy("replace"), {"states": k, "truth": "uniform"}))
    absorbed = r.metrics["absorbed"]
    assert absorbed[:, -1].all()
    first = absorbed.argmax(axis=1)
    # The diffusion approximation: -2M sum (1-x) ln(1-x); allow 10% for its discreteness.
    assert abs(first.mean() / theory.absorption_time(m, [1 / k] * k) - 1) < 0.1


def test_rarest_states_vanish_first():
    from collapseguard.simulate.worlds.discrete import DiscreteWorld

    world = DiscreteWorld(500, states=20, truth="zipf", exponent=1.5)
    rng = np.random.default_rng(0)
    model = world.fit(world.truth(60, rng), rng)
    extinct = np.full((500, 20), np.inf)
    for g in range(1, 400):
        model = world.fit(world.sample(model, 60, rng), rng)
        newly = (model == 0) & np.isinf(extinct)
        extinct[newly] = g
    median_by_state = np.median(extinct, axis=0)  # states ordered most likely first
    assert median_by_state[-2:].max() < median_by_state[:2].min()
    assert np.all(np.diff(median_by_state[:10]) <= 0)


def test_noisy_mvgaussian_needs_superlinear_sample_growth():
    base = dict(world="mvgaussian", generations=20, samples=50, seeds=100, seed=1, options={"dim": 3, "noise": 0.05})
    constant = run_simulation(SimConfig(policy=Policy("replace"), **base))
    quadratic = run_simulation(SimConfig(policy=Policy("replace", schedule="quadratic"), **base))
    w_const, w_quad = constant.metrics["w2_sq"], quadratic.metrics["w2_sq"]
    bound = theory.mv_w2_lower_bound(np.trace(np.diag(1 / np.arange(1, 4))), [50] * 21)
    assert w_const[:, -1].mean() >= bound * 0.9
    assert w_quad[:, -1].mean() < w_const[:, -1].mean() / 3
    assert w_const[:, -1].mean() > 2 * w_const[:, 5].mean()
