"""Ledgers check themselves and `ledger add` is all-or-nothing: every bad case exits 2 with one
stderr line, no traceback, and leaves every input file (and the ledger) byte-identical."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapseguard.cli.main import cli
from collapseguard.detectors.dedup import store
from collapseguard.detectors.dedup.ledger import Ledger, SketchConfig
from collapseguard.errors import CollapseguardError


def words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randint(0, 3000)}" for _ in range(n))


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_refused(args: list[str], root: Path) -> str:
    """Run the CLI; assert exit 2, one stderr line, no traceback, nothing under `root` changed."""
    before = snapshot(root)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert snapshot(root) == before
    return lines[0]


def make_ledger(path: Path, n: int = 6, seed: int = 0, **config) -> list[str]:
    rng = random.Random(seed)
    texts = [words(rng, 30) for _ in range(n)]
    Ledger.create(path, SketchConfig(**config)).add(texts, [f"g{i}" for i in range(n)])
    return texts


@pytest.fixture
def world(tmp_path):
    rng = random.Random(1)
    (tmp_path / "docs.txt").write_text("\n".join(words(rng, 50) for _ in range(4)) + "\n", encoding="utf-8")
    texts = make_ledger(tmp_path / "L")
    return tmp_path, texts


def test_empty_inputs_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.jsonl").write_text('{"text": "  "}\n{"text": ""}\n', encoding="utf-8")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    line = run_refused(["ledger", "add", str(tmp_path / "L"), str(tmp_path / "empty.txt")], tmp_path)
    assert "empty.txt: no records" in line
    assert not (tmp_path / "L").exists()  # a failed first add leaves no ledger folder
    line = run_refused(["ledger", "add", str(tmp_path / "L"), str(tmp_path / "blank.jsonl")], tmp_path)
    assert "none with words" in line and not (tmp_path / "L").exists()
    make_ledger(tmp_path / "L")
    line = run_refused(["ledger", "query", str(tmp_path / "L"), str(tmp_path / "empty.jsonl")], tmp_path)
    assert "no records to query" in line
    line = run_refused(["ledger", "add", str(tmp_path / "L"), str(tmp_path / "empty.txt")], tmp_path)
    assert "no records" in line


def test_failed_add_leaves_ledger_exactly_as_it_was(world, monkeypatch):
    root, _ = world
    import collapseguard.cli.ledger as cli_ledger

    monkeypatch.setattr(cli_ledger, "BATCH", 2)  # several chunks are written before the failure
    rng = random.Random(5)
    good = "\n".join(words(rng, 20) for _ in range(5)) + "\n"
    (root / "a.txt").write_text(good, encoding="utf-8")
    (root / "b.txt").write_bytes(b"fine words here\nbroken \xff bytes\n")
    line = run_refused(["ledger", "add", str(root / "L"), str(root / "a.txt"), str(root / "b.txt")], root)
    assert "b.txt" in line and "UTF-8" in line
    assert len(Ledger.open(root / "L")) == 6
    # the same failure on a first add leaves no folder, and an empty folder stays empty
    run_refused(["ledger", "add", str(root / "new" / "deep" / "L"), str(root / "a.txt"), str(root / "b.txt")], root)
    assert not (root / "new").exists()
    (root / "empty").mkdir()
    run_refused(["ledger", "add", str(root / "empty"), str(root / "a.txt"), str(root / "b.txt")], root)
    assert (root / "empty").is_dir() and not any((root / "empty").iterdir())
    # and a good add afterwards works and is found
    assert CliRunner().invoke(cli, ["ledger", "add", str(root / "L"), str(root / "a.txt")]).exit_code == 0
    assert len(Ledger.open(root / "L")) == 11


def test_failed_api_add_discards_its_chunks(world):
    root, texts = world
    ledger = Ledger.open(root / "L")
    before = snapshot(root / "L")
    with pytest.raises(CollapseguardError, match="already in the ledger"):
        with ledger.transaction() as tx:
            tx.add(["new words for a new item here"], ["fresh"])
            tx.add(["more words"], ["g1"])
    assert snapshot(root / "L") == before and len(Ledger.open(root / "L")) == len(texts)


def test_ledger_may_not_be_an_input(world):
    root, _ = world
    line = run_refused(["ledger", "add", str(root), str(root / "docs.txt")], root)
    assert "input" in line


@pytest.mark.parametrize("command", ["query", "info", "add"])
@pytest.mark.parametrize("edit", [("num_perm", 64), ("bands", 8), ("rows", 4), ("ngram", 3), ("seed", 2),
                                  ("lsh_threshold", 0.5), ("permutation", "affine64")])
def test_edited_header_is_refused(world, command, edit):
    root, _ = world
    header = json.loads((root / "L" / "header.json").read_text())
    header[edit[0]] = edit[1]
    (root / "L" / "header.json").write_text(json.dumps(header))
    args = ["ledger", command, str(root / "L")] + ([] if command == "info" else [str(root / "docs.txt")])
    line = run_refused(args, root)
    assert "header.json" in line and "edited after the ledger was created" in line


def test_header_with_matching_fingerprint_but_other_width_is_refused(world):
    """Someone edits num_perm and recomputes the fingerprint: the chunks still disagree."""
    root, _ = world
    header = json.loads((root / "L" / "header.json").read_text())
    header["num_perm"] = 64
    header["fingerprint"] = store.settings_fingerprint(header)
    (root / "L" / "header.json").write_text(json.dumps(header))
    line = run_refused(["ledger", "info", str(root / "L")], root)
    assert "state.json" in line and "fingerprint" in line
    state = json.loads((root / "L" / "state.json").read_text())
    state["fingerprint"] = header["fingerprint"]
    (root / "L" / "state.json").write_text(json.dumps(state))
    line = run_refused(["ledger", "query", str(root / "L"), str(root / "docs.txt")], root)
    assert "chunk-000000.npz" in line and "signatures are uint32(6, 128), the header says uint32(6, 64)" in line


def _rewrite_chunk(root: Path, **arrays) -> None:
    """Replace chunk 0's arrays and record its new sha256 and counts (a consistent forgery)."""
    chunk = root / "L" / "chunk-000000.npz"
    data = dict(store.load_chunk_arrays(chunk))
    data.update(arrays)
    np.savez(chunk, **data)
    state = json.loads((root / "L" / "state.json").read_text())
    state["chunks"][0]["sha256"] = store.file_sha256(chunk)
    (root / "L" / "state.json").write_text(json.dumps(state))


