"""Loop, policies and determinism."""

import numpy as np
import pytest

from collapseguard.errors import CollapseguardError
from collapseguard.simulate.loop import SimConfig, run_simulation
from collapseguard.simulate.policy import Policy

SMALL = {
    "gaussian": dict(samples=50, seeds=200, options={}),
    "mvgaussian": dict(samples=50, seeds=100, options={"dim": 3}),
    "discrete": dict(samples=30, seeds=200, options={"states": 10}),
    "gmm": dict(samples=150, seeds=8, options={}),
    "vae": dict(samples=200, seeds=2, options={"steps": 200, "hidden": 64}),
}


@pytest.mark.parametrize("world", sorted(SMALL))
def test_accumulate_ends_below_replace_at_generation_10(world):
    spec = SMALL[world]
    finals = {}
    for workflow in ("replace", "accumulate"):
        r = run_simulation(SimConfig(world, 10, spec["samples"], spec["seeds"], 4, Policy(workflow), spec["options"]))
        finals[workflow] = np.median(r.metrics[r.primary_metric][:, 10])
    if r.higher_is_worse:
        assert finals["accumulate"] < finals["replace"]
    else:  # vae: latent spread shrinks as the model collapses
        assert finals["accumulate"] > finals["replace"]


def test_fixed_seed_gives_identical_results_and_another_seed_differs():
    def run(seed):
        return run_simulation(SimConfig("discrete", 20, 30, 50, seed, Policy("subsample", 0.1, prev_fraction=0.2)))

    a, b, c = run(1), run(1), run(2)
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k])
    assert not np.array_equal(a.metrics["tv"], c.metrics["tv"])


def test_human_fraction_and_filter_reduce_degradation():
    def final(policy):
        r = run_simulation(SimConfig("gaussian", 60, 50, 2000, 0, policy))
        return np.median(r.metrics["w2_sq"][:, -1])

    no_human, some_human = final(Policy("replace", 0.0)), final(Policy("replace", 0.1))
    filtered = final(Policy("replace", 0.1, filter_tpr=0.8, filter_fpr=0.05))
    assert no_human > some_human > filtered


def test_policy_split_and_schedule():
    p = Policy("replace", human_fraction=0.1, prev_fraction=0.2, filter_tpr=0.5, filter_fpr=0.5)
    assert p.model_fraction == pytest.approx(0.7)
    # kept shares: model 0.7 * 0.5, prev 0.2, human 0.1 * 0.5 -> renormalised to the budget
    assert p.split(100) == (59, 33, 8)
    assert sum(p.split(100)) == 100
    assert [Policy(schedule=s).size(10, 2) for s in ("constant", "linear", "quadratic")] == [10, 30, 90]


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(human_fraction=0.5, prev_fraction=0.2, model_fraction=0.5), "sum to 1"),
    (dict(human_fraction=1.5), "[0, 1]"),
    (dict(workflow="replcae"), "did you mean 'replace'"),
    (dict(schedule="cubic"), "unknown schedule"),
])
def test_bad_policies_are_refused(kwargs, fragment):
    with pytest.raises(CollapseguardError, match=None) as err:
        Policy(**kwargs)
    assert fragment in str(err.value)


def test_bad_sizes_and_worlds_are_refused():
    with pytest.raises(CollapseguardError, match="--samples"):
        SimConfig("gaussian", 10, 0, 10)
    with pytest.raises(CollapseguardError, match="--generations"):
        SimConfig("gaussian", -1, 10, 10)
    with pytest.raises(CollapseguardError, match="did you mean 'gaussian'"):
        run_simulation(SimConfig("gausian", 1, 10, 2))
    with pytest.raises(CollapseguardError, match="no option"):
        run_simulation(SimConfig("gaussian", 1, 10, 2, options={"stats": 3}))
    with pytest.raises(CollapseguardError, match="removes every candidate"):
        run_simulation(SimConfig("gaussian", 2, 10, 2, policy=Policy(filter_tpr=1.0)))


def test_trend_check_ignores_insignificant_reversals():
    from collapseguard.simulate.checks import human_fraction_trend

    def cell(c, finals):
        r = run_simulation(SimConfig("gaussian", 1, 10, len(finals), 0, Policy("replace", c)))
        r.metrics["w2_sq"][:, -1] = finals
        return r

    rng = np.random.default_rng(0)
    noisy = [cell(0.0, 1 + rng.random(10)), cell(0.1, 0.5 + rng.random(10)), cell(0.2, 0.55 + rng.random(10))]
    trend = human_fraction_trend(noisy, "gaussian", "replace")
    assert trend["reversals"] == 1 and trend["monotone"]
    real = [cell(0.0, 1 + rng.random(10)), cell(0.1, 3 + rng.random(10))]
    assert not human_fraction_trend(real, "gaussian", "replace")["monotone"]
