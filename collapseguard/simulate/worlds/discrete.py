"""Discrete world: K categories fitted exactly by their empirical frequencies.

Refitting is a neutral Wright-Fisher chain: every run is absorbed in a single state.
"""

from __future__ import annotations

import numpy as np

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.simulate.data import Counts
from collapseguard.simulate.worlds.base import World

TRUTHS = ("uniform", "zipf")
KL_EPSILON = 1e-6  # model mass floor for KL; see DiscreteWorld.metrics


def truth_probs(states: int, shape: str, exponent: float = 1.1) -> np.ndarray:
    """The true distribution over `states` categories, most likely first."""
    check_choice("discrete truth", shape, TRUTHS)
    if states < 2:
        raise CollapseguardError(f"discrete world needs at least 2 states, got {states}; pass -o states=2 or more")
    weights = np.ones(states) if shape == "uniform" else 1.0 / np.arange(1, states + 1) ** exponent
    return weights / weights.sum()


class DiscreteWorld(World):
    """Truth: uniform or Zipfian over K states. Model: empirical frequencies."""

    name = "discrete"
    point_cost = 4.0
    accumulate_growth = 0.3
    primary_metric = "tv"
    min_samples = 1

    def __init__(self, seeds: int, states: int = 20, truth: str = "zipf", exponent: float = 1.1):
        super().__init__(seeds)
        self.states, self.shape, self.exponent = int(states), truth, float(exponent)
        self.p = truth_probs(self.states, truth, exponent)  # (K,)
        n_tail = max(1, int(np.ceil(0.1 * self.states)))
        self.tail = np.argsort(self.p, kind="stable")[:n_tail]  # the truth's rarest 10% of states

    def params(self) -> dict:
        return {"states": self.states, "truth": self.shape, "exponent": self.exponent}

    def truth(self, n, rng):
        return Counts(rng.multinomial(n, self.p, size=self.seeds))

    def fit(self, data, rng):
        counts = data.counts
        return counts / counts.sum(axis=1, keepdims=True)  # (S, K)

    def sample(self, model, n, rng):
        return Counts(rng.multinomial(n, model))

    def metrics(self, model):
        """tv, kl, surviving_states, tail_mass, absorbed.

        KL(truth || model) is infinite once a state dies, so it is computed against the model
        with every state's mass floored at KL_EPSILON and renormalised.
        """
        q = model
        q_eps = (q + KL_EPSILON) / (1 + KL_EPSILON * self.states)
        return {
            "tv": 0.5 * np.abs(q - self.p).sum(axis=1),
            "kl": (self.p * np.log(self.p / q_eps)).sum(axis=1),
            "surviving_states": (q > 0).sum(axis=1).astype(float),
            "tail_mass": q[:, self.tail].sum(axis=1),
            "absorbed": (q.max(axis=1) >= 1.0).astype(float),
        }
