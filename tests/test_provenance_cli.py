"""`collapseguard provenance ...` end to end: exit codes 0 / 1 (named problem) / 2 (one-line bad input),
exports validated by mlcroissant and a YAML parser."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner
from provenance_data import run, tree_digest, write_tree

pytest.importorskip("cryptography")

from collapseguard.cli.main import cli  # noqa: E402


@pytest.fixture
def signed(tmp_path):
    data = write_tree(tmp_path / "data")
    key = tmp_path / "repo" / ".collapseguard" / "keys" / "team"
    run("provenance", "keygen", "--out", key)
    before = tree_digest(data)
    run("provenance", "build", data, "--out", data / "manifest.json")
    assert {k: v for k, v in tree_digest(data).items() if k != "manifest.json"} == before
    run("provenance", "sign", data / "manifest.json", "--key", key)
    return data, key


def test_keygen_build_sign_verify(signed):
    data, key = signed
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert json.loads((data / "manifest.json").read_text())["payloadType"] == "application/vnd.in-toto+json"
    res = run("provenance", "verify", data / "manifest.json", "--public-key", f"{key}.pub", "--json")
    assert json.loads(res.stdout)["ok"] is True


def test_verify_exits_1_naming_the_problem(signed, tmp_path):
    data, key = signed
    (data / "d.txt").write_text("edited\n")
    res = run("provenance", "verify", data / "manifest.json", "--public-key", f"{key}.pub", code=1)
    assert "d.txt: changed" in res.stderr
    run("provenance", "keygen", "--out", tmp_path / "other")
    res = run("provenance", "verify", data / "manifest.json", "--public-key", tmp_path / "other.pub", code=1)
    assert "not on the trusted list" in res.stderr


def test_verify_trusts_the_policys_keys(signed, tmp_path):
    data, key = signed
    policy = tmp_path / "repo" / "collapseguard.toml"
    policy.write_text('[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\n')
    run("provenance", "verify", data / "manifest.json", "--policy", policy)
    policy.write_text('trusted_keys = []\n[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\n')
    assert "no trusted public key" in run("provenance", "verify", data / "manifest.json", "--policy", policy,
                                          code=1).stderr


def test_unsigned_needs_allow_unsigned(tmp_path):
    data = write_tree(tmp_path / "data")
    run("provenance", "build", data)
    assert "not signed" in run("provenance", "verify", data / "manifest.json", code=1).stderr
    assert "unsigned" in run("provenance", "verify", data / "manifest.json", "--allow-unsigned").stdout
    run("provenance", "build", data)  # rebuilding its own manifest is allowed
    (tmp_path / "other.json").write_text("{}")
    run("provenance", "build", data, "--out", tmp_path / "other.json", code=2)


def one_line(res, text):
    assert res.exit_code == 2, res.output
    assert text in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output


def test_bad_input_is_one_line_exit_2(signed, tmp_path):
    data, key = signed
    (tmp_path / "bad.json").write_text("nope")
    invoke = CliRunner().invoke
    res = invoke(cli, ["provenance", "verify", str(tmp_path / "bad.json"), "--public-key", f"{key}.pub"])
    assert res.exit_code == 1 and "not a JSON manifest" in res.stderr  # a manifest that is there but broken fails
    (tmp_path / "fields.json").write_text('{"_type": "https://in-toto.io/Statement/v1"}')
    one_line(invoke(cli, ["provenance", "sign", str(tmp_path / "fields.json"), "--key", str(key)]), "predicateType")
    one_line(invoke(cli, ["provenance", "verify", str(data / "manifest.json"), "--public-key", str(key)]),
             "a private key; pass its public key")
    run("provenance", "build", data, "--overwrite")
    one_line(invoke(cli, ["provenance", "sign", str(data / "manifest.json"), "--key", f"{key}.pub"]),
             "a public key; sign with the private key")
    run("provenance", "sign", data / "manifest.json", "--key", key)
    one_line(invoke(cli, ["provenance", "sign", str(data / "manifest.json"), "--key", str(key)]), "already signed")


def test_parents_chain(signed, tmp_path):
    data, key = signed
    child = write_tree(tmp_path / "child")
    res = run("provenance", "build", child, "--parent", data / "manifest.json", "--json")
    (parent,) = json.loads(res.stdout)["predicate"]["parents"]
    import hashlib

    assert parent["sha256"] == hashlib.sha256((data / "manifest.json").read_bytes()).hexdigest()


def test_card_block_parses_as_yaml(signed):
    yaml = pytest.importorskip("yaml")
    data, key = signed
    res = run("provenance", "card", data / "manifest.json", "--public-key", f"{key}.pub", "--pretty-name", "Tiny: a test", "--license", "cc-by-4.0")
    assert res.stdout.startswith("---\n") and res.stdout.endswith("---\n")
    meta = yaml.safe_load(res.stdout.strip().strip("-"))
    assert meta["license"] == "cc-by-4.0" and meta["pretty_name"] == "Tiny: a test"
    assert meta["size_categories"] == ["n<1K"]
    cg = meta["collapseguard"]
    assert cg["records"] == 10 and cg["origin_counts"] == {"human": 3, "synthetic": 1, "unknown": 1}
    statement = json.loads(__import__("base64").b64decode(json.loads((data / "manifest.json").read_text())["payload"]))
    assert [f["sha256"] for f in cg["files"]] == [s["digest"]["sha256"] for s in statement["subject"]]


def test_card_block_is_read_by_huggingface_hub(signed):
    hub = pytest.importorskip("huggingface_hub")
    data, key = signed
    block = run("provenance", "card", data / "manifest.json", "--public-key", f"{key}.pub", "--license", "cc-by-4.0").stdout
    card = hub.DatasetCard(block + "\n# Tiny\n")
    assert card.data.license == "cc-by-4.0" and card.data.to_dict()["collapseguard"]["records"] == 10


def test_croissant_validates_with_mlcroissant(signed, tmp_path):
    mlc = pytest.importorskip("mlcroissant")
    data, key = signed
    out = tmp_path / "croissant.json"
    run("provenance", "croissant", data / "manifest.json", "--public-key", f"{key}.pub", "--name", "tiny", "--license", "cc-by-4.0",
        "--version", "1.0.0", "--out", out)
    ds = mlc.Dataset(jsonld=str(out))  # raises ValidationError on any error
    files = {d.name: d.sha256 for d in ds.metadata.distribution}
    statement = json.loads(__import__("base64").b64decode(json.loads((data / "manifest.json").read_text())["payload"]))
    assert files == {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    doc = json.loads(out.read_text())
    assert doc["rai:hasSyntheticData"] is True  # a.parquet declares one synthetic record
    assert json.loads(next(d for d in doc["distribution"] if d["name"] == "a.parquet")["cg:origin_counts"]) == \
        {"human": 2, "synthetic": 1, "unknown": 0}
    broken = dict(doc, distribution=[dict(doc["distribution"][0], sha256=None, encodingFormat=None)])
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(mlc.ValidationError):
        mlc.Dataset(jsonld=str(tmp_path / "broken.json"))


def test_croissant_record_sets_load_the_same_records(signed):
    mlc = pytest.importorskip("mlcroissant")
    pq = pytest.importorskip("pyarrow.parquet")
    data, key = signed
    out = data / "croissant.json"  # beside the manifest: contentUrl is relative to it
    run("provenance", "croissant", data / "manifest.json", "--public-key", f"{key}.pub", "--name", "tiny", "--license", "cc-by-4.0", "--out", out)
    ds = mlc.Dataset(jsonld=str(out))
    rows = list(ds.records("a.parquet/records"))
    table = pq.read_table(data / "a.parquet")
    assert [r["a.parquet/records/text"].decode() for r in rows] == table.column("text").to_pylist()
    assert [r["a.parquet/records/origin"].decode() for r in rows] == table.column("origin").to_pylist()
    rows = list(ds.records("sub/b.jsonl/records"))
    expected = [json.loads(line)["text"] for line in (data / "sub" / "b.jsonl").read_text().splitlines() if line.strip()]
    assert [r["sub/b.jsonl/records/text"].decode() for r in rows] == expected
    sets = {r["@id"] for r in json.loads(out.read_text())["recordSet"]}
    assert sets == {"a.parquet/records", "sub/b.jsonl/records"}  # not the .txt or the gzip file
