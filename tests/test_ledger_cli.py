"""`collapseguard ledger add|query|info` end to end with CliRunner, and bad input exiting 2."""

from __future__ import annotations

import json
import random

from click.testing import CliRunner

from collapseguard.cli.main import cli


def _words(rng, n):
    return " ".join(f"w{rng.randint(0, 5000)}" for _ in range(n))


def test_add_then_query_finds_pasted_generation(tmp_path):
    rng = random.Random(0)
    gens = [_words(rng, 50) for _ in range(5)]
    (tmp_path / "gens.jsonl").write_text("".join(json.dumps({"body": g}) + "\n" for g in gens), encoding="utf-8")
    docs = [_words(rng, 200) + " " + gens[2] + " " + _words(rng, 100), _words(rng, 300)]
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    runner = CliRunner()
    ledger = str(tmp_path / "L")

    r = runner.invoke(cli, ["ledger", "add", ledger, str(tmp_path / "gens.jsonl"), "--column", "body", "--id-prefix", "gen-", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["added"] == 5

    r = runner.invoke(cli, ["ledger", "query", ledger, str(tmp_path / "docs.txt"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["records"] == 2 and doc["records_matched"] == 1
    (match,) = doc["matches"]
    assert match["index"] == 0 and [m["id"] for m in match["matches"]] == ["gen-2"]
    assert match["matches"][0]["containment"] == 1.0

    r = runner.invoke(cli, ["ledger", "query", ledger, str(tmp_path / "docs.txt")])
    assert r.exit_code == 0 and "gen-2\tcontainment=1.000" in r.stdout

    r = runner.invoke(cli, ["ledger", "info", ledger, "--json"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["items"] == 5


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in result.output
    return lines[0]


def test_bad_input_exits_2_with_one_line(tmp_path):
    runner = CliRunner()
    (tmp_path / "ok.txt").write_text("some words in a line of text\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"valid line\nbroken \xff\xfe bytes\n")

    line = _one_line_error(runner.invoke(cli, ["ledger", "query", str(tmp_path / "missing"), str(tmp_path / "ok.txt")]))
    assert "no such directory" in line

    line = _one_line_error(runner.invoke(cli, ["ledger", "add", str(tmp_path / "L"), str(tmp_path / "bad.txt")]))
    assert "not valid UTF-8" in line and "bad.txt" in line

    assert runner.invoke(cli, ["ledger", "add", str(tmp_path / "L2"), str(tmp_path / "ok.txt")]).exit_code == 0
    line = _one_line_error(runner.invoke(cli, ["ledger", "query", str(tmp_path / "L2"), str(tmp_path / "bad.txt")]))
    assert "not valid UTF-8" in line
    line = _one_line_error(runner.invoke(cli, ["ledger", "query", str(tmp_path / "L2"), str(tmp_path / "ok.txt"), "--num-perm", "64"]))
    assert "num_perm: ledger 128, requested 64" in line
    line = _one_line_error(runner.invoke(cli, ["ledger", "add", str(tmp_path / "L2"), str(tmp_path / "ok.txt"), "--shingle-hash", "xxh64"]))
    assert "shingle_hash: ledger 'sha1', requested 'xxh64'" in line
    assert runner.invoke(cli, ["ledger", "add", str(tmp_path / "L3"), str(tmp_path / "ok.txt"), "--shingle-hash", "xxh64"]).exit_code == 0
    r = runner.invoke(cli, ["ledger", "query", str(tmp_path / "L3"), str(tmp_path / "ok.txt"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout.strip().splitlines()[-1])["records_matched"] == 1, r.output
    r = runner.invoke(cli, ["ledger", "info", str(tmp_path / "L3"), "--json"])
    assert "xxh64" in r.stdout, r.output
    line = _one_line_error(runner.invoke(cli, ["ledger", "query", str(tmp_path / "L2"), str(tmp_path / "nofile.txt")]))
    assert "nofile.txt" in line
