"""Option parsers: KEY=VALUE pairs, world options (typed and range-checked, naming the option),
rates, and the CLI around them (exit 2, one stderr line, nothing written). Property-based
cases compare the world-option parser with an independent statement of each option's rule."""

from __future__ import annotations

import json
import math

import pytest
from bad_input import refused
from hypothesis import given, settings
from hypothesis import strategies as st

from collapseguard.cli.options import parse_key_values
from collapseguard.cli.preflight import check_rates
from collapseguard.errors import CollapseguardError
from collapseguard.simulate.loop import SimConfig
from collapseguard.simulate.worlds.options import WORLD_OPTIONS, check_world_options

# the rule each numeric option must satisfy, written independently of the parser's table
RULES = {
    ("gaussian", "mu"): (float, lambda v: True),
    ("gaussian", "sigma"): (float, lambda v: v > 0),
    ("mvgaussian", "dim"): (int, lambda v: v >= 1),
    ("mvgaussian", "noise"): (float, lambda v: v >= 0),
    ("discrete", "states"): (int, lambda v: v >= 2),
    ("discrete", "exponent"): (float, lambda v: v >= 0),
    ("gmm", "components"): (int, lambda v: v >= 1),
    ("gmm", "separation"): (float, lambda v: v >= 0),
    **{("vae", k): (int, lambda v: v >= 1) for k in ("latent", "hidden", "steps", "batch")},
}

values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                   st.booleans(), st.none(), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(RULES)), value=values)
def test_numeric_world_options_follow_their_rule(key, value):
    world, name = key
    kind, ok = RULES[key]
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    valid = is_number and math.isfinite(value) and (kind is float or float(value).is_integer()) and ok(value)
    try:
        parsed = check_world_options(world, {name: value})[name]
    except CollapseguardError as exc:
        assert not valid, (key, value, exc)
        msg = str(exc)
        assert f"{name}=" in msg and f"-o {name}=" in msg and "\n" not in msg
    else:
        assert valid, (key, value, parsed)
        assert type(parsed) is kind and parsed == value


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.text(max_size=12), max_size=4))
def test_key_value_pairs_parse_or_refuse(pairs):
    try:
        out = parse_key_values(tuple(pairs), "world option", "states=50")
    except CollapseguardError as exc:
        bad = next(p for p in pairs if "=" not in p or p.startswith("="))
        assert repr(bad) in str(exc) and "-o states=50" in str(exc)
    else:
        last = {p.partition("=")[0]: p.partition("=")[2] for p in pairs}  # the last KEY=VALUE wins
        assert set(out) == set(last)
        for key, raw in last.items():
            try:
                expected = json.loads(raw)
            except json.JSONDecodeError:
                expected = raw
            assert out[key] == expected or (expected != expected)  # NaN != NaN


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_rates_lie_strictly_between_zero_and_one(r):
    try:
        check_rates([r])
    except CollapseguardError as exc:
        assert not 0 < r < 1 and "--fpr" in str(exc)
    else:
        assert 0 < r < 1


def test_every_world_has_rules_for_its_numeric_options():
    numeric = {(w, k) for w, specs in WORLD_OPTIONS.items() for k, s in specs.items() if s.kind in (int, float)}
    assert numeric == set(RULES)


@pytest.mark.parametrize("world, option, needle", [
    ("discrete", "truth=normal", "choose one of uniform, zipf"),
    ("gaussian", "estimator=mel", "did you mean 'mle'"),
    ("gaussian", "exact_statistics=maybe", "not true or false"),
    ("gmm", "component=3", "did you mean 'components'"),
])
def test_choice_and_unknown_world_options(world, option, needle):
    key, _, raw = option.partition("=")
    with pytest.raises(CollapseguardError, match=needle):
        SimConfig(world, options={key: raw})


@pytest.mark.parametrize("args, needle", [
    (["--world", "discrete", "-o", "states=abc"], "states='abc' (discrete): not a number; write e.g. -o states=20"),
    (["-o", "sigma=-1"], "sigma=-1.0 (gaussian): must be more than 0"),
    (["-o", "sigma=NaN"], "not a finite number"),
    (["--world", "discrete", "-o", "states=2.5"], "not a whole number"),
    (["--world", "discrete", "-o", "states=1"], "must be at least 2"),
    (["--world", "mvgaussian", "-o", "dim=0"], "dim=0 (mvgaussian): must be at least 1"),
    (["-o", "states"], "is not KEY=VALUE; write e.g. -o states=50"),
    (["--world", "gausian"], "did you mean 'gaussian'"),
    (["--generations", "0"], "--generations must be a positive whole number"),
    (["--samples", "1"], "--samples 1: world 'gaussian' needs at least 2 samples"),
    (["--world", "gmm", "--samples", "3"], "needs at least 4 samples"),
    (["--human-fraction", "1.5"], "human"),
    (["--world", "lm", "-o", "states=2"], "--world lm takes no -o world options"),
    (["--world", "lm", "--corpus", "nope.txt"], "nope.txt: no such file or directory (--corpus)"),
    (["--world", "lm", "--preset", "huge"], "unknown preset 'huge'"),
    (["--world", "lm", "--device", "tpu"], "--device 'tpu': choose auto, cpu or cuda"),
])
def test_simulate_run_refuses_bad_options_and_writes_nothing(tmp_path, args, needle):
    refused(["simulate", "run", *args, "--out", tmp_path / "out"], tmp_path, needle)


def test_sweep_checks_every_cell_before_writing(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('[[worlds]]\nname = "discrete"\ngenerations = 2\nsamples = 10\nseeds = 2\n'
                    'options = { states = "many" }\n')
    refused(["simulate", "sweep", "--config", grid, "--out", tmp_path / "out"], tmp_path,
            "states='many' (discrete): not a number")
