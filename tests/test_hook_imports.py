"""Import discipline of the hooks: `hook verify` loads no numeric library and `hook scan` of a jsonl
shard with a ledger-only policy loads only numpy (no numba, scipy, pyarrow, pandas, matplotlib,
torch), in a fresh process, with the hooks' findings the same as ever (a clean shard passes, a
shard of known model outputs is flagged). With a calibrated policy the drift verdict decides
records (`on_drift = "abstain"`, the default), so the hook runs the drift check; with fewer than
100 texts on a side it gives no verdict and loads nothing beyond numpy, and it never loads a model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from provenance_data import run, sentences, signed_dataset

pytest.importorskip("cryptography")

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "numba", "scipy", "pyarrow", "pandas", "matplotlib", "torch", "sklearn", "datasketch")
MACHINE = sentences(8, seed=1)


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    signed_dataset(repo, tmp_path / "private", MACHINE, sentences(100, seed=2))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "data"]):
        subprocess.run(git + args, cwd=repo, check=True, capture_output=True)
    return repo


def hook_modules(repo: Path, *args: str) -> tuple[int, list[str], str]:
    """Exit code, the heavy modules loaded and the output of `collapseguard hook ARGS` in a fresh
    process, which must start no process but git (so nothing heavy hides in a child)."""
    code = ("import subprocess, sys\nfrom collapseguard.cli.main import cli\nchildren = []\n"
            "popen = subprocess.Popen.__init__\n"
            "def record(self, args, *a, **k):\n    children.append(str(args[0] if isinstance(args, (list, tuple)) else args))\n"
            "    popen(self, args, *a, **k)\n"
            "subprocess.Popen.__init__ = record\n"
            "try:\n    cli.main(sys.argv[1:], prog_name='collapseguard')\n"
            "except SystemExit as exc:\n    status = exc.code or 0\n"
            f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
            "print('CHILDREN', [c for c in children if c != 'git'])\nsys.exit(status)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run([sys.executable, "-c", code, "hook", *args], cwd=repo, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    heavy = [line[6:] for line in proc.stdout.splitlines() if line.startswith("HEAVY ")]
    assert heavy and "CHILDREN []" in proc.stdout.splitlines(), out
    return proc.returncode, eval(heavy[-1]), out


def test_hook_verify_loads_no_numeric_library(repo):
    code, heavy, out = hook_modules(repo, "verify", "data/a.jsonl", "data/manifest.json")
    assert (code, heavy) == (0, []), out
    with (repo / "data" / "a.jsonl").open("a") as f:
        f.write(json.dumps({"text": "tampered"}) + "\n")
    code, heavy, out = hook_modules(repo, "verify", "data/a.jsonl", "data/manifest.json")
    assert code == 1 and "data/a.jsonl: changed" in out
    assert heavy == []


def test_hook_scan_of_a_small_jsonl_shard_loads_numpy_only(repo):
    code, heavy, out = hook_modules(repo, "scan", "data/a.jsonl")
    assert (code, heavy) == (0, ["numpy"]), out
    with (repo / "data" / "a.jsonl").open("a") as f:
        f.write("".join(json.dumps({"text": t}) + "\n" for t in MACHINE * 5))  # 40 of 140: over 0.2
    code, heavy, out = hook_modules(repo, "scan", "data/a.jsonl")
    assert code == 1 and "data/a.jsonl: 40 of 140 records flagged synthetic" in out, out
    assert heavy == ["numpy"]


def test_hook_scan_with_a_calibrated_policy_loads_no_model(repo):
    held = repo.parent / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in sentences(120, seed=11)))
    machine = repo.parent / "machine.jsonl"
    machine.write_text("".join(json.dumps({"text": t}) + "\n" for t in MACHINE))
    run("policy", "calibrate", "--policy", repo / "collapseguard.toml", "--human", held, "--machine", machine,
        "--fpr", "0.05", "--out", repo / "cal.json")
    policy = repo / "collapseguard.toml"
    policy.write_text('calibration = "cal.json"\n' + policy.read_text())
    for args in (["add", "-A"], ["commit", "-qm", "calibrated"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True,
                       capture_output=True)
    code, heavy, out = hook_modules(repo, "scan", "data/a.jsonl")
    assert (code, heavy) == (0, ["numpy"]), out


def test_the_hooks_scan_summary_equals_a_full_scans(repo, tmp_path):
    """The hook's lighter scan (no attribute shards, plots or drift check) counts and estimates
    exactly what `collapseguard scan` does, and writes neither attributes nor plots."""
    from collapseguard.scan.engine import ScanConfig, run_scan

    with (repo / "data" / "a.jsonl").open("a") as f:
        f.write("".join(json.dumps({"text": t}) + "\n" for t in MACHINE))
    old = Path.cwd()
    os.chdir(repo)
    try:
        full = run_scan(ScanConfig(["data"], str(tmp_path / "full"), "collapseguard.toml"))
        light = run_scan(ScanConfig(["data"], str(tmp_path / "light"), "collapseguard.toml", attributes=False, drift=False))
    finally:
        os.chdir(old)
    assert full["decisions"]["synthetic"] == 8
    assert {k: v for k, v in light.items() if k != "run"} == {k: v for k, v in full.items() if k != "run"}
    assert (tmp_path / "full" / "attributes" / "a.jsonl.parquet").is_file()
    assert list((tmp_path / "full").glob("hist_*.png"))
    assert (tmp_path / "light" / "summary.json").is_file()
    assert not (tmp_path / "light" / "attributes").exists() and not list((tmp_path / "light").glob("hist_*.png"))
