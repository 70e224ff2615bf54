"""scan, filter and policy calibrate end to end on shards with planted machine text.

The policy runs three detectors (ledger containment, KGW watermark, Gen-0 perplexity); each
planted kind is caught by its own detector, so the `reason` column can be checked record by
record, and the planted share must fall inside the reported interval.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasketch")

import guard_world as gw  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402


def run(*args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, (res.output, repr(res.exception))
    return res


def tree_digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    w = gw.build(root)
    run("policy", "calibrate", "--policy", w["policy"], "--human", root / "human.jsonl",
        "--machine", root / "machine.jsonl", "--fpr", "0.05", "--out", root / "cal.json")
    w["truth"] = gw.planted_shards(w, root / "data")
    w["root"] = root
    w["input_digest"] = tree_digest(root / "data")
    return w


@pytest.fixture(scope="module")
def scanned(world):
    out = world["root"] / "scan"
    res = run("scan", world["root"] / "data", "--out", out, "--policy", world["policy"], "--json")
    return out, json.loads(res.stdout)


def test_planted_share_is_inside_the_interval_and_reasons_name_the_detector(world, scanned):
    out, summary = scanned
    truth = world["truth"]
    planted = sum(k != "human" for kinds in truth.values() for k in kinds)
    total = sum(len(k) for k in truth.values())
    share = summary["synthetic_share"]
    assert share["kind"] == "rogan_gladen"
    assert share["low"] <= planted / total <= share["high"]
    assert share["high"] - share["low"] < 0.2
    missed = 0
    for name, kinds in truth.items():
        table = pq.read_table(out / "attributes" / f"{name}.parquet").to_pylist()
        assert [r["index"] for r in table] == list(range(len(kinds)))
        for row, kind in zip(table, kinds):
            if kind != "human":
                missed += row["decision"] != "synthetic"
                if row["decision"] == "synthetic":
                    assert kind in row["reason"].split(","), (kind, row["reason"])
    assert missed <= 0.1 * planted
    assert tree_digest(world["root"] / "data") == world["input_digest"]  # inputs untouched


def test_human_text_like_the_calibration_raises_no_drift_warning(world, tmp_path):
    data = _mkdir(tmp_path / "human")
    gw.write_jsonl(data / "h.jsonl", gw.human_texts(300, 77))
    res = run("scan", data, "--out", tmp_path / "out", "--policy", world["policy"], "--json")
    assert json.loads(res.stdout)["calibration_drift"]["warn"] is False
    assert "may not hold" not in res.stderr


def test_text_far_from_the_calibration_warns_that_the_fpr_may_not_hold(world, tmp_path):
    """With on_drift = "warn" the records are decided, and the scan says the FPR may not hold."""
    data = _mkdir(tmp_path / "shifted")
    rng = __import__("numpy").random.default_rng(5)
    prose = ["The committee met on 3 May, 1998; however, nobody -- not even the chair -- knew why. "
             f"Item {i}: see pages {rng.integers(1, 400)}-{rng.integers(400, 900)}!" for i in range(200)]
    gw.write_jsonl(data / "news.jsonl", prose)
    res = run("scan", data, "--out", tmp_path / "out", "--policy", policy_with(world, "warn"), "--json")
    summary = json.loads(res.stdout)
    drift = summary["calibration_drift"]
    assert drift["warn"] is True and drift["outside_share"] > 0.5 and "abstained" not in drift
    rows = pq.read_table(tmp_path / "out" / "attributes" / "news.jsonl.parquet").to_pylist()
    assert not any((r["reason"] or "").startswith("drift:") for r in rows)  # decided on their own merits
    assert "may not hold" in res.stderr and "may not hold" in (tmp_path / "out" / "summary.md").read_text()


def policy_with(world, on_drift: str) -> Path:
    """The world's policy with an explicit on_drift, beside it (its paths are relative to it)."""
    policy = Path(world["policy"])
    out = policy.with_name(f"{on_drift}_" + policy.name)
    out.write_text(f'on_drift = "{on_drift}"\n' + policy.read_text())
    return out


