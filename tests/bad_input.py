"""Helpers for the tests/test_bad_input_*.py suites: run a command, check it refused cleanly
(exit code 2, one stderr line, no traceback) and that no file it could see changed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from collapseguard.cli.main import cli


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (relative path -> digest); folders as 'dir'."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        key = str(p.relative_to(root))
        out[key] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(args, root: Path, needle: str = "") -> str:
    """Run the CLI; assert exit 2, exactly one stderr line naming `needle`, no traceback, and
    that nothing under `root` was created, changed or removed. Returns the line."""
    before = snapshot(root)
    res = invoke(args)
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert needle in lines[0], lines[0]
    assert snapshot(root) == before
    return lines[0]


WORDS = [a + b for a in "klmnprst" for b in "aeiou"]
POLICY = '[[detectors]]\nname = "minhash_v1"\n{}options = {{ ledger = "gens.ledger" }}\n'


def documents(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=30)) for _ in range(n)]


def jsonl(path: Path, texts) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def build_guard(root: Path) -> Path:
    """Under `root`: gens.ledger (minhash_v1), fixed.toml (a fixed threshold), cal.toml + cal.json
    (a calibrated policy, fpr 0.1) and data/a.jsonl (human text and three ledger entries)."""
    from collapseguard.detectors.dedup.ledger import Ledger
    from collapseguard.scan.calibrate import calibrate_policy, save_policy_calibration
    from collapseguard.scan.policy import load_policy

    entries = documents(20, 9)
    Ledger.create(root / "gens.ledger").add(entries, [f"g{i}" for i in range(20)])
    (root / "fixed.toml").write_text(POLICY.format("threshold = 0.5\n"))
    (root / "cal.toml").write_text('calibration = "cal.json"\n' + POLICY.format(""))
    cal = calibrate_policy(load_policy(root / "cal.toml"), documents(60, 1), 0.1, record_domain=False)
    save_policy_calibration(cal, root / "cal.json")
    jsonl(root / "data" / "a.jsonl", documents(12, 2) + entries[:3])
    return root


def build_learned(folder: Path) -> Path:
    """A learned_v1 folder (style features, logistic) written directly, no training."""
    from collapseguard.detectors.learned import save_learned
    from collapseguard.detectors.style import FEATURE_NAMES

    k = len(FEATURE_NAMES)
    meta = {"features": ["style"], "model": "logistic", "feature_names": [f"style.{n}" for n in FEATURE_NAMES],
            "digests": {}}
    params = {"mean": np.zeros(k), "std": np.ones(k), "coef": np.ones(k) / k, "intercept": np.array(0.0)}
    return save_learned(folder, meta, params)
