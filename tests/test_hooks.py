"""The pre-commit hooks, through the real pre-commit framework in a temporary dataset repository:
an installed `.pre-commit-config.yaml` pointing at this project's `.pre-commit-hooks.yaml`, and
real `git commit`s that the hooks pass or refuse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from provenance_data import sentences, write_policy

pytest.importorskip("cryptography")
pytest.importorskip("datasketch")

from collapseguard.cli.main import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MACHINE = sentences(8, seed=1)


def cg(*args, cwd=None, code=0):
    old = Path.cwd()
    try:
        if cwd:
            os.chdir(cwd)
        res = CliRunner().invoke(cli, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


def jsonl(path: Path, texts) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def sign_data(repo: Path, key: Path) -> None:
    cg("provenance", "build", repo / "data", "--overwrite")
    cg("provenance", "sign", repo / "data" / "manifest.json", "--key", key)


@pytest.fixture
def env(tmp_path):
    exe = shutil.which("collapseguard", path=str(Path(sys.executable).parent)) or shutil.which("collapseguard")
    if exe is None or shutil.which("git") is None:
        pytest.skip("needs git and the installed `collapseguard` command")
    return dict(os.environ, PATH=f"{Path(exe).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
                GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull,
                GIT_CONFIG_NOSYSTEM="1", OMP_NUM_THREADS="1")


def git(repo: Path, env, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def commit(repo: Path, env, message: str, *paths, flags=()) -> tuple[int, str]:
    """git commit's exit code and its output (the hooks print on stderr and stdout); `paths` alone
    when given, else every change."""
    git(repo, env, "add", *(paths or ["-A"]))
    proc = git(repo, env, "commit", *flags, "-m", message, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def head(repo: Path, env) -> str:
    return git(repo, env, "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def dataset_repo(tmp_path, env):
    pytest.importorskip("pre_commit")
    hooks = tmp_path / "hooks"  # the hooks manifest as a git repo, the way pre-commit fetches it
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    git(hooks, env, "init", "-q")
    git(hooks, env, "add", ".pre-commit-hooks.yaml")
    git(hooks, env, "commit", "-q", "-m", "hooks")
    rev = git(hooks, env, "rev-parse", "HEAD").stdout.strip()

    repo = tmp_path / "repo"
    write_policy(repo, MACHINE, limit=0.2)
    key = tmp_path / "private" / "team"
    cg("provenance", "keygen", "--out", key)
    (repo / ".collapseguard" / "keys").mkdir(parents=True)
    shutil.copy(f"{key}.pub", repo / ".collapseguard" / "keys" / "team.pub")
    jsonl(repo / "data" / "a.jsonl", sentences(12, seed=2))
    sign_data(repo, key)
    (repo / ".pre-commit-config.yaml").write_text(
        f"fail_fast: true\nrepos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n"
        "      - id: collapseguard-verify\n        files: ^data/\n"
        "      - id: collapseguard-scan\n        files: ^data/\n")
    git(repo, env, "init", "-q")
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo, key


def test_commits_pass_or_fail_through_the_installed_hooks(dataset_repo, env):
    repo, key = dataset_repo
    code, out = commit(repo, env, "clean data")
    assert code == 0, out
    assert out.count("Passed") == 2

    # a tampered shard fails verify, naming the file
    shard = repo / "data" / "a.jsonl"
    original = shard.read_bytes()
    shard.write_bytes(original.replace(b"w1", b"w7", 1))
    code, out = commit(repo, env, "tampered")
    assert code != 0
    assert "data/a.jsonl: changed (sha256 differs from the manifest)" in out
    shard.write_bytes(original)
    git(repo, env, "reset", "-q")

    # planted synthetic records over the limit: the manifest is re-signed, so verify passes and scan fails
    jsonl(repo / "data" / "b.jsonl", sentences(4, seed=3) + MACHINE[:6])
    sign_data(repo, key)
    code, out = commit(repo, env, "planted")
    assert code != 0
    assert "data/b.jsonl: 6 of 10 records flagged synthetic" in out and "over the policy's limit 0.2" in out
    assert out.count("Passed") == 1  # verify

    # a reviewed baseline lets exactly these bytes through, once the baseline is committed on its own
    cg("hook", "baseline", "data/b.jsonl", "--check", "scan", "--reason", "reviewed: quoted model output", cwd=repo)
    code, out = commit(repo, env, "reviewed with the data")
    assert code != 0 and ".collapseguard-baseline.json: trust anchor added since HEAD" in out
    git(repo, env, "reset", "-q")
    code, out = commit(repo, env, "baseline alone", ".collapseguard-baseline.json")
    assert code == 0, out
    code, out = commit(repo, env, "reviewed")
    assert code == 0, out

    # ... and no other bytes: one more planted record is checked again
    jsonl(repo / "data" / "b.jsonl", sentences(4, seed=3) + MACHINE[:7])
    sign_data(repo, key)
    code, out = commit(repo, env, "more")
    assert code != 0 and "data/b.jsonl: 7 of 11 records flagged synthetic" in out


def test_hook_commands_exit_codes(dataset_repo, tmp_path):
    repo, key = dataset_repo
    cg("hook", "verify", "data/a.jsonl", "data/manifest.json", cwd=repo)
    cg("hook", "scan", "data/a.jsonl", cwd=repo)
    jsonl(repo / "loose" / "x.jsonl", ["no manifest here"])
    res = cg("hook", "verify", "loose/x.jsonl", cwd=repo, code=1)
    assert "loose/x.jsonl: no manifest.json in its folder or above" in res.output
    (repo / "data" / "a.jsonl").rename(repo / "data" / "gone.jsonl")
    res = cg("hook", "verify", "data/gone.jsonl", cwd=repo, code=1)
    assert "data/gone.jsonl: added" in res.output and "data/manifest.json: a.jsonl: removed" in res.output
    (repo / "data" / "gone.jsonl").rename(repo / "data" / "a.jsonl")
    other = tmp_path / "other"
    cg("provenance", "keygen", "--out", other)
    cg("provenance", "build", repo / "data", "--overwrite")
    cg("provenance", "sign", repo / "data" / "manifest.json", "--key", other)
    assert "not on the trusted list" in cg("hook", "verify", "data/a.jsonl", cwd=repo, code=1).output
    # usage errors: exit 2, one line
    (repo / "bad-baseline.json").write_text("{}")
    for args, message in [
        (("hook", "scan", "data/a.jsonl", "--baseline", "bad-baseline.json"), "needs an 'exceptions' list"),
        (("hook", "scan", "data/a.jsonl", "--policy", "missing.toml"), "no such policy file"),
        (("hook", "verify", "data/a.jsonl", "--public-key", str(other)), "a private key"),
        (("hook", "baseline", "nope.jsonl", "--check", "scan", "--reason", "r"), "nope.jsonl: no such file"),
        (("hook", "baseline", "data/a.jsonl", "--check", "scan", "--reason", " "), "--reason is empty"),
    ]:
        res = cg(*args, cwd=repo, code=2)
        assert message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    nolimit = repo / "nolimit.toml"
    nolimit.write_text((repo / "collapseguard.toml").read_text().replace("max_synthetic_share = 0.2\n", ""))
    assert "no max_synthetic_share" in cg("hook", "scan", "data/a.jsonl", "--policy", nolimit, cwd=repo, code=2).output
