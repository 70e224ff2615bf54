"""Helpers for the tests/test_bad_input_*.py suites: run a command, check it refused cleanly
(exit code 2, one stderr line, no traceback) and that no file it could see changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