@pytest.mark.parametrize("arrays, message", [
    ({"signatures": np.zeros((6, 128), np.uint64)}, "signatures are uint64(6, 128)"),
    ({"ids": np.array(["a", "a", "b", "c", "d", "e"])}, "appears in two chunks"),
    ({"set_hashes": np.zeros(3, np.uint64)}, "offsets do not fit"),
    ({"set_hashes": np.zeros(180, np.uint32)}, "not uint64"),
])
def test_mismatched_chunk_is_refused(world, arrays, message):
    root, _ = world
    _rewrite_chunk(root, **arrays)
    line = run_refused(["ledger", "query", str(root / "L"), str(root / "docs.txt")], root)
    assert message in line and "L" in line


def test_truncated_missing_or_extra_files(world):
    root, _ = world
    chunk = root / "L" / "chunk-000000.npz"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    line = run_refused(["ledger", "query", str(root / "L"), str(root / "docs.txt")], root)
    assert "chunk-000000.npz" in line and "truncated or edited" in line
    chunk.unlink()
    line = run_refused(["ledger", "info", str(root / "L")], root)
    assert "chunk-000000.npz: ledger file listed in state.json is missing" in line
    chunk.write_bytes(data)
    (root / "L" / "state.json").unlink()
    line = run_refused(["ledger", "info", str(root / "L")], root)
    assert "state.json: missing ledger state" in line


