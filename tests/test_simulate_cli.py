"""`collapseguard simulate run|sweep` end to end on tiny settings."""

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from collapseguard.cli.main import cli
from collapseguard.simulate.results import COLUMNS


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_writes_tidy_parquet_and_json_summary(tmp_path):
    res = invoke("simulate", "run", "--world", "discrete", "--generations", "5", "--samples", "20",
                 "--seeds", "7", "-o", "states=6", "--policy", "accumulate", "--human-fraction", "0.1",
                 "--out", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "results.parquet")
    assert tuple(table.column_names) == COLUMNS
    assert set(table.column("metric").to_pylist()) == {"tv", "kl", "surviving_states", "tail_mass", "absorbed"}
    assert table.num_rows == 5 * 7 * 6
    summary = json.loads(res.stdout)
    assert summary["config"]["seed"] == 0 and summary["config"]["policy"]["workflow"] == "accumulate"
    tv = summary["metrics"]["tv"]
    assert len(tv) == 6 and all(row["lo"] <= row["median"] <= row["hi"] for row in tv)
    assert json.loads(table.schema.metadata[b"collapseguard.configs"])[0]["options"] == {"states": 6}


def test_estimator_option_reaches_the_world(tmp_path):
    res = invoke("simulate", "run", "--generations", "2", "--samples", "10", "--seeds", "3",
                 "--estimator", "mle", "--out", str(tmp_path), "--json")
    assert json.loads(res.stdout)["config"]["options"] == {"estimator": "mle"}


def test_sweep_writes_report_and_plots(tmp_path):
    res = invoke("simulate", "sweep", "--world", "gaussian", "--world", "discrete", "--generations", "8",
                 "--samples", "20", "--seeds", "30", "--human-fraction", "0", "--human-fraction", "0.5",
                 "--out", str(tmp_path), "--json")
    assert res.exit_code == 0, res.output
    report = (tmp_path / "report.md").read_text()
    assert "## Claims checked" in report and "Variance law" in report
    for world in ("gaussian", "discrete"):
        for kind in ("degradation", "heatmap"):
            png = tmp_path / f"{kind}_{world}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finals = json.loads(res.stdout)["final_median"]
    assert set(finals) == {"gaussian", "discrete"} and set(finals["gaussian"]) == {"replace", "accumulate"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_sweep_from_toml(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('workflows = ["subsample"]\nhuman_fractions = [0.0, 0.2]\nseed = 3\n'
                    '[[worlds]]\nname = "mvgaussian"\ngenerations = 4\nsamples = 30\nseeds = 5\n'
                    'options = { dim = 2, noise = 0.1 }\n')
    res = invoke("simulate", "sweep", "--config", str(grid), "--out", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "o" / "results.parquet")
    assert set(table.column("policy").to_pylist()) == {"subsample"}
    assert sorted(set(table.column("human_fraction").to_pylist())) == [0.0, 0.2]


@pytest.mark.parametrize("args, fragment", [
    (["run", "--world", "gausian"], "did you mean 'gaussian'"),
    (["run", "--samples", "0"], "--samples must be a positive whole number"),
    (["run", "--seeds", "-3"], "--seeds must be a positive whole number"),
    (["run", "--human-fraction", "0.5", "--prev-fraction", "0.3", "--model-fraction", "0.5"], "sum to 1"),
    (["run", "--policy", "acumulate"], "did you mean 'accumulate'"),
    (["run", "-o", "states"], "KEY=VALUE"),
    (["run", "--world", "discrete", "-o", "stats=4"], "no option(s) stats"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    res = CliRunner().invoke(cli, ["simulate", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.output


def test_sweep_file_with_a_typo_names_the_key(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('human_fractoins = [0.1]\n[[worlds]]\nname = "gaussian"\ngenerations = 2\nsamples = 5\nseeds = 2\n')
    res = CliRunner().invoke(cli, ["simulate", "sweep", "--config", str(grid), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "human_fractoins" in res.output and "did you mean 'human_fractions'" in res.output
    assert len(res.output.strip().splitlines()) == 1
