"""Latency of `collapseguard hook verify` on a small committed dataset repository, as pre-commit runs it.

Builds a repository (a policy, a team key, one 200-record jsonl shard and its signed manifest, one
commit) in a temporary folder, then times `python -m collapseguard.cli.main hook verify
data/a.jsonl data/manifest.json` RUNS times per code tree, interleaved so machine load hits every
tree alike. Prints the median and minimum wall time and the mean CPU time (with git's children).

    python benchmarks/bench_hook.py --code . --code /path/to/older/checkout --runs 15
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cli(code: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(code))
    return subprocess.run([sys.executable, "-m", "collapseguard.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def make_repo(root: Path, code: Path, records: int = 200, ledger_items: int = 1) -> Path:
    """A committed dataset repository: a ledger-only policy (`ledger_items` known model outputs), the
    team key, `records` jsonl records and their signed manifest."""
    repo, private = root / "repo", root / "private" / "team"
    (repo / "data").mkdir(parents=True)
    (repo / ".collapseguard" / "keys").mkdir(parents=True)
    rng = random.Random(2)
    vocab = [f"w{i}" for i in range(2000)]
    (repo / "data" / "a.jsonl").write_text("".join(
        json.dumps({"text": " ".join(rng.choice(vocab) for _ in range(30))}) + "\n" for _ in range(records)))
    machine = [" ".join(vocab[:12])] + [" ".join(rng.choice(vocab) for _ in range(30)) for _ in range(ledger_items - 1)]
    (repo / "machine.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in machine))
    (repo / "collapseguard.toml").write_text('max_synthetic_share = 0.2\n[[detectors]]\nname = "minhash_v1"\n'
                                             'threshold = 0.5\noptions = { ledger = "gens.ledger" }\n')
    for args in (("ledger", "add", "gens.ledger", "machine.jsonl"), ("provenance", "keygen", "--out", str(private)),
                 ("provenance", "build", "data", "--overwrite"),
                 ("provenance", "sign", "data/manifest.json", "--key", str(private))):
        proc = cli(code, repo, *args)
        assert proc.returncode == 0, proc.stderr
    (repo / "machine.jsonl").unlink()
    (repo / ".collapseguard" / "keys" / "team.pub").write_bytes(Path(f"{private}.pub").read_bytes())
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "data"]):
        subprocess.run(git + args, cwd=repo, check=True)
    return repo


def time_once(code: Path, repo: Path) -> tuple[float, float]:
    """Wall and CPU seconds (this child and its own children, git included) of one hook run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = cli(code, repo, "hook", "verify", "data/a.jsonl", "data/manifest.json")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", type=Path, help="A code tree to time (repeatable; default: .)")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    codes = [c.resolve() for c in (args.code or [Path(".")])]
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), codes[0])
        times: dict[Path, list[tuple[float, float]]] = {c: [] for c in codes}
        for _ in range(args.runs):
            for code in codes:
                times[code].append(time_once(code, repo))
    for code, rows in times.items():
        walls, cpus = [w for w, _ in rows], [c for _, c in rows]
        print(f"{code}: wall median {statistics.median(walls):.3f} s, min {min(walls):.3f} s; "
              f"CPU mean {statistics.mean(cpus):.3f} s ({args.runs} runs)")


if __name__ == "__main__":
    main()
