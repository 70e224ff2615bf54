"""What a user sees on the command line: results (`--json`, the closing `wrote ...` line) on stdout
and progress on stderr, output paths joined cleanly, no numpy warning on an empty shard, and a
sweep's progress that follows the work rather than the count of generations."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from provenance_data import sentences, write_policy

from collapseguard.cli.main import cli


def invoke(args, cwd: Path, env=None):
    import os

    old = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, [str(a) for a in args], env=env)
    finally:
        os.chdir(old)


def jsonl(path: Path, texts) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def test_a_trailing_slash_on_out_gives_clean_paths(tmp_path):
    pytest.importorskip("datasketch")
    machine = sentences(8, seed=1)
    write_policy(tmp_path, machine, limit=None)
    jsonl(tmp_path / "data" / "a.jsonl", sentences(20, seed=2) + machine[:3])
    res = invoke(["scan", "data/", "--out", "scan/"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "wrote scan/summary.md, scan/summary.json and scan/attributes/" in res.stdout
    res = invoke(["filter", "data/", "--attributes", "scan/", "--out", "clean/"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "wrote clean/kept, clean/rejected and clean/abstained" in res.stdout
    jsonl(tmp_path / "gen" / "g.jsonl", machine)
    res = invoke(["curate", "--human", "data/", "--synthetic", "gen/", "--allow-unsigned", "--human-fraction",
                  "0.5", "--size", "4", "--out", "mix/"], tmp_path)
    assert res.exit_code == 0, res.output
    assert "to mix/data in 1 shard(s); manifest mix/manifest.json" in res.stdout


def test_an_empty_shard_scans_without_numpy_warnings(tmp_path, monkeypatch):
    """An empty jsonl beside nothing else, under a calibration that records the MiniLM centroid
    (opt-in, `--domain-embeddings`): the drift check has no text to embed, and says so without
    numpy's 'Mean of empty slice' (a fixed 4-wide embedding stands in for MiniLM)."""
    pytest.importorskip("datasketch")
    from collapseguard.detectors import drift

    record = drift.domain_record
    monkeypatch.setattr(drift, "domain_record", lambda texts, embeddings=False: record(texts, True))
    monkeypatch.setattr(drift, "embed", lambda texts: np.full((len(texts), 4), 0.5))
    machine = sentences(8, seed=1)
    write_policy(tmp_path, machine, limit=0.5, calibration="cal.json")
    jsonl(tmp_path / "held.jsonl", sentences(60, seed=3))
    jsonl(tmp_path / "machine.jsonl", machine)
    res = invoke(["policy", "calibrate", "--human", "held.jsonl", "--machine", "machine.jsonl", "--fpr", "0.1",
                  "--out", "cal.json"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "cal.json").read_text())["domain"]["embeddings"]  # the record that needs it
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "e.jsonl").write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = invoke(["scan", "empty/", "--out", "scan-empty"], tmp_path)
    assert res.exit_code == 0, res.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "0 records" in res.stdout and "RuntimeWarning" not in res.output


@pytest.mark.parametrize("args", [
    ["simulate", "run", "--world", "gaussian", "--generations", "5", "--seeds", "3", "--out", "runs/g"],
    ["simulate", "sweep", "--world", "gaussian", "--generations", "3", "--human-fraction", "0", "--out", "runs/s"],
])
def test_the_closing_wrote_line_is_the_result_on_stdout(tmp_path, args):
    res = invoke(args, tmp_path)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("wrote runs/") and "wrote" not in res.stderr
    (tmp_path / "j").mkdir()  # with --json, stdout is the JSON alone
    res = invoke([*args[:-1], "runs/j", "--json"], tmp_path / "j")
    assert res.exit_code == 0, res.output
    json.loads(res.stdout)


def test_sweep_work_weighs_a_gmm_generation_far_above_a_gaussian_one():
    from collapseguard.simulate.loop import SimConfig
    from collapseguard.simulate.policy import Policy
    from collapseguard.simulate.sweep import DEFAULT_SWEEP, generation_work

    gauss, gmm = (generation_work(SimConfig(w, 10, 100, 10)) for w in ("gaussian", "gmm"))
    assert len(gauss) == 11 and min(gmm) > 1000 * max(gauss)
    acc = generation_work(SimConfig("gmm", 10, 100, 10, policy=Policy("accumulate")))
    assert acc[0] == gmm[0] and all(np.diff(acc) > 0)  # accumulate fits more data every generation
    cells = DEFAULT_SWEEP.cells()
    work = {c.world: 0.0 for c in cells}
    for c in cells:
        work[c.world] += sum(generation_work(c))
    generations = {w: sum(c.generations + 1 for c in cells if c.world == w) for w in work}
    # gmm holds 3% of the default sweep's generations and most of its time
    assert generations["gmm"] / sum(generations.values()) < 0.05 and work["gmm"] / sum(work.values()) > 0.5


def test_sweep_progress_lines_advance_by_work_to_100(tmp_path):
    (tmp_path / "grid.toml").write_text(
        'workflows = ["replace"]\nhuman_fractions = [0.0]\n'
        '[[worlds]]\nname = "gaussian"\ngenerations = 20\nsamples = 50\nseeds = 10\n'
        '[[worlds]]\nname = "gmm"\ngenerations = 3\nsamples = 50\nseeds = 2\n')
    res = invoke(["simulate", "sweep", "--config", "grid.toml", "--out", "runs/p"], tmp_path,
                 env={"COLLAPSEGUARD_PROGRESS_SECONDS": "0"})
    assert res.exit_code == 0, res.output
    shares = [int(m) for m in re.findall(r"\((\d+)%\)", res.stderr)]
    # the gaussian cell's 21 generations are under 1% of the work (counting generations would say
    # 84%); each of gmm's 4 generations is a quarter
    assert shares == [25, 50, 75, 100], res.stderr
