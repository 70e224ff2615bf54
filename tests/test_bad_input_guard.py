"""Bad input to the guard commands (scan, filter, policy, ledger, learned_v1) never becomes data:
each case exits 2 with one stderr line naming the file or option, writes nothing and leaves the
inputs byte-identical; inputs that used to hang (a pipe, a huge --num-perm) are refused at once,
and a UTF-8 byte-order mark is read, not abstained on."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bad_input import (
    POLICY,
    build_guard,
    build_learned,
    documents,
    invoke,
    jsonl,
    refused,
    snapshot,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import collapseguard
from collapseguard.detectors.calibration import calibrate_scores, load_calibration
from collapseguard.errors import CollapseguardError
from collapseguard.io.readers import iter_records

pytest.importorskip("numba")  # the dedup extra: minhash_v1 ledger

@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    return build_guard(tmp_path_factory.mktemp("guard"))


@pytest.fixture
def world(guard, tmp_path):
    """A fresh copy of the guard world per test (tests write into it)."""
    shutil.copytree(guard, tmp_path, dirs_exist_ok=True)
    return tmp_path


def run_cli_process(args, timeout: float = 60):
    """The CLI in a subprocess (for inputs that used to hang: the timeout fails the test instead)."""
    root = str(Path(collapseguard.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "collapseguard.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


# ---- calibration files: every field typed, NaN refused -----------------------------------------
@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["detectors"][0].update(threshold="0.5"), "detectors[0].threshold must be a number"),
    (lambda c: c["detectors"][0].update(threshold=float("nan")), "detectors[0].threshold must be a number (not NaN)"),
    (lambda c: c.update(detectors="x"), "detectors must be a list"),
    (lambda c: c["union_fpr_heldout"].update(k=5, n=2), "union_fpr_heldout needs 0 <= k <= n"),
    (lambda c: c.update(union_fpr_fit=[1]), "union_fpr_fit must be an object"),
])
def test_a_bad_policy_calibration_is_refused_by_field(world, edit, needle):
    cal = json.loads((world / "cal.json").read_text())
    edit(cal)
    (world / "cal.json").write_text(json.dumps(cal))
    line = refused(["scan", world / "data", "--policy", world / "cal.toml", "--out", world / "scan"], world, needle)
    assert "cal.json" in line and "policy calibrate" in line
    refused(["policy", "check", "--policy", world / "cal.toml"], world, needle)


@pytest.mark.parametrize("field, value", [("threshold", "0.5"), ("threshold", float("nan")), ("fpr_ci95", [0.1]),
                                          ("human_scores", ["a"]), ("groups", {"news": {"threshold": None}})])
def test_a_bad_detector_calibration_is_refused_by_field(tmp_path, field, value):
    cal = calibrate_scores(np.linspace(0, 1, 50), 0.1, detector="d", fingerprint="f", identity={}, sha256="s")
    from collapseguard.detectors.calibration import save_calibration

    save_calibration(cal, tmp_path / "c.json")
    blob = json.loads((tmp_path / "c.json").read_text())
    blob[field] = value
    (tmp_path / "c.json").write_text(json.dumps(blob))
    with pytest.raises(CollapseguardError, match=f"c.json: {field}"):
        load_calibration(tmp_path / "c.json")


def test_policy_fields_are_typed(world):
    (world / "p.toml").write_text("trusted_keys = [1, 2]\n" + POLICY.format("threshold = 0.5\n"))
    refused(["policy", "check", "--policy", world / "p.toml"], world, "trusted_keys must list public key files")
    (world / "p.toml").write_text(POLICY.format("threshold = nan\n"))
    refused(["policy", "check", "--policy", world / "p.toml"], world, "threshold must be a number (not NaN)")


# ---- calibrations too small for the promised FPR ------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.floats(1e-4, 0.999))
def test_min_calibration_size_is_the_smallest_n_with_one_over_n_plus_one_at_most_fpr(fpr):
    from collapseguard.detectors.calibration import min_calibration_size

    n = min_calibration_size(fpr)
    assert 1 / (n + 1) <= fpr * (1 + 1e-9)
    assert n == 1 or 1 / n > fpr  # n - 1 texts would not do


def test_calibrations_too_small_for_the_fpr_are_refused(world):
    jsonl(world / "h3.jsonl", documents(3, 5))
    line = refused(["policy", "calibrate", "--policy", world / "cal.toml", "--human", world / "h3.jsonl",
                    "--fpr", "0.05", "--out", world / "c3.json"], world, "cannot support fpr 0.05")
    assert "pass at least 19 human texts" in line
    with pytest.raises(CollapseguardError, match=r"9 scored human texts cannot support fpr 0.05.*at least 19"):
        calibrate_scores(np.arange(9.0), 0.05, detector="d", fingerprint="f", identity={}, sha256="s")
    calibrate_scores(np.arange(19.0), 0.05, detector="d", fingerprint="f", identity={}, sha256="s")  # enough


# ---- options -------------------------------------------------------------------------------------
def test_negative_seeds_are_refused(world):
    refused(["ledger", "add", "--seed", "-1", world / "new.ledger", world / "data" / "a.jsonl"], world, "seed -1")
    refused(["simulate", "run", "--seed", "-1", "--out", world / "sim"], world, "--seed")
    (world / "grid.toml").write_text('seed = -1\n[[worlds]]\nname = "gaussian"\ngenerations = 2\nsamples = 10\nseeds = 2\n')
    refused(["simulate", "sweep", "--config", world / "grid.toml", "--out", world / "sim"], world, "seed -1")
    refused(["policy", "calibrate", "--policy", world / "cal.toml", "--human", world / "data" / "a.jsonl",
             "--fpr", "0.1", "--seed", "-1", "--out", world / "c.json"], world, "--seed")


def test_a_huge_num_perm_is_refused_at_once(world):
    before = snapshot(world)
    res = run_cli_process(["ledger", "add", "--num-perm", "100000000", world / "new.ledger", world / "data" / "a.jsonl"])
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "num_perm 100000000: must be a whole number from 1 to 4096" in res.stderr
    assert snapshot(world) == before


@pytest.mark.parametrize("command", ["policy calibrate", "detect evaluate"])
def test_an_empty_machine_path_is_refused(world, command):
    args = {"policy calibrate": ["policy", "calibrate", "--policy", world / "cal.toml", "--fpr", "0.1",
                                 "--out", world / "x.json"],
            "detect evaluate": ["detect", "evaluate", "--detector", "minhash_v1", "-o", "ledger_dir=gens.ledger"]}
    refused([*args[command], "--human", world / "data" / "a.jsonl", "--machine", ""], world,
            "an empty path '' (--machine)")


# ---- inputs ----------------------------------------------------------------------------------------
def test_unsupported_formats_are_refused_with_the_supported_list(world):
    (world / "x.csv").write_text("text,id\nhello world,1\n")
    refused(["scan", world / "x.csv", "--policy", world / "fixed.toml", "--out", world / "scan"], world,
            "x.csv: unsupported format; pass files ending in .parquet, .jsonl")


def test_a_pipe_is_refused_not_read(world):
    os.mkfifo(world / "data" / "pipe.jsonl")
    res = run_cli_process(["scan", world / "data", "--policy", world / "fixed.toml", "--out", world / "scan"])
    assert res.returncode == 2 and "pipe.jsonl: not a regular file" in res.stderr, res.stderr
    assert not (world / "scan").exists()
    with pytest.raises(CollapseguardError, match="not a regular file"):
        list(iter_records(world / "data" / "pipe.jsonl"))


def test_a_broken_saved_dataset_is_one_line(world):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": documents(3, 1)}).save_to_disk(str(world / "ds"))
    (world / "ds" / "state.json").write_text("{broken")
    refused(["scan", world / "ds", "--policy", world / "fixed.toml", "--out", world / "scan"], world,
            "ds: not a readable saved `datasets` dataset")
    with pytest.raises(CollapseguardError, match="not a readable saved"):
        list(iter_records(world / "ds"))


def test_a_saved_dataset_offset_past_the_end_is_refused_not_a_crash(world):
    """The Arrow file is memory-mapped: reading through an offset past its end killed the process (SIGBUS)."""
    import struct

    datasets = pytest.importorskip("datasets")
    texts = documents(4, 1)
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(world / "ds"))
    arrow = world / "ds" / "data-00000-of-00001.arrow"
    raw = bytearray(arrow.read_bytes())
    ends = np.cumsum([0] + [len(t.encode()) for t in texts]).tolist()
    at = raw.find(struct.pack("<5i", *ends))
    assert at > 0
    raw[at + 8:at + 12] = struct.pack("<i", 10**6)
    arrow.write_bytes(bytes(raw))
    res = run_cli_process(["scan", world / "ds", "--policy", world / "fixed.toml", "--out", world / "scan"])
    assert res.returncode == 2 and "ds: not a readable saved `datasets` dataset" in res.stderr, (res.returncode, res.stderr)
    assert "out of bounds" in res.stderr and not (world / "scan").exists()


def test_a_byte_order_mark_is_accepted(world):
    raw = (world / "data" / "a.jsonl").read_bytes()
    (world / "bom").mkdir()
    (world / "bom" / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + raw)
    for name in ("data", "bom"):
        assert invoke(["scan", world / name, "--policy", world / "fixed.toml", "--out", world / f"s-{name}"]).exit_code == 0
    plain, bom = (pq.read_table(world / f"s-{n}" / "attributes" / "a.jsonl.parquet").to_pylist() for n in ("data", "bom"))
    assert bom[0]["decision"] != "abstain" and bom == [{**r, "source": r["source"]} for r in plain]
    assert [r.text for r in iter_records(world / "bom" / "a.jsonl")] == [r.text for r in iter_records(world / "data" / "a.jsonl")]
    (world / "bom.txt").write_bytes(b"\xef\xbb\xbfhello\n")
    assert [r.text for r in iter_records(world / "bom.txt")] == ["hello"]


# ---- outputs -----------------------------------------------------------------------------------
def test_an_output_inside_an_input_folder_is_refused(world):
    refused(["scan", world / "data", "--policy", world / "fixed.toml", "--out", world / "data" / "scan"], world,
            "output would overwrite the input")
    assert invoke(["scan", world / "data", "--policy", world / "fixed.toml", "--out", world / "scan"]).exit_code == 0
    refused(["filter", world / "data", "--attributes", world / "scan", "--out", world / "data" / "clean"], world,
            "output would overwrite the input")


def test_a_failed_scan_leaves_nothing(world):
    bad = jsonl(world / "bad" / "b.jsonl", documents(600, 3))  # more than one batch before the bad record
    with open(bad, "a") as f:
        f.write('{"body": "no text field"}\n')
    refused(["scan", world / "bad", "--policy", world / "fixed.toml", "--out", world / "out" / "scan"], world,
            "record 600 has no 'text' field")
    assert not (world / "out").exists()
    (world / "out").mkdir()  # a folder the user made stays, empty
    refused(["scan", world / "bad", "--policy", world / "fixed.toml", "--out", world / "out"], world, "record 600")


def test_a_truncated_attribute_shard_is_refused_by_filter(world):
    assert invoke(["scan", world / "data", "--policy", world / "fixed.toml", "--out", world / "scan"]).exit_code == 0
    attrs = world / "scan" / "attributes" / "a.jsonl.parquet"
    attrs.write_bytes(attrs.read_bytes()[: attrs.stat().st_size // 2])
    refused(["filter", world / "data", "--attributes", world / "scan", "--out", world / "clean"], world,
            "a.jsonl.parquet: not a readable attribute shard")


def test_two_inputs_of_one_name_in_one_out(world):
    jsonl(world / "other" / "a.jsonl", documents(5, 7))
    fixed = ["--policy", world / "fixed.toml"]
    assert invoke(["scan", world / "data" / "a.jsonl", *fixed, "--out", world / "scan"]).exit_code == 0
    (world / "copy").mkdir()
    shutil.copy(world / "data" / "a.jsonl", world / "copy" / "a.jsonl")  # the same bytes elsewhere: fine
    assert invoke(["filter", world / "copy" / "a.jsonl", "--attributes", world / "scan", "--out", world / "c"]).exit_code == 0
    assert invoke(["scan", world / "copy" / "a.jsonl", *fixed, "--out", world / "scan"]).exit_code == 0
    line = refused(["scan", world / "other" / "a.jsonl", *fixed, "--out", world / "scan"], world,
                   "already holds the scan of")
    assert "under the name 'a.jsonl'" in line and "another --out" in line
    assert invoke(["scan", world / "other" / "a.jsonl", *fixed, "--out", world / "scan", "--overwrite"]).exit_code == 0
    refused(["filter", world / "data" / "a.jsonl", "--attributes", world / "scan", "--out", world / "clean"], world,
            "is another file than the one")


# ---- learned_v1 model files ------------------------------------------------------------------------
@pytest.fixture
def learned(tmp_path):
    build_learned(tmp_path / "m")
    (tmp_path / "t.txt").write_text("\n".join(documents(3, 1)) + "\n")
    return tmp_path


def test_a_learned_model_scores(learned):
    res = invoke(["detect", "score", learned / "t.txt", "--detector", "learned_v1", "--model", learned / "m", "--json"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("damage, needle", [
    (lambda m: (m / "model.npz").write_bytes(b"garbage"), "model.npz: not a readable model.npz"),
    (lambda m: (m / "model.npz").write_bytes((m / "model.npz").read_bytes()[:100]), "not a readable model.npz"),
    (lambda m: np.savez(m / "model.npz", mean=np.zeros(2)), "does not fit learned.json"),
    (lambda m: (m / "learned.json").write_text(json.dumps({"collapseguard_learned": 1, "features": "style"})),
     "learned.json: features must be a list"),
])
def test_a_damaged_learned_model_is_one_line(learned, damage, needle):
    damage(learned / "m")
    refused(["detect", "score", learned / "t.txt", "--detector", "learned_v1", "--model", learned / "m"], learned,
            needle)


def test_small_sample_rule_matches_the_conformal_bound():
    """With n exchangeable human scores, the largest as threshold leaves P(new > max) = 1/(n+1)."""
    from collapseguard.detectors.calibration import min_calibration_size

    rng = np.random.default_rng(0)
    n, trials = 9, 20000
    draws = rng.random((trials, n + 1))
    exceed = (draws[:, n] > draws[:, :n].max(axis=1)).mean()
    assert math.isclose(exceed, 1 / (n + 1), abs_tol=0.01)
    assert min_calibration_size(1 / (n + 1)) == n


def test_a_second_scan_into_a_busy_folder_is_refused(world):
    import fcntl

    args = ["scan", world / "data", "--policy", world / "fixed.toml", "--out", world / "scan"]
    assert invoke(args).exit_code == 0
    fd = os.open(world / "scan", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running scan holds it
        refused([*args, "--overwrite"], world, "another `collapseguard scan` is writing into this folder now")
    finally:
        os.close(fd)
    assert invoke([*args, "--overwrite"]).exit_code == 0


def test_a_damaged_slice_model_is_refused_when_read():
    import copy

    from collapseguard.detectors import mondrian

    rng = np.random.default_rng(0)
    words = rng.integers(20, 400, 600)
    model = mondrian.fit_slices(rng.normal(size=(600, 3)), words, 0.05, lambda rows: {"thresholds": [0.5, 1.0]},
                                mode="length")
    mondrian.check_model(model, "cal.json", "recalibrate", per_detector=2)
    assert len(model["domains"]["all"]["slices"]) > 1
    damage = {
        "thresholds.0": lambda m: m["domains"]["all"]["slices"][0].update(thresholds=["x", 0.1]),
        "thresholds": lambda m: m["domains"]["all"]["slices"][0].update(thresholds=[0.5]),
        "words ranges": lambda m: m["domains"]["all"]["slices"][0].update(words=[0, None]),
        "words ranges must": lambda m: m["domains"]["all"]["slices"].pop(),
        "centroid": lambda m: m["domains"]["all"].update(centroid=[0.0]),
        "has no radius": lambda m: m["domains"]["all"].update(radius=None),
        "std": lambda m: m.update(std=[1.0, 0.0, 1.0]),
    }
    for what, hurt in damage.items():
        bad = copy.deepcopy(model)
        hurt(bad)
        with pytest.raises(CollapseguardError, match=f"cal.json: slices.*{what}"):
            mondrian.check_model(bad, "cal.json", "recalibrate", per_detector=2)
