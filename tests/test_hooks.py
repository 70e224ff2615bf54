"""The pre-commit hooks, through the real pre-commit framework in a temporary dataset repository:
an installed `.pre-commit-config.yaml` pointing at this project's `.pre-commit-hooks.yaml`, and
real `git commit`s that the hooks pass or refuse."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from provenance_data import sentences, signed_dataset, write_policy

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
    return make_repo(tmp_path, env, f"fail_fast: true\nrepos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n"
                     "      - id: collapseguard-verify\n        files: ^data/\n"
                     "      - id: collapseguard-scan\n        files: ^data/\n")


def make_repo(tmp_path: Path, env, config: str) -> tuple[Path, Path]:
    """A dataset repository (policy, team key, a signed shard; no commit yet) with `config` installed."""
    repo = tmp_path / "repo"
    key = signed_dataset(repo, tmp_path / "private", MACHINE, sentences(12, seed=2))
    (repo / ".pre-commit-config.yaml").write_text(config)
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
    manifest = repo / "data" / "manifest.json"
    signed = manifest.read_bytes()
    manifest.unlink()  # a deleted manifest leaves its data signed by nothing (CI sees deletions)
    res = cg("hook", "verify", "data/manifest.json", cwd=repo, code=1)
    assert "data/manifest.json: removed, but data/a.jsonl remain" in res.output
    manifest.write_bytes(signed)
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


def first_commit(repo: Path, env) -> str:
    """The first commit: anchors and data together (no HEAD yet, so the commit defines the anchors)."""
    code, out = commit(repo, env, "first")
    assert code == 0, out
    return head(repo, env)


def test_anchors_come_from_the_base_revision(dataset_repo, env, tmp_path):
    repo, key = dataset_repo
    first_commit(repo, env)
    # a key added together with the data it signed does not vouch for that data
    mallory = tmp_path / "private" / "mallory"
    cg("provenance", "keygen", "--out", mallory)
    shutil.copy(f"{mallory}.pub", repo / ".collapseguard" / "keys" / "mallory.pub")
    jsonl(repo / "data" / "c.jsonl", sentences(5, seed=4))
    sign_data(repo, mallory)
    code, out = commit(repo, env, "new key and its data")
    assert code != 0
    assert ".collapseguard/keys/mallory.pub: trust anchor added since HEAD" in out
    assert "data/manifest.json: signed by key" in out and "not on the trusted list" in out
    # the key committed on its own passes (the data hooks do not even run), then its data passes
    git(repo, env, "reset", "-q")
    code, out = commit(repo, env, "key alone", ".collapseguard/keys/mallory.pub")
    assert code == 0, out
    code, out = commit(repo, env, "data signed by the new key")
    assert code == 0, out

    # a raised limit does not let through the data that needs it: HEAD's limit judges
    policy = repo / "collapseguard.toml"
    policy.write_text(policy.read_text().replace("max_synthetic_share = 0.2", "max_synthetic_share = 0.9"))
    jsonl(repo / "data" / "b.jsonl", sentences(4, seed=3) + MACHINE[:6])
    sign_data(repo, key)
    code, out = commit(repo, env, "raised limit and its data")
    assert code != 0 and "collapseguard.toml: trust anchor modified since HEAD" in out
    res = cg("hook", "scan", "data/b.jsonl", cwd=repo, code=1)
    assert "over the policy's limit 0.2" in res.output and "0.9" not in res.output


def test_a_baseline_cannot_waive_verification(dataset_repo, env):
    repo, _ = dataset_repo
    first_commit(repo, env)
    res = cg("hook", "baseline", "data/a.jsonl", "--check", "verify", "--reason", "trust me", cwd=repo, code=2)
    assert "'verify'" in res.output
    shard = repo / "data" / "a.jsonl"
    shard.write_bytes(shard.read_bytes().replace(b"w1", b"w7", 1))
    entry = {"path": "data/a.jsonl", "check": "verify", "sha256": hashlib.sha256(shard.read_bytes()).hexdigest(),
             "reason": "trust me"}
    (repo / ".collapseguard-baseline.json").write_text(json.dumps({"collapseguard_baseline": 1, "exceptions": [entry]}))
    code, out = commit(repo, env, "a baseline entry waiving verify", ".collapseguard-baseline.json")
    assert code == 0, out
    code, out = commit(repo, env, "tampered")
    assert code != 0 and "data/a.jsonl: changed (sha256 differs from the manifest)" in out


def test_the_scan_limit_holds_for_each_shard(dataset_repo, env):
    repo, key = dataset_repo
    first_commit(repo, env)
    # pooled: 6 flagged of 36 changed records is 17%, under the limit 0.2; b.jsonl alone is 100% machine
    jsonl(repo / "data" / "b.jsonl", MACHINE[:6])
    jsonl(repo / "data" / "c.jsonl", sentences(30, seed=5))
    sign_data(repo, key)
    code, out = commit(repo, env, "a machine shard beside a human one")
    assert code != 0
    assert "data/b.jsonl: 6 of 6 records flagged synthetic; its synthetic share" in out
    assert "over the policy's limit 0.2" in out and "data/c.jsonl" not in out.split("Failed", 1)[1]
    # the same records spread under the limit in each shard pass
    jsonl(repo / "data" / "b.jsonl", MACHINE[:1] + sentences(9, seed=6))
    sign_data(repo, key)
    code, out = commit(repo, env, "spread")
    assert code == 0, out


def test_symlinks_are_checked(dataset_repo, env):
    repo, _ = dataset_repo
    first_commit(repo, env)
    # a symlinked shard the manifest does not list
    jsonl(repo / "elsewhere" / "m.jsonl", MACHINE)
    (repo / "data" / "link.jsonl").symlink_to(Path("..", "elsewhere", "m.jsonl"))
    code, out = commit(repo, env, "symlink", "data/link.jsonl")
    assert code != 0 and "data/link.jsonl: added: not listed in data/manifest.json" in out


def test_a_manifest_only_change_checks_every_file_it_lists(dataset_repo, env):
    repo, key = dataset_repo
    first_commit(repo, env)
    # a rolled-back manifest: its signature is good, but it no longer matches the data committed since
    shard = repo / "data" / "a.jsonl"
    jsonl(shard, sentences(12, seed=7))
    sign_data(repo, key)
    code, out = commit(repo, env, "new version", "data")
    assert code == 0, out
    git(repo, env, "checkout", "HEAD~1", "--", "data/manifest.json")
    code, out = commit(repo, env, "rolled-back manifest", "data/manifest.json")
    assert code != 0 and "data/a.jsonl: changed (" in out


def test_files_that_are_not_data_are_left_alone(dataset_repo, env):
    repo, _ = dataset_repo
    first_commit(repo, env)
    (repo / "data" / "README.md").write_text("what this data is\n")
    (repo / "data" / "sub").mkdir()
    (repo / "data" / "sub" / ".gitkeep").write_text("")
    code, out = commit(repo, env, "docs in the data folder")
    assert code == 0, out


def test_baseline_from_a_subfolder_goes_to_the_repository_root(dataset_repo, env):
    repo, _ = dataset_repo
    jsonl(repo / "data" / "b.jsonl", MACHINE[:6])
    res = cg("hook", "baseline", "b.jsonl", "--check", "scan", "--reason", "reviewed", cwd=repo / "data")
    assert not (repo / "data" / ".collapseguard-baseline.json").exists(), res.output
    doc = json.loads((repo / ".collapseguard-baseline.json").read_text())
    assert [e["path"] for e in doc["exceptions"]] == ["data/b.jsonl"]


def test_ci_checks_judge_a_pushed_range_by_the_base_anchors(dataset_repo, env, tmp_path):
    repo, _ = dataset_repo
    base = first_commit(repo, env)
    # commits made with --no-verify: the local hooks never ran
    mallory = tmp_path / "private" / "mallory"
    cg("provenance", "keygen", "--out", mallory)
    shutil.copy(f"{mallory}.pub", repo / ".collapseguard" / "keys" / "mallory.pub")
    code, out = commit(repo, env, "key alone", ".collapseguard/keys/mallory.pub", flags=["--no-verify"])
    assert code == 0, out
    # an anchor change on its own passes, reported as a note
    res = cg("hook", "verify", "--from-ref", base, cwd=repo)
    assert "note: .collapseguard/keys/mallory.pub: trust anchor added since" in res.output
    jsonl(repo / "data" / "b.jsonl", sentences(4, seed=3) + MACHINE[:6])
    sign_data(repo, mallory)
    code, out = commit(repo, env, "data signed by the new key", flags=["--no-verify"])
    assert code == 0, out
    res = cg("hook", "verify", "--from-ref", base, cwd=repo, code=1)
    assert ".collapseguard/keys/mallory.pub: trust anchor added since" in res.output
    assert "data/manifest.json: signed by key" in res.output and "not on the trusted list" in res.output
    res = cg("hook", "scan", "--from-ref", base, cwd=repo, code=1)
    assert "data/b.jsonl: 6 of 10 records flagged synthetic" in res.output
    # against the new tip (the key merged on its own first), the same data passes verify
    cg("hook", "verify", "--from-ref", "HEAD~1", cwd=repo)
    # pre-commit's own range mode (pre-push, CI) hands the base over in PRE_COMMIT_FROM_REF
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "run", "--from-ref", base, "--to-ref", "HEAD"],
                          cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "not on the trusted list" in proc.stdout, proc.stdout + proc.stderr
    assert cg("hook", "verify", "--from-ref", "no-such-ref", cwd=repo, code=2).output.count("\n") == 1


def test_the_documented_local_config_works(tmp_path, env):
    pytest.importorskip("pre_commit")
    page = (ROOT / "docs" / "hooks.md").read_text()
    config = next(b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "repo: local" in b)
    repo, _ = make_repo(tmp_path, env, config)
    code, out = commit(repo, env, "first")
    assert code == 0 and out.count("Passed") == 2, out
    (repo / "data" / "link.jsonl").symlink_to("a.jsonl")
    code, out = commit(repo, env, "an unlisted symlink")
    assert code != 0 and "data/link.jsonl: added: not listed in data/manifest.json" in out


def test_a_shards_own_share_is_estimated_as_scan_estimates_it(tmp_path):
    """With a calibrated policy the per-shard figure is the Rogan-Gladen estimate that `scan` gives
    the shard on its own (the reference: a separate scan of that shard alone)."""
    from collapseguard.hooks.checks import scan_files
    from collapseguard.scan.summary import fmt_share

    write_policy(tmp_path, MACHINE, limit=0.2, calibration="cal.json")
    jsonl(tmp_path / "held.jsonl", sentences(80, seed=11))
    jsonl(tmp_path / "machine.jsonl", MACHINE)
    cg("policy", "calibrate", "--policy", tmp_path / "collapseguard.toml", "--human", tmp_path / "held.jsonl",
       "--machine", tmp_path / "machine.jsonl", "--fpr", "0.05", "--out", tmp_path / "cal.json")
    jsonl(tmp_path / "data" / "b.jsonl", MACHINE[:6] + sentences(4, seed=12))
    jsonl(tmp_path / "data" / "c.jsonl", sentences(40, seed=13))
    cg("scan", tmp_path / "data" / "b.jsonl", "--out", tmp_path / "alone", "--policy", tmp_path / "collapseguard.toml")
    alone = json.loads((tmp_path / "alone" / "summary.json").read_text())
    assert alone["synthetic_share"]["kind"] == "rogan_gladen"
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        findings, summary = scan_files(["data/b.jsonl", "data/c.jsonl"], "collapseguard.toml")
    finally:
        os.chdir(old)
    assert not summary["over_limit"]  # 6 of 50 together: under 0.2
    assert [f.path for f in findings] == ["data/b.jsonl"]
    assert f"its synthetic share {fmt_share(alone['synthetic_share'])} is over" in findings[0].message


def test_files_the_policy_names_are_anchors_too(dataset_repo, env):
    repo, key = dataset_repo
    first_commit(repo, env)
    # an emptied ledger (the scan's minhash detector would flag nothing), staged beside new data
    jsonl(repo / "other.jsonl", ["an unrelated text"])
    cg("ledger", "add", repo / "empty.ledger", repo / "other.jsonl")
    ledger = repo / "gens.ledger"
    shutil.rmtree(ledger) if ledger.is_dir() else ledger.unlink()
    (repo / "empty.ledger").rename(ledger)
    jsonl(repo / "data" / "b.jsonl", MACHINE[:6])
    sign_data(repo, key)
    git(repo, env, "add", "-A")
    res = cg("hook", "verify", cwd=repo, code=1)  # no FILES: the staged change
    assert "gens.ledger" in res.output and "trust anchor modified since HEAD" in res.output


def test_the_documented_release_pin_works(tmp_path, env):
    """The docs pin `rev: v<version>`; that tag of a repository holding our hooks manifest runs the
    hooks, and the CHANGELOG has the release."""
    pytest.importorskip("pre_commit")
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.search(rf"^## {re.escape(version)}\b", (ROOT / "CHANGELOG.md").read_text(), re.M)
    page = (ROOT / "docs" / "hooks.md").read_text()
    config = next(b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "rev: v" in b)
    assert re.search(r"rev: (\S+)", config).group(1) == f"v{version}"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", hooks)
    git(hooks, env, "init", "-q")
    git(hooks, env, "add", ".pre-commit-hooks.yaml")
    git(hooks, env, "commit", "-q", "-m", "hooks")
    git(hooks, env, "tag", f"v{version}")
    git(hooks, env, "commit", "-q", "--allow-empty", "-m", "after the release")
    repo, _ = make_repo(tmp_path, env, re.sub(r"repo: \S+.*", f"repo: {hooks}", config, count=1))
    code, out = commit(repo, env, "first")
    assert code == 0 and out.count("Passed") == 2, out
