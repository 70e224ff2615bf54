"""Trust that cannot be talked around: dataset identity and rollbacks, plain-securesystemslib interop,
symlinked folders, strict origins, attributes of other files, exports that verify first and never
replace their inputs, published paths relative to the dataset, private key modes, exit codes."""

from __future__ import annotations

import base64
import json
import os
import shutil

import pytest
from provenance_data import run, tree_digest, write_tree

pytest.importorskip("cryptography")


@pytest.fixture
def signed(tmp_path):
    data = write_tree(tmp_path / "data")
    key = tmp_path / "keys" / "team"
    run("provenance", "keygen", "--out", key)
    run("provenance", "build", data)
    run("provenance", "sign", data / "manifest.json", "--key", key)
    return data, key


def envelope(path):
    return json.loads(path.read_text())


def payload(path):
    return json.loads(base64.b64decode(envelope(path)["payload"]))


# identity and freshness


def test_identity_refuses_swaps_and_rollbacks(tmp_path, monkeypatch):
    data = write_tree(tmp_path / "data")
    key = tmp_path / "team"
    run("provenance", "keygen", "--out", key)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    run("provenance", "build", data, "--name", "corpus")
    run("provenance", "sign", data / "manifest.json", "--key", key)
    v1 = tmp_path / "v1.json"
    shutil.copy(data / "manifest.json", v1)
    ident = payload(v1)["predicate"]["dataset"]
    assert ident == {"name": "corpus", "version": "1", "created": "2023-11-14T22:13:20Z", "previous": None}
    # the next version names the one it replaces
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700003600")
    (data / "d.txt").write_text("a new line\n")
    run("provenance", "build", data, "--name", "corpus", "--overwrite")
    run("provenance", "sign", data / "manifest.json", "--key", key)
    ident = payload(data / "manifest.json")["predicate"]["dataset"]
    assert ident["version"] == "2" and ident["previous"]["sha256"] == __import__("hashlib").sha256(
        v1.read_bytes()).hexdigest()
    pub = f"{key}.pub"
    run("provenance", "verify", data / "manifest.json", "--public-key", pub, "--name", "corpus", "--not-older-than", v1)
    v2 = tmp_path / "v2.json"
    shutil.copy(data / "manifest.json", v2)
    # rollback: the old signed manifest and its old bytes put back; both verify on their own
    shutil.copy(v1, data / "manifest.json")
    (data / "d.txt").write_text("first line\n\n  \nsecond line\n")
    run("provenance", "verify", data / "manifest.json", "--public-key", pub)
    res = run("provenance", "verify", data / "manifest.json", "--public-key", pub, "--not-older-than", v2, code=1)
    assert "rollback: version 1 is older than version 2" in res.stderr
    # swap: another dataset's signed manifest and files verify, but not as this dataset
    other = write_tree(tmp_path / "other")
    run("provenance", "build", other, "--name", "elsewhere")
    run("provenance", "sign", other / "manifest.json", "--key", key)
    res = run("provenance", "verify", other / "manifest.json", "--public-key", pub, "--name", "corpus", code=1)
    assert "dataset 'elsewhere', not 'corpus'" in res.stderr
    res = run("provenance", "verify", other / "manifest.json", "--public-key", pub, "--not-older-than", v2, code=1)
    assert "another dataset" in res.stderr


def test_a_manifest_without_identity_verifies_with_a_warning_but_not_for_freshness(tmp_path):
    data = write_tree(tmp_path / "data")
    run("provenance", "build", data)
    doc = json.loads((data / "manifest.json").read_text())
    del doc["predicate"]["dataset"]  # as written before the identity existed
    (data / "manifest.json").write_text(json.dumps(doc))
    res = run("provenance", "verify", data / "manifest.json", "--allow-unsigned")
    assert "warning:" in res.stderr and "no dataset identity" in res.stderr
    res = run("provenance", "verify", data / "manifest.json", "--allow-unsigned", "--name", "data", code=1)
    assert "no dataset identity" in res.stderr


