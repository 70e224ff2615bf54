"""Tiny data folders for the provenance tests: shards in every format scan reads, with an `origin` column."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path


def run(*args, code=0):
    """`collapseguard ARGS...` in-process; asserts the exit code and returns the click result."""
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


def write_tree(root: Path) -> Path:
    """A folder with parquet, jsonl, jsonl.gz and txt shards, plus files a manifest must skip."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "sub").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["one", "two", "three"], "origin": ["human", "synthetic", "human"]}),
                   root / "a.parquet")
    rows = [{"text": "alpha", "origin": "human"}, {"text": "beta", "origin": "unknown"}]
    (root / "sub" / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    with gzip.open(root / "sub" / "c.jsonl.gz", "wt") as f:
        f.write('{"text": "gz"}\n\n{"text": "zipped"}\n{"text": "x"}\n')
    (root / "d.txt").write_text("first line\n\n  \nsecond line\n")
    (root / ".hidden.jsonl").write_text('{"text": "not data"}\n')
    (root / "notes.md").write_text("not a shard\n")
    return root


def tree_digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_policy(folder: Path, machine_texts: list[str], limit: float | None = 0.1, calibration: str | None = None) -> Path:
    """A minhash_v1 policy (fixed threshold, no model) whose ledger holds `machine_texts`."""
    from click.testing import CliRunner

    from collapseguard.cli.main import cli

    folder.mkdir(parents=True, exist_ok=True)
    known = folder / "machine.jsonl"
    known.write_text("".join(json.dumps({"text": t}) + "\n" for t in machine_texts))
    res = CliRunner().invoke(cli, ["ledger", "add", str(folder / "gens.ledger"), str(known)])
    assert res.exit_code == 0, res.output
    known.unlink()
    lines = [f'calibration = "{calibration}"'] if calibration else []
    if limit is not None:
        lines.append(f"max_synthetic_share = {limit}")
    lines += ["[[detectors]]", 'name = "minhash_v1"', "threshold = 0.5", 'options = { ledger = "gens.ledger" }']
    policy = folder / "collapseguard.toml"
    policy.write_text("\n".join(lines) + "\n")
    return policy


def sentences(n: int, seed: int, words: int = 30) -> list[str]:
    """Random word sequences: distinct enough that MinHash containment between them stays low."""
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(2000)]
    return [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)]


def signed_dataset(repo: Path, key_dir: Path, machine_texts: list[str], texts: list[str], limit: float = 0.2) -> Path:
    """A dataset repository (no git yet): a minhash_v1 policy whose ledger holds `machine_texts`, a
    team key trusted in `.collapseguard/keys/`, `data/a.jsonl` of `texts` and its signed manifest.
    Returns the private key's path (under `key_dir`)."""
    import shutil

    write_policy(repo, machine_texts, limit=limit)
    key = key_dir / "team"
    run("provenance", "keygen", "--out", key)
    (repo / ".collapseguard" / "keys").mkdir(parents=True)
    shutil.copy(f"{key}.pub", repo / ".collapseguard" / "keys" / "team.pub")
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "data" / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run("provenance", "build", repo / "data", "--overwrite")
    run("provenance", "sign", repo / "data" / "manifest.json", "--key", key)
    return key