def test_leftovers_of_a_killed_add_are_ignored(world):
    """Files state.json does not name (an add killed before its commit) change nothing."""
    root, texts = world
    shutil.copy(root / "L" / "chunk-000000.npz", root / "L" / "chunk-000007.npz")
    (root / "L" / "index-000009.keys.npy").write_bytes(b"half")
    ledger = Ledger.open(root / "L")
    assert len(ledger) == len(texts)
    ledger.add(["an entirely new generation of words"], ["n"])
    assert not (root / "L" / "chunk-000007.npz").exists() and len(Ledger.open(root / "L")) == len(texts) + 1


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    make_ledger(root / "L", n=4, num_perm=32)
    (root / "docs.txt").write_text("w1 w2 w3 w4 w5 w6\n", encoding="utf-8")
    return root


def _copy(pristine: Path) -> Path:
    root = Path(tempfile.mkdtemp())
    shutil.copytree(pristine / "L", root / "L")
    shutil.copy(pristine / "docs.txt", root / "docs.txt")
    return root


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_corrupted_ledger_file_is_refused(pristine, data):
    """Flip, truncate or extend any listed file: one line naming that file, exit 2."""
    root = _copy(pristine)
    try:
        names = sorted(p.name for p in (root / "L").iterdir())
        name = data.draw(st.sampled_from(names))
        raw = bytearray((root / "L" / name).read_bytes())
        how = data.draw(st.sampled_from(["flip", "truncate", "append"]))
        if how == "flip":
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif how == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=64))
        (root / "L" / name).write_bytes(bytes(raw))
        before = (root / "L" / name).read_bytes()
        if name.endswith(".json"):
            try:  # a JSON edit that leaves the same parsed content (e.g. whitespace) is harmless
                same = json.loads(before) == json.loads((pristine / "L" / name).read_bytes())
            except ValueError:
                same = False
            if same:
                return
        line = run_refused(["ledger", "query", str(root / "L"), str(root / "docs.txt")], root)
        assert name in line or "header.json" in line or "state.json" in line
    finally:
        shutil.rmtree(root)


@settings(max_examples=25, deadline=None)
@given(key=st.sampled_from(["num_perm", "seed", "ngram", "bands", "rows", "lsh_threshold", "permutation",
                            "scheme", "format", "version"]),
       value=st.one_of(st.integers(-3, 300), st.floats(0, 1), st.sampled_from(["affine64", "legacy", "x"]), st.none()))
def test_any_header_edit_is_refused(pristine, key, value):
    root = _copy(pristine)
    try:
        header = json.loads((root / "L" / "header.json").read_text())
        if header[key] == value:
            return
        header[key] = value
        (root / "L" / "header.json").write_text(json.dumps(header))
        line = run_refused(["ledger", "info", str(root / "L")], root)
        assert "header.json" in line or "L:" in line
    finally:
        shutil.rmtree(root)


def test_add_killed_at_any_moment_leaves_a_ledger_that_opens(tmp_path):
    """kill -9 during a large add: the ledger opens with either all of it or none of it."""
    import signal
    import subprocess
    import sys
    import time

    make_ledger(tmp_path / "L")
    before = snapshot(tmp_path / "L")
    rng = random.Random(4)
    (tmp_path / "big.txt").write_text("\n".join(words(rng, 60) for _ in range(20000)) + "\n", encoding="utf-8")
    script = ("import sys; from collapseguard.cli.main import main; "
              "sys.argv = ['collapseguard', 'ledger', 'add', sys.argv[1], sys.argv[2], '--id-prefix', 'big-']; main()")
    for delay in (1.5, 3.0):  # during the chunks on this machine; on a faster one possibly after the commit
        proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "L"), str(tmp_path / "big.txt")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ledger = Ledger.open(tmp_path / "L")
        if len(ledger) == 6:
            now = snapshot(tmp_path / "L")
            assert {k: v for k, v in now.items() if k in before} == before
        else:
            assert len(ledger) == 20006
            return