# interop


def test_plain_securesystemslib_verifies_our_envelope_without_overrides(signed):
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    data, key = signed
    from cryptography.hazmat.primitives import serialization

    pem = (key.parent / "team.pub").read_bytes()
    sslib = SSlibKey.from_crypto(serialization.load_pem_public_key(pem))  # its own default keyid
    env = Envelope.from_dict(envelope(data / "manifest.json"))
    assert list(env.verify([sslib], 1)) == [sslib.keyid]
    assert envelope(data / "manifest.json")["signatures"][0]["keyid"] == sslib.keyid


def test_url_safe_base64_is_accepted_as_dsse_allows(signed):
    from collapseguard.provenance.dsse import b64decode, sign_statement
    from collapseguard.provenance.verify import verify_manifest

    data, key = signed
    statement = payload(data / "manifest.json")
    # "~~~" encodes to "fn5+" and "???" to "Pz8/": six of each hold an aligned triple wherever they
    # fall, so the payload's standard form always differs from its URL-safe one; then a nonce for
    # a signature with '+' or '/' (each nonce: ~94%)
    predicate = {**statement["predicate"], "pad": "~~~~~~??????"}
    for nonce in range(200):
        env = sign_statement({**statement, "predicate": {**predicate, "nonce": nonce}}, key)
        if set(env["signatures"][0]["sig"]) & set("+/"):
            break
    assert set(env["payload"]) >= set("+/")
    url_safe = {**env, "payload": base64.urlsafe_b64encode(b64decode(env["payload"])).decode().rstrip("="),
                "signatures": [{**env["signatures"][0],
                                "sig": base64.urlsafe_b64encode(b64decode(env["signatures"][0]["sig"])).decode()}]}
    assert url_safe["signatures"][0]["sig"] != env["signatures"][0]["sig"]
    (data / "manifest.json").write_text(json.dumps(url_safe))
    assert verify_manifest(data / "manifest.json", [f"{key}.pub"])["ok"]


# what verify and build look at


def test_verify_sees_shards_through_a_symlinked_folder(signed, tmp_path):
    data, key = signed
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.jsonl").write_text('{"text": "machine text"}\n' * 300)
    (data / "more").symlink_to(outside, target_is_directory=True)
    import pyarrow.dataset as ds

    assert any(f.endswith("more/x.jsonl") for f in ds.dataset(str(data / "more"), format="json").files)
    res = run("provenance", "verify", data / "manifest.json", "--public-key", f"{key}.pub", code=1)
    assert "more/x.jsonl: added" in res.stderr
    res = run("provenance", "build", data, "--out", tmp_path / "m.json", code=2)
    assert "a symlink out of" in res.output
    os.unlink(data / "more")
    (data / "loop").symlink_to(data, target_is_directory=True)  # a link loop ends: each real folder is read once
    run("provenance", "verify", data / "manifest.json", "--public-key", f"{key}.pub")


@pytest.mark.parametrize("value", ["martian", 5, True])
def test_build_refuses_origins_outside_the_list(tmp_path, value):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.jsonl").write_text(json.dumps({"text": "a", "origin": "human"}) + "\n"
                                  + json.dumps({"text": "b", "origin": value}) + "\n")
    res = run("provenance", "build", data, code=2)
    assert "x.jsonl: column 'origin' holds" in res.output and "in record 1" in res.output
    assert not (data / "manifest.json").exists()


