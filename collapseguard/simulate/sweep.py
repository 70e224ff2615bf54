"""Sweeps: a grid of worlds x workflows x human fractions, from the embedded default or TOML."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError, suggest
from collapseguard.simulate.loop import SimConfig, SimResult, run_simulation
from collapseguard.simulate.policy import Policy
from collapseguard.simulate.worlds import world_class


@dataclass(frozen=True)
class WorldSpec:
    """One world of a sweep, with its own sizes and options."""

    name: str
    generations: int
    samples: int
    seeds: int
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SweepConfig:
    """The grid: every world runs every workflow at every human fraction."""

    worlds: tuple[WorldSpec, ...]
    workflows: tuple[str, ...] = ("replace", "accumulate")
    human_fractions: tuple[float, ...] = (0.0, 0.01, 0.1, 0.5)
    seed: int = 0
    schedule: str = "constant"
    prev_fraction: float = 0.0
    filter_tpr: float = 0.0
    filter_fpr: float = 0.0

    def cells(self) -> list[SimConfig]:
        """One SimConfig per grid cell (validated on construction)."""
        return [
            SimConfig(w.name, w.generations, w.samples, w.seeds, self.seed,
                      Policy(wf, c, self.prev_fraction, None, self.schedule, self.filter_tpr, self.filter_fpr),
                      dict(w.options))
            for w in self.worlds for wf in self.workflows for c in self.human_fractions
        ]


# The embedded default: about two minutes on two cores (BENCHMARKS.md).
DEFAULT_SWEEP = SweepConfig(worlds=(
    WorldSpec("gaussian", generations=200, samples=100, seeds=1000),
    WorldSpec("discrete", generations=800, samples=100, seeds=500, options={"states": 20, "truth": "zipf"}),
    WorldSpec("gmm", generations=30, samples=200, seeds=10),
))


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(where: str, table: dict, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise CollapseguardError(
                f"{where}: unknown key {key!r}{suggest(key, allowed)}; allowed: {', '.join(sorted(allowed))}"
            )


def sweep_from_dict(data: dict, where: str = "sweep") -> SweepConfig:
    """Build a SweepConfig from a parsed TOML table, refusing unknown keys by name."""
    _check_keys(where, data, _fields(SweepConfig))
    worlds = data.get("worlds")
    if not worlds:
        raise CollapseguardError(f"{where}: no [[worlds]] tables; add at least one, e.g. [[worlds]] name = \"gaussian\"")
    specs = []
    for i, w in enumerate(worlds):
        _check_keys(f"{where}: worlds[{i}]", w, _fields(WorldSpec))
        missing = {"name", "generations", "samples", "seeds"} - set(w)
        if missing:
            raise CollapseguardError(f"{where}: worlds[{i}] is missing {', '.join(sorted(missing))}")
        specs.append(WorldSpec(**w))
    rest = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "worlds"}
    config = SweepConfig(worlds=tuple(specs), **rest)
    config.cells()  # validate every cell now, before any work
    return config


def load_sweep(path: str | Path) -> SweepConfig:
    """Read a sweep grid from a TOML file."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CollapseguardError(f"{path}: not valid TOML ({exc}); fix the file") from None
    return sweep_from_dict(data, where=str(path))


def generation_work(cell: SimConfig) -> list[float]:
    """Estimated cost of each generation of `cell`: seeds x points fitted x the world's point cost
    (accumulate fits on everything so far). Only for progress: the parts are right within a few x."""
    policy, world = cell.policy, world_class(cell.world)
    sizes = np.array([policy.size(cell.samples, g) for g in range(cell.generations + 1)], dtype=float)
    if policy.workflow == "accumulate":
        sizes = sizes * (np.cumsum(sizes) / sizes) ** world.accumulate_growth
    return list(cell.seeds * sizes * world.point_cost)


def run_sweep(config: SweepConfig, progress: Callable[[SimConfig, int], None] | None = None) -> list[SimResult]:
    """Run every cell; `progress(cell, generation)` after each generation."""
    results = []
    for cell in config.cells():
        results.append(run_simulation(cell, (lambda g, c=cell: progress(c, g)) if progress else None))
    return results
