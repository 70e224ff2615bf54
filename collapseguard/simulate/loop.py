"""The collapse loop: fit generation 0 on the truth, then refit each generation on mixed data."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.simulate.data import concat
from collapseguard.simulate.policy import Policy
from collapseguard.simulate.worlds import WORLDS, world_class
from collapseguard.simulate.worlds.options import check_world_options

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    """One simulation: a world, a policy, and sizes. ``seeds`` independent runs share one rng seed."""

    world: str = "gaussian"
    generations: int = 100
    samples: int = 100
    seeds: int = 100
    seed: int = 0
    policy: Policy = field(default_factory=Policy)
    options: dict = field(default_factory=dict)  # world parameters, e.g. {"estimator": "mle"}

    def __post_init__(self):
        for name in ("generations", "samples", "seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CollapseguardError(f"--{name} must be a positive whole number, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise CollapseguardError(f"seed {self.seed!r}: must be a whole number from 0 to {2**32 - 1}; e.g. --seed 0")
        check_choice("world", self.world, WORLDS)
        object.__setattr__(self, "options", check_world_options(self.world, self.options))


@dataclass
class SimResult:
    """Metrics of every seed at every generation: name -> array (seeds, generations + 1)."""

    config: SimConfig
    world_params: dict
    metrics: dict[str, np.ndarray]
    primary_metric: str
    higher_is_worse: bool
    seconds: float


def make_world(config: SimConfig):
    """Build the configured world (its options were checked when the config was made)."""
    cls = world_class(config.world)
    options = dict(config.options)
    if config.world == "gaussian":  # exact sufficient statistics unless the policy subsamples
        options.setdefault("exact_statistics", not config.policy.subsamples)
    return cls(config.seeds, **options)


def run_simulation(config: SimConfig, progress: Callable[[int], None] | None = None) -> SimResult:
    """Run the loop for all seeds at once; `progress(generation)` is called after each generation."""
    start = time.perf_counter()
    world, policy = make_world(config), config.policy
    if policy.size(config.samples, 0) < world.min_samples:
        raise CollapseguardError(f"--samples {config.samples}: world {config.world!r} needs at least "
                                 f"{world.min_samples} samples a generation; raise --samples")
    if 0 < policy.human_fraction * config.samples < 0.5:
        log.warning("human fraction %g of %d samples rounds to no human sample a generation; raise --samples",
                    policy.human_fraction, config.samples)
    rng = np.random.default_rng(config.seed)
    train = world.truth(policy.size(config.samples, 0), rng)
    pool = train
    model = world.fit(train, rng)
    history = [world.metrics(model)]
    if progress:
        progress(0)
    for g in range(1, config.generations + 1):
        m = policy.size(config.samples, g)
        n_model, n_prev, n_human = policy.split(m)
        parts = []
        if n_model:
            parts.append(world.sample(model, n_model, rng))
        if n_prev:
            parts.append(train.take(min(n_prev, train.size), rng))
        if n_human:
            parts.append(world.truth(n_human, rng))
        if not parts:
            raise CollapseguardError(
                f"generation {g}: the filter removes every candidate (no human data and --filter-tpr 1); "
                "add --human-fraction or lower --filter-tpr"
            )
        fresh = concat(parts)
        if policy.workflow == "replace":
            train = fresh
        elif policy.workflow == "accumulate":
            train = pool = concat([pool, fresh])
        else:
            pool = concat([pool, fresh])
            train = pool.take(min(m, pool.size), rng)
        if train.size < world.min_samples:
            raise CollapseguardError(
                f"generation {g} trains on {train.size} samples but world {config.world!r} needs "
                f"at least {world.min_samples}; raise --samples or lower the filter rates"
            )
        model = world.fit(train, rng)
        history.append(world.metrics(model))
        if progress:
            progress(g)
    metrics = {k: np.stack([h[k] for h in history], axis=1) for k in history[0]}
    return SimResult(config, world.params(), metrics, world.primary_metric,
                     world.higher_is_worse, time.perf_counter() - start)