def test_build_refuses_the_scan_of_other_files(tmp_path):
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_tree(tmp_path / "data")
    scan = tmp_path / "scan"
    (scan / "attributes").mkdir(parents=True)
    pq.write_table(pa.table({"decision": ["synthetic"] * 3}), scan / "attributes" / "a.parquet.parquet")
    summary = {"synthetic_share": {"estimate": 0.9}, "shards": [{"shard": "a.parquet", "input_sha256": "0" * 64}]}
    (scan / "summary.json").write_text(json.dumps(summary))
    res = run("provenance", "build", data, "--attributes", scan, code=2)
    assert "scanned 'a.parquet', which is not one of the files" in res.output
    summary["shards"][0]["input_sha256"] = hashlib.sha256((data / "a.parquet").read_bytes()).hexdigest()
    (scan / "summary.json").write_text(json.dumps(summary))
    res = run("provenance", "build", data, "--attributes", scan, "--json")
    assert json.loads(res.stdout)["predicate"]["files"]["a.parquet"]["detected_counts"]["synthetic"] == 3


# exports


def test_exports_verify_first_refuse_traversal_and_invent_nothing(signed, tmp_path):
    data, key = signed
    pub = f"{key}.pub"
    doc = json.loads(run("provenance", "croissant", data / "manifest.json", "--public-key", pub, "--name", "t").stdout)
    assert "url" not in doc and "license" not in doc
    # a tampered file: nothing exported
    (data / "d.txt").write_text("edited\n")
    for cmd in (["croissant", "--name", "t"], ["card"]):
        res = run("provenance", *cmd, data / "manifest.json", "--public-key", pub, "--out", tmp_path / "x", code=1)
        assert "d.txt: changed" in res.stderr and not (tmp_path / "x").exists()
    # a subject that leaves the dataset is never a contentUrl
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "manifest.json").write_text(json.dumps({
        "_type": "https://in-toto.io/Statement/v1", "predicateType": "https://collapseguard.dev/provenance/v1",
        "subject": [{"name": "../../secret.jsonl", "digest": {"sha256": "0" * 64}}], "predicate": {"files": {}}}))
    res = run("provenance", "croissant", evil / "manifest.json", "--allow-unsigned", "--name", "t", code=1)
    assert "escapes the root" in res.stderr and "secret" not in res.stdout
    from collapseguard.provenance.croissant import to_croissant
    from collapseguard.provenance.verify import VerificationFailed

    with pytest.raises(VerificationFailed):
        to_croissant(json.loads((evil / "manifest.json").read_text()), name="t")


def test_outputs_never_replace_data_or_their_input_manifest(signed, tmp_path):
    data, key = signed
    pub = f"{key}.pub"
    other = tmp_path / "elsewhere.jsonl"  # a data file of another dataset
    other.write_text('{"text": "keep me"}\n')
    before = tree_digest(data)
    res = run("provenance", "build", data, "--out", data / "a.parquet", "--overwrite", code=2)
    assert "already exists and is not a manifest" in res.output
    for cmd in (["croissant", "--name", "t"], ["card"]):
        res = run("provenance", *cmd, data / "manifest.json", "--public-key", pub, "--out", data / "manifest.json",
                  "--overwrite", code=2)
        assert "would overwrite the input" in res.output
        res = run("provenance", *cmd, data / "manifest.json", "--public-key", pub, "--out", data / "sub" / "b.jsonl",
                  "--overwrite", code=2)
        assert "would overwrite the input" in res.output
        res = run("provenance", *cmd, data / "manifest.json", "--public-key", pub, "--out", other, "--overwrite", code=2)
        assert "is a data file or a manifest" in res.output
    assert tree_digest(data) == before and other.read_text() == '{"text": "keep me"}\n'
    tokens = write_tree(tmp_path / "wiki")
    (tokens / "wiki.train.tokens").write_text("a listed data file without a shard suffix\n")
    run("provenance", "build", tokens, "--include", "*.tokens")
    res = run("provenance", "croissant", tokens / "manifest.json", "--allow-unsigned", "--name", "t", "--out",
              tokens / "wiki.train.tokens", "--overwrite", code=2)
    assert "would overwrite the input" in res.output
    assert (tokens / "wiki.train.tokens").read_text().startswith("a listed data file")