def test_on_drift_abstain_makes_every_record_of_drifted_text_abstain(world, tmp_path):
    """The default (the world's policy names no on_drift)."""
    data = _mkdir(tmp_path / "shifted")
    prose = [f"The committee met on 3 May, 1998; however, nobody -- not even the chair -- knew why. Item {i}!"
             for i in range(200)]
    gw.write_jsonl(data / "news.jsonl", prose)
    assert "on_drift" not in Path(world["policy"]).read_text()
    res = run("scan", data, "--out", tmp_path / "out", "--policy", world["policy"], "--json")
    summary = json.loads(res.stdout)
    assert summary["decisions"]["abstain"] == 200 and summary["calibration_drift"]["abstained"].startswith("drift:")
    rows = pq.read_table(tmp_path / "out" / "attributes" / "news.jsonl.parquet").to_pylist()
    assert {r["decision"] for r in rows} == {"abstain"} and all(r["reason"].startswith("drift:") for r in rows)
    assert 'on_drift = "abstain"' in (tmp_path / "out" / "summary.md").read_text()


def test_on_drift_abstain_decides_text_like_the_calibration(world, tmp_path):
    data = _mkdir(tmp_path / "human")
    gw.write_jsonl(data / "h.jsonl", gw.human_texts(300, 77))
    summary = json.loads(run("scan", data, "--out", tmp_path / "out", "--policy", policy_with(world, "abstain"),
                             "--json").stdout)
    assert summary["calibration_drift"]["warn"] is False and "abstained" not in summary["calibration_drift"]
    assert summary["decisions"]["human"] > 250


