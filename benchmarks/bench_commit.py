"""Hook latency as a developer meets it: a real `git commit` through pre-commit with both hooks, and
fresh-process `hook verify` / `hook scan`, for one or more code trees, interleaved.

Builds a committed dataset repository (make_repo: a ledger-only policy, the team key,
one RECORDS-record jsonl shard and its signed manifest), installs pre-commit with the two hooks of
the current tree's `.pre-commit-hooks.yaml` (as a `repo: local` config, `files: ^data/`), and per
round and code tree times:

- `commit`: edit one record, rebuild and re-sign the manifest (not timed), `git add`, then
  `git commit` with both hooks (pre-commit runs `collapseguard hook verify data/a.jsonl
  data/manifest.json` and `collapseguard hook scan data/a.jsonl`);
- `commit, hooks skipped`: the same with SKIP=collapseguard-verify,collapseguard-scan (git and
  pre-commit, no hook);
- `commit -n`: the same commit without pre-commit (git alone);
- `verify` and `scan`: the hook commands on their own, each a fresh process.

The hooks run the `collapseguard` console script beside this Python with PYTHONPATH set to the
tree, so every tree runs its own code under the same interpreter. Each tree is run once untimed
first (writes its bytecode and numba caches, as an install does once). Bytecode is written and
read (PYTHONDONTWRITEBYTECODE is unset, as for an installed package). Thread pools are pinned to
--threads. Wall time and CPU time (user + system of every child process, git and pre-commit
included) per run; best and median.

    python benchmarks/bench_commit.py --code . --code /tmp/base --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

KINDS = ("commit", "commit, hooks skipped", "commit -n", "verify", "scan")


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


def tree_env(code: Path, threads: int) -> dict:
    exe_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    threads = str(threads)
    env.update(PYTHONPATH=str(code), PATH=f"{exe_dir}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS=threads,
               MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, NUMBA_NUM_THREADS=threads,
               GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return env


def install_hooks(repo: Path, hooks_file: Path, env: dict) -> None:
    """pre-commit with both hooks as a `repo: local` config (no clone), limited to data/."""
    hooks = [{**h, "files": "^data/"} for h in yaml.safe_load(hooks_file.read_text())]
    for h in hooks:
        h.pop("description", None)
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}))
    subprocess.run(["git", "add", ".pre-commit-config.yaml"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qnm", "hooks"], cwd=repo, env=env, check=True)
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def stage_edit(repo: Path, private: Path, code: Path, n: int, env: dict) -> None:
    """Replace the shard's first record, rebuild and re-sign its manifest, stage both (untimed)."""
    shard = repo / "data" / "a.jsonl"
    lines = shard.read_text().splitlines(keepends=True)
    lines[0] = json.dumps({"text": f"edit number {n} of the first record, written by hand"}) + "\n"
    shard.write_text("".join(lines))
    for args in (("provenance", "build", "data", "--overwrite"),
                 ("provenance", "sign", "data/manifest.json", "--key", str(private))):
        proc = cli(code, repo, *args)
        assert proc.returncode == 0, proc.stderr
    subprocess.run(["git", "add", "data"], cwd=repo, env=env, check=True)


def timed(cmd: list[str], repo: Path, env: dict, passed: int = 0) -> tuple[float, float]:
    """Wall and CPU seconds (all children, waited for) of one command, which must exit 0 (and
    report `passed` hooks passed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).count("Passed") == passed, " ".join(cmd) + "\n" + proc.stdout + proc.stderr
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def one_round(code: Path, repo: Path, private: Path, n: int, threads: int) -> dict[str, tuple[float, float]]:
    env = tree_env(code, threads)
    cg = shutil.which("collapseguard", path=env["PATH"])
    hook = [cg] if cg else [sys.executable, "-m", "collapseguard.cli.main"]
    out = {}
    stage_edit(repo, private, code, 3 * n, env)
    out["commit"] = timed(["git", "commit", "-qm", f"edit {3 * n}"], repo, env, passed=2)
    stage_edit(repo, private, code, 3 * n + 1, env)
    out["commit, hooks skipped"] = timed(["git", "commit", "-qm", f"edit {3 * n + 1}"], repo,
                                         {**env, "SKIP": "collapseguard-verify,collapseguard-scan"})
    stage_edit(repo, private, code, 3 * n + 2, env)
    out["commit -n"] = timed(["git", "commit", "-qnm", f"edit {3 * n + 2}"], repo, env)
    out["verify"] = timed(hook + ["hook", "verify", "data/a.jsonl", "data/manifest.json"], repo, env)
    out["scan"] = timed(hook + ["hook", "scan", "data/a.jsonl"], repo, env)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", type=Path, help="A code tree to time (repeatable; default: .)")
    parser.add_argument("--runs", type=int, default=7, help="Timed rounds per tree (interleaved).")
    parser.add_argument("--records", type=int, default=100, help="Records in the shard.")
    parser.add_argument("--ledger-items", type=int, default=1000, help="Known model outputs in the policy's ledger.")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL/OpenBLAS/numba threads, every tree.")
    args = parser.parse_args()
    codes = [c.resolve() for c in (args.code or [Path(".")])]
    hooks_file = Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml"
    times: dict[Path, dict[str, list]] = {c: {k: [] for k in KINDS} for c in codes}
    print(f"load average before: {timing.load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), codes[0], args.records, args.ledger_items)
        private = Path(tmp) / "private" / "team"
        install_hooks(repo, hooks_file, tree_env(codes[0], args.threads))
        for code in codes:  # untimed: bytecode and numba caches, once per tree as once per install
            one_round(code, repo, private, 1000 + codes.index(code), args.threads)
        for r in range(args.runs):
            for code in codes:
                for kind, value in one_round(code, repo, private, r * len(codes) + codes.index(code), args.threads).items():
                    times[code][kind].append(value)
    print(f"load average after: {timing.load_average()}")
    print(f"{args.records}-record shard, {args.ledger_items}-item ledger, {args.threads} thread(s), {args.runs} runs; seconds")
    print("| tree | step | wall best | wall median | CPU best | CPU median |")
    print("|---|---|---:|---:|---:|---:|")
    for code in codes:
        for kind in KINDS:
            walls, cpus = [w for w, _ in times[code][kind]], [c for _, c in times[code][kind]]
            print(f"| {code} | {kind} | {min(walls):.3f} | {statistics.median(walls):.3f} | {min(cpus):.3f} | "
                  f"{statistics.median(cpus):.3f} |")


if __name__ == "__main__":
    main()
