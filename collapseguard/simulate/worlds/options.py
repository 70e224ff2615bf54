"""Typed, range-checked world options (`-o KEY=VALUE` and the `options` tables of a sweep TOML).

Each option is parsed before any world is built, so a bad value is one line naming the
option, the world and an example, never a traceback from deep inside the simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from collapseguard.errors import CollapseguardError, suggest


@dataclass(frozen=True)
class Spec:
    """One option: its kind (int, float, bool or a tuple of choices), lower bound and example."""

    kind: object
    low: float | None = None
    low_open: bool = False  # True: value must exceed `low`
    example: str = ""


WORLD_OPTIONS: dict[str, dict[str, Spec]] = {
    "gaussian": {"mu": Spec(float, example="0"), "sigma": Spec(float, 0, True, "1"),
                 "estimator": Spec(("unbiased", "mle"), example="mle"), "exact_statistics": Spec(bool, example="false")},
    "mvgaussian": {"dim": Spec(int, 1, example="4"), "noise": Spec(float, 0, example="0.1")},
    "discrete": {"states": Spec(int, 2, example="20"), "truth": Spec(("uniform", "zipf"), example="uniform"),
                 "exponent": Spec(float, 0, example="1.1")},
    "gmm": {"components": Spec(int, 1, example="2"), "separation": Spec(float, 0, example="2")},
    "vae": {"latent": Spec(int, 1, example="8"), "hidden": Spec(int, 1, example="128"),
            "steps": Spec(int, 1, example="500"), "batch": Spec(int, 1, example="64")},
}


def _bad(world: str, key: str, value, what: str, spec: Spec) -> CollapseguardError:
    return CollapseguardError(f"world option {key}={value!r} ({world}): {what}; write e.g. -o {key}={spec.example}")


def _parse(world: str, key: str, value, spec: Spec):
    kind = spec.kind
    if isinstance(kind, tuple):
        if value not in kind:
            raise _bad(world, key, value, f"choose one of {', '.join(kind)}{suggest(str(value), kind)}", spec)
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _bad(world, key, value, "not true or false", spec)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(world, key, value, "not a number", spec)
    if not math.isfinite(value):
        raise _bad(world, key, value, "not a finite number", spec)
    if kind is int:
        if float(value) != int(value):
            raise _bad(world, key, value, "not a whole number", spec)
        value = int(value)
    else:
        value = float(value)
    if spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low):
        bound = f"more than {spec.low:g}" if spec.low_open else f"at least {spec.low:g}"
        raise _bad(world, key, value, f"must be {bound}", spec)
    return value


def check_world_options(world: str, options: dict) -> dict:
    """`options` with each value parsed and range-checked for `world`; unknown keys refused."""
    specs = WORLD_OPTIONS.get(world, {})
    unknown = sorted(set(options) - set(specs))
    if unknown:
        close = suggest(unknown[0], specs)
        raise CollapseguardError(
            f"world {world!r} has no option(s) {', '.join(unknown)}{close}; it takes: {', '.join(sorted(specs)) or 'none'}"
        )
    return {k: _parse(world, k, v, specs[k]) for k, v in options.items()}