def test_parent_paths_are_relative_to_the_manifest(signed, tmp_path, monkeypatch):
    data, _ = signed
    child = write_tree(tmp_path / "work" / "child")
    monkeypatch.chdir(tmp_path / "work")  # the cwd is not the manifest's folder
    res = run("provenance", "build", "child", "--parent", data / "manifest.json", "--json")
    (parent,) = json.loads(res.stdout)["predicate"]["parents"]
    assert parent["path"] == "../../data/manifest.json"
    assert (child / parent["path"]).resolve() == (data / "manifest.json").resolve()
    # a relative --parent is read from the manifest's folder, as it is recorded, not from the cwd
    res = run("provenance", "build", "child", "--parent", "../../data/manifest.json", "--json", "--overwrite")
    assert json.loads(res.stdout)["predicate"]["parents"] == [parent]
    res = run("provenance", "build", "child", "--parent", "child/manifest.json", "--overwrite", code=2)
    assert "resolved from the manifest's folder" in res.output


# keys and exit codes


def test_a_private_key_others_can_read_is_refused(signed):
    data, key = signed
    run("provenance", "build", data, "--overwrite")
    os.chmod(key, 0o644)
    res = run("provenance", "sign", data / "manifest.json", "--key", key, code=2)
    assert "permissions 0644 are too open" in res.output and f"chmod 600 {key}" in res.output


def test_every_verification_failure_exits_1_and_usage_errors_2(signed, tmp_path):
    data, key = signed
    pub = f"{key}.pub"
    good = envelope(data / "manifest.json")
    for sig in ("!!not base64!!", 5, None):
        (data / "manifest.json").write_text(json.dumps({**good, "signatures": [{"keyid": "x", "sig": sig}]}))
        res = run("provenance", "verify", data / "manifest.json", "--public-key", pub, code=1)
        assert res.stderr.startswith("verification failed:")
    (data / "manifest.json").write_text(json.dumps({**good, "payload": "%%%"}))
    run("provenance", "verify", data / "manifest.json", "--public-key", pub, code=1)
    run("provenance", "verify", tmp_path / "missing.json", "--public-key", pub, code=2)
    (data / "manifest.json").write_text(json.dumps(good))
    run("provenance", "verify", data / "manifest.json", "--public-key", key, code=2)  # a private key given
    help_text = run("provenance", "verify", "--help").output
    assert "1  does not verify" in help_text and "2  usage error" in help_text


def test_an_envelope_with_the_old_keyid_hint_still_verifies_and_reports_the_key(signed):
    import hashlib

    from collapseguard.provenance.keys import key_id, load_public_key, raw_public
    from collapseguard.provenance.verify import verify_manifest

    data, key = signed
    pub = load_public_key(f"{key}.pub")
    env = envelope(data / "manifest.json")
    env["signatures"][0]["keyid"] = hashlib.sha256(raw_public(pub)).hexdigest()  # the former scheme
    (data / "manifest.json").write_text(json.dumps(env))
    assert verify_manifest(data / "manifest.json", [f"{key}.pub"])["keyids"] == [key_id(pub)]


def test_not_older_than_compares_statements_not_envelope_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    data = write_tree(tmp_path / "data")
    run("provenance", "build", data, "--name", "c")
    unsigned = tmp_path / "unsigned.json"
    shutil.copy(data / "manifest.json", unsigned)
    run("provenance", "keygen", "--out", tmp_path / "k")
    run("provenance", "sign", data / "manifest.json", "--key", tmp_path / "k")
    pub = tmp_path / "k.pub"
    run("provenance", "verify", data / "manifest.json", "--public-key", pub, "--not-older-than", unsigned)
    forged = json.loads(unsigned.read_text())
    forged["predicate"]["records"] += 1  # same version and time, another statement
    unsigned.write_text(json.dumps(forged))
    res = run("provenance", "verify", data / "manifest.json", "--public-key", pub, "--not-older-than", unsigned, code=1)
    assert "same version and creation time" in res.stderr
