"""Progress when stderr is not a terminal: lines at a steady interval, not a bare label."""

from __future__ import annotations

import time

from click.testing import CliRunner

from collapseguard.cli.main import cli
from collapseguard.cli.progress import Heartbeat, PeriodicLog


def test_periodic_log_counts(monkeypatch, capsys):
    monkeypatch.setenv("COLLAPSEGUARD_PROGRESS_SECONDS", "0")
    with PeriodicLog(4, "work") as bar:
        for _ in range(4):
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["work: 1/4 (25%), 0 s", "work: 2/4 (50%), 0 s"]
    assert lines[-1] == "work: 4/4 done in 0 s"


def test_periodic_log_is_quiet_within_an_interval(monkeypatch, capsys):
    monkeypatch.setenv("COLLAPSEGUARD_PROGRESS_SECONDS", "3600")
    with PeriodicLog(4, "work") as bar:
        bar.update(4)
    assert capsys.readouterr().err == ""


def test_heartbeat_beats_until_the_block_ends(monkeypatch, capsys):
    monkeypatch.setenv("COLLAPSEGUARD_PROGRESS_SECONDS", "0.05")
    with Heartbeat("train") as beat:
        beat.say("stage one")
        time.sleep(0.3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "stage one"
    beats = [line for line in err if line.startswith("train: still running")]
    assert len(beats) >= 2 and all(line.endswith("(last: stage one)") for line in beats)
    time.sleep(0.15)
    assert capsys.readouterr().err == ""  # stopped with the block


def test_simulate_run_logs_progress_lines_in_a_pipe(tmp_path):
    res = CliRunner().invoke(cli, ["simulate", "run", "--generations", "2", "--seeds", "2", "--out", str(tmp_path / "o")],
                             env={"COLLAPSEGUARD_PROGRESS_SECONDS": "0"})
    assert res.exit_code == 0, res.output
    assert "gaussian replace: 1/3 (33%)" in res.stderr and "gaussian replace: 3/3 done" in res.stderr