def test_attribute_rows_carry_the_text_sha256(world, scanned):
    out, _ = scanned
    table = pq.read_table(out / "attributes" / "a.parquet.parquet")
    texts = pq.read_table(world["root"] / "data" / "a.parquet").column("text").to_pylist()
    assert table.column("sha256").to_pylist() == [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    assert table.column("source").to_pylist() == ["a.parquet"] * len(texts)


def test_summary_files_and_histograms(scanned):
    out, summary = scanned
    md = (out / "summary.md").read_text()
    assert "synthetic share" in md and "OVER" in md  # the planted share is far above the 5% limit
    for col in ("minhash_v1", "kgw_v1", "gen0_ppl_v1"):
        assert (out / f"hist_{col}.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["over_limit"] is True


def test_fail_over_limit_exits_1_and_rerun_skips_done_shards(world, scanned):
    out, _ = scanned
    before = tree_digest(out)
    res = run("scan", world["root"] / "data", "--out", out, "--policy", world["policy"], "--json", "--fail-over-limit",
              code=1)
    assert json.loads(res.stdout)["run"]["shards_skipped"] == 3
    assert tree_digest(out) == before


def test_filter_writes_kept_and_rejected_in_the_input_format(world, scanned):
    out, _ = scanned
    dest = world["root"] / "clean"
    run("filter", world["root"] / "data", "--attributes", out, "--out", dest)
    decisions = {n: pq.read_table(out / "attributes" / f"{n}.parquet").column("decision").to_pylist() for n in world["truth"]}
    kept = pq.read_table(dest / "kept" / "a.parquet")
    source = pq.read_table(world["root"] / "data" / "a.parquet")
    assert kept.schema.names == source.schema.names + ["collapseguard_decision", "collapseguard_reason"]
    assert kept.num_rows == decisions["a.parquet"].count("human")
    assert set(kept.column("collapseguard_decision").to_pylist()) == {"human"}
    def rows_of(folder: str, name: str) -> int:
        path = dest / folder / name
        return pq.read_table(path).num_rows if path.exists() else 0

    # kept: human; rejected: synthetic; abstained/: outside every calibrated slice (with the reason)
    assert kept.num_rows + rows_of("rejected", "a.parquet") + rows_of("abstained", "a.parquet") == source.num_rows
    assert rows_of("abstained", "a.parquet") == decisions["a.parquet"].count("abstain")
    with gzip.open(dest / "rejected" / "sub" / "b.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == decisions["sub/b.jsonl.gz"].count("synthetic")
    assert all(r["collapseguard_decision"] == "synthetic" and r["collapseguard_reason"] for r in rows)
    lines = (dest / "kept" / "c.txt").read_text().splitlines()
    source_lines = (world["root"] / "data" / "c.txt").read_text().splitlines()
    assert lines == [t for t, d in zip(source_lines, decisions["c.txt"]) if d == "human"]
    assert tree_digest(world["root"] / "data") == world["input_digest"]


def test_filter_writes_a_saved_dataset_and_a_rerun_replaces_it(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = gw.human_texts(30, 21) + gw.pasted(world["entries"], 5, 22)
    datasets.Dataset.from_dict({"text": texts, "n": list(range(len(texts)))}).save_to_disk(str(tmp_path / "in" / "ds"))
    run("scan", tmp_path / "in", "--out", tmp_path / "scan", "--policy", world["policy"])
    for _ in range(2):  # the rerun replaces its own output folder in place
        run("filter", tmp_path / "in", "--attributes", tmp_path / "scan", "--out", tmp_path / "clean")
        kept = datasets.load_from_disk(str(tmp_path / "clean" / "kept" / "ds"))
        rejected = datasets.load_from_disk(str(tmp_path / "clean" / "rejected" / "ds"))
        assert kept.column_names == ["text", "n", "collapseguard_decision", "collapseguard_reason"]
        assert len(kept) + len(rejected) == len(texts) and len(rejected) >= 5
        assert set(rejected["n"]) >= set(range(30, 35))
    assert not [p for p in (tmp_path / "clean").rglob(".*") if p.name != ".collapseguard-output.json"]


def test_filter_refuses_attributes_of_other_bytes(world, scanned, tmp_path):
    out, _ = scanned
    data = tmp_path / "data"
    shutil.copytree(world["root"] / "data", data)
    with open(data / "c.txt", "a") as f:
        f.write("one more line\n")
    res = run("filter", data, "--attributes", out, "--out", tmp_path / "clean", code=2)
    assert "changed since it was scanned" in res.output
    assert not (tmp_path / "clean" / "kept" / "c.txt").exists()


def test_map_batches_matches_the_scan(world, scanned):
    datasets = pytest.importorskip("datasets")
    from collapseguard.scan.policy import load_policy

    out, _ = scanned
    texts = pq.read_table(world["root"] / "data" / "a.parquet").column("text").to_pylist()
    ds = datasets.Dataset.from_dict({"text": texts}).map(load_policy(world["policy"]).map_batches, batched=True,
                                                         batch_size=50)
    attrs = pq.read_table(out / "attributes" / "a.parquet.parquet")
    assert ds["decision"] == attrs.column("decision").to_pylist()
    assert ds["reason"] == attrs.column("reason").to_pylist()


def test_ray_engine_writes_the_same_bytes_as_local(world, scanned, tmp_path):
    pytest.importorskip("ray")
    out, _ = scanned
    ray_out = tmp_path / "ray"
    run("scan", world["root"] / "data", "--out", ray_out, "--policy", world["policy"], "--engine", "ray",
        "--workers", "2", "--cpus-per-worker", "0.5")
    assert tree_digest(ray_out) == tree_digest(out)


def test_local_worker_processes_write_the_same_bytes(world, scanned, tmp_path):
    out, _ = scanned
    run("scan", world["root"] / "data", "--out", tmp_path / "w2", "--policy", world["policy"], "--workers", "2")
    assert tree_digest(tmp_path / "w2") == tree_digest(out)


def test_datatrove_step_tags_documents_like_the_scan(world, scanned, tmp_path):
    pytest.importorskip("datatrove")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter

    from collapseguard.scan.datatrove_step import GuardTagger

    out, _ = scanned
    dest = tmp_path / "dt"
    LocalPipelineExecutor(pipeline=[ParquetReader(str(world["root"] / "data"), glob_pattern="a.parquet"),
                                    GuardTagger(str(world["policy"])),
                                    JsonlWriter(str(dest), compression=None)],
                          tasks=1, logging_dir=str(tmp_path / "logs")).run()
    docs = [json.loads(line) for f in sorted(dest.glob("*.jsonl")) for line in f.open()]
    attrs = pq.read_table(out / "attributes" / "a.parquet.parquet").to_pylist()
    assert len(docs) == len(attrs)
    for doc, row in zip(docs, attrs):  # one task reads the file in order
        assert doc["metadata"]["collapseguard_decision"] == row["decision"]
        assert doc["metadata"]["collapseguard_reason"] == row["reason"]
        assert doc["metadata"]["kgw_v1"] == pytest.approx(row["kgw_v1"])


def test_kill_and_resume_is_byte_identical(world, tmp_path):
    data = _mkdir(tmp_path / "many")
    for i in range(8):
        gw.write_jsonl(data / f"s{i}.jsonl", gw.human_texts(400, 100 + i))
    args = [sys.executable, "-m", "collapseguard.cli.main", "scan", str(data), "--policy", str(world["policy"])]
    whole = tmp_path / "whole"
    subprocess.run(args + ["--out", str(whole)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "markers").glob("*.json")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((killed / "markers").glob("*.json")))
    assert 0 < done < 8, done  # killed mid-run
    subprocess.run(args + ["--out", str(killed)], check=True, capture_output=True)
    assert tree_digest(killed) == tree_digest(whole)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---- bad input: one line, exit 2 where the run cannot go on; abstain with a reason where it can ----

def one_line_error(res, *needles):
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("case", ["corrupt_parquet", "missing_column", "int_column", "no_such_path", "empty_folder"])
def test_unreadable_inputs_exit_2_with_one_line(world, tmp_path, case):
    data = _mkdir(tmp_path / "in")
    if case == "corrupt_parquet":
        (data / "x.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
        needles = ["x.parquet", "not a readable parquet"]
    elif case == "missing_column":
        pq.write_table(pa.table({"body": ["a b c"]}), data / "x.parquet")
        needles = ["no column 'text'", "has: body", "--text-column"]
    elif case == "int_column":
        pq.write_table(pa.table({"text": [1, 2]}), data / "x.parquet")
        needles = ["holds int64, not text"]
    elif case == "no_such_path":
        data = tmp_path / "missing.jsonl"
        needles = ["missing.jsonl", "no such file"]
    else:
        needles = ["no shards found"]
    before = tree_digest(tmp_path)
    res = CliRunner().invoke(cli, ["scan", str(data), "--out", str(tmp_path / "out"), "--policy", str(world["policy"])])
    one_line_error(res, *needles)
    assert {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("out/")} == before
    assert not list((tmp_path / "out").rglob("*.partial"))


def test_bad_records_abstain_with_their_reason(world, tmp_path):
    data = _mkdir(tmp_path / "in")
    good = gw.human_texts(3, 7)
    lines = [json.dumps({"text": good[0]}).encode(), b'{"text": "caf\xe9 latin-1"}', json.dumps({"text": 42}).encode(),
             b"{not json", json.dumps({"text": "w " * 10_000_000}).encode(), json.dumps({"text": None}).encode(),
             json.dumps({"text": good[1]}).encode()]
    (data / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (data / "empty.jsonl").write_bytes(b"")
    digest = tree_digest(data)
    res = run("scan", data, "--out", tmp_path / "out", "--policy", world["policy"], "--json")
    summary = json.loads(res.stdout)
    reasons = pq.read_table(tmp_path / "out" / "attributes" / "mixed.jsonl.parquet").column("reason").to_pylist()
    assert reasons[1] == "not UTF-8 (byte 13)"
    assert reasons[2] == "not text (int)"
    assert reasons[3].startswith("not valid JSON")
    assert reasons[4].startswith("too long (20000000 chars")
    assert reasons[5] == "empty (null)"
    assert summary["decisions"]["abstain"] == 5
    assert summary["empty_shards"] == ["empty.jsonl"]
    assert tree_digest(data) == digest


def test_policy_errors_exit_2(world, tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text('[[detectors]]\nname = "perplexity_v9"\n')
    one_line_error(CliRunner().invoke(cli, ["scan", str(world["root"] / "data"), "--out", str(tmp_path / "o"),
                                            "--policy", str(bad)]), "unknown detector 'perplexity_v9'")
    other = tmp_path / "other.toml"
    text = world["policy"].read_text().replace('options = { tokenizer_dir = "gen0" }',
                                                'options = { tokenizer_dir = "gen0", greenlist_ratio = 0.5 }')
    other.write_text(text.replace('calibration = "cal.json"', f'calibration = "{world["root"] / "cal.json"}"')
                     .replace('"gens.ledger"', f'"{world["root"] / "gens.ledger"}"').replace('"gen0"', f'"{world["root"] / "gen0"}"'))
    one_line_error(CliRunner().invoke(cli, ["policy", "check", "--policy", str(other)]),
                   "made for other detectors", "greenlist_ratio", "policy calibrate")
