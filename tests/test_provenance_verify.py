"""Signing and verification: DSSE envelopes checked by securesystemslib (an implementation we did not
write) in both directions, and every tamper case caught with the problem named."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from provenance_data import write_tree

pytest.importorskip("cryptography")

from collapseguard.errors import CollapseguardError  # noqa: E402
from collapseguard.provenance.dsse import (  # noqa: E402
    PAYLOAD_TYPE,
    VerificationFailed,
    pae,
    sign_statement,
    verify_envelope,
)
from collapseguard.provenance.keys import (  # noqa: E402
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
)
from collapseguard.provenance.manifest import build_statement, write_manifest  # noqa: E402
from collapseguard.provenance.verify import verify_manifest  # noqa: E402


@pytest.fixture
def keys(tmp_path):
    return generate_keypair(tmp_path / "keys" / "team")


@pytest.fixture
def signed(tmp_path, keys):
    data = write_tree(tmp_path / "data")
    statement = build_statement(data)
    write_manifest(data / "manifest.json", sign_statement(statement, keys[0]))
    return data, statement


def sslib_key(pub_path):
    from securesystemslib.signer import SSlibKey

    return SSlibKey.from_crypto(load_public_key(pub_path))  # securesystemslib's own keyid: no override


def test_keygen_writes_a_0600_private_key_and_a_pub_beside_it(keys):
    private, public = keys
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert public.name == "team.pub" and public.parent == private.parent
    assert key_id(load_private_key(private).public_key()) == key_id(load_public_key(public))
    with pytest.raises(CollapseguardError, match="already exists"):
        generate_keypair(private)


def test_pae_matches_securesystemslib():
    from securesystemslib.dsse import Envelope

    payload = b'{"a": 1}'
    assert pae(PAYLOAD_TYPE, payload) == Envelope(payload, PAYLOAD_TYPE, {}).pae()
    assert pae("t", b"") == b"DSSEv1 1 t 0 "  # the spec's own example shape


def test_our_envelope_verifies_with_securesystemslib(signed, keys):
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    data, statement = signed
    text = (data / "manifest.json").read_text()
    envelope = json.loads(text)
    env = Envelope.from_dict(json.loads(text))  # from_dict edits its argument
    assert set(env.verify([sslib_key(keys[1])], 1)) == {key_id(load_public_key(keys[1]))}
    assert json.loads(env.payload) == statement
    other = generate_keypair(keys[0].parent / "other")
    with pytest.raises(VerificationError):
        Envelope.from_dict(json.loads(text)).verify([sslib_key(other[1])], 1)
    tampered = dict(envelope, payload=base64.b64encode(env.payload.replace(b'"records"', b'"recordz"')).decode())
    with pytest.raises(VerificationError):
        Envelope.from_dict(tampered).verify([sslib_key(keys[1])], 1)


def test_securesystemslib_envelope_verifies_with_ours(signed, keys):
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    _, statement = signed
    signer = CryptoSigner(load_private_key(keys[0]), sslib_key(keys[1]))
    env = Envelope(json.dumps(statement).encode(), PAYLOAD_TYPE, {})
    env.sign(signer)
    assert verify_envelope(env.to_dict(), [keys[1]]) == statement


def test_clean_manifest_verifies(signed, keys):
    data, _ = signed
    report = verify_manifest(data / "manifest.json", [keys[1]])
    assert report["ok"] and report["signed"] and report["files"] == 4
    assert report["keyids"] == [key_id(load_public_key(keys[1]))]


def failure(manifest, keys, **kw) -> str:
    with pytest.raises(VerificationFailed) as err:
        verify_manifest(manifest, keys, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_changed_byte_is_caught(signed, keys):
    data, _ = signed
    raw = bytearray((data / "d.txt").read_bytes())
    raw[3] ^= 0x01  # same size, one bit
    (data / "d.txt").write_bytes(bytes(raw))
    assert failure(data / "manifest.json", [keys[1]]) == "d.txt: changed (sha256 differs from the manifest)"


def test_added_and_removed_files_are_caught(signed, keys):
    data, _ = signed
    (data / "sub" / "new.jsonl").write_text('{"text": "sneaked in"}\n')
    assert failure(data / "manifest.json", [keys[1]]).startswith("sub/new.jsonl: added")
    (data / "sub" / "new.jsonl").unlink()
    (data / "a.parquet").unlink()
    assert failure(data / "manifest.json", [keys[1]]).startswith("a.parquet: removed")


def test_wrong_key_broken_signature_and_unsigned(signed, keys, tmp_path):
    data, statement = signed
    manifest = data / "manifest.json"
    other = generate_keypair(tmp_path / "other")
    assert "not on the trusted list" in failure(manifest, [other[1]])
    envelope = json.loads(manifest.read_text())
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[0] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    manifest.write_text(json.dumps(envelope))
    assert failure(manifest, [keys[1]]).startswith("broken signature")
    # the payload edited to hide a changed file: the signature no longer covers it
    envelope = json.loads(json.dumps(sign_statement(statement, keys[0])))
    forged = dict(statement, predicate=dict(statement["predicate"], records=1))
    envelope["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    manifest.write_text(json.dumps(envelope))
    assert failure(manifest, [keys[1]]).startswith("broken signature")
    write_manifest(manifest, statement)
    assert "not signed" in failure(manifest, [keys[1]])
    assert verify_manifest(manifest, [], allow_unsigned=True)["signed"] is False


def test_no_keys_given_fails(signed):
    data, _ = signed
    assert "no trusted public key" in failure(data / "manifest.json", [])


@pytest.mark.parametrize("name, message", [
    ("/etc/passwd", "subject path is absolute"),
    ("C:/Windows/win.ini", "subject path is absolute"),
    ("\\\\server\\share", "subject path is absolute"),
    ("../outside.txt", "escapes the root with '..'"),
    ("sub/../../outside.txt", "escapes the root with '..'"),
    ("link.txt", "escapes the root through a symlink"),
])
def test_subject_paths_escaping_the_root_are_refused(tmp_path, keys, name, message):
    data = write_tree(tmp_path / "data")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    (data / "link.txt").symlink_to(outside)
    statement = build_statement(data, files=["d.txt"])
    import hashlib

    statement["subject"].append({"name": name, "digest": {"sha256": hashlib.sha256(outside.read_bytes()).hexdigest()}})
    write_manifest(data / "manifest.json", sign_statement(statement, keys[0]))
    assert message in failure(data / "manifest.json", [keys[1]], check_added=False)


def test_symlinked_data_file_found_when_building_is_refused_at_verify(tmp_path, keys):
    data = write_tree(tmp_path / "data")
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"text": "x"}\n')
    write_manifest(data / "manifest.json", sign_statement(build_statement(data), keys[0]))
    (data / "evil.jsonl").symlink_to(outside)
    assert failure(data / "manifest.json", [keys[1]]).startswith("evil.jsonl: added")


def test_verify_against_another_root(signed, keys, tmp_path):
    import shutil

    data, _ = signed
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    (copy / "manifest.json").unlink()
    assert verify_manifest(data / "manifest.json", [keys[1]], root=copy)["ok"]
    (copy / "d.txt").write_text("other\n")
    assert failure(data / "manifest.json", [keys[1]], root=copy).startswith("d.txt: changed")


def test_key_files_of_the_wrong_type_are_one_line_errors(tmp_path, keys, signed):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ecdsa = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ec.pem").write_bytes(ecdsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    (tmp_path / "ec.pem").chmod(0o600)
    (tmp_path / "ec.pub").write_bytes(ecdsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    (tmp_path / "junk.pem").write_text("hello\n")
    data, statement = signed
    cases = [
        (lambda: sign_statement(statement, tmp_path / "ec.pem"), "not Ed25519"),
        (lambda: sign_statement(statement, keys[1]), "a public key; sign with the private key"),
        (lambda: sign_statement(statement, tmp_path / "junk.pem"), "not a PEM private key"),
        (lambda: sign_statement(statement, tmp_path / "missing"), "no such private key file"),
        (lambda: verify_manifest(data / "manifest.json", [tmp_path / "ec.pub"]), "public key, not Ed25519"),
        (lambda: verify_manifest(data / "manifest.json", [keys[0]]), "a private key; pass its public key"),
        (lambda: verify_manifest(data / "manifest.json", [tmp_path / "junk.pem"]), "not a PEM public key"),
    ]
    for call, message in cases:
        with pytest.raises(CollapseguardError) as err:
            call()
        assert message in str(err.value) and "\n" not in str(err.value)


def test_include_globs_are_covered_and_checked_for_added_files(tmp_path, keys):
    data = write_tree(tmp_path / "data")
    (data / "wiki.train.tokens").write_text(" = Title = \n\n some text \n more\n")
    statement = build_statement(data, include=["*.tokens"])
    assert statement["predicate"]["files"]["wiki.train.tokens"]["records"] == 3
    assert statement["predicate"]["include"] == ["*.tokens"]
    assert "wiki.train.tokens" not in [s["name"] for s in build_statement(data)["subject"]]
    write_manifest(data / "manifest.json", sign_statement(statement, keys[0]))
    assert verify_manifest(data / "manifest.json", [keys[1]])["files"] == 5
    (data / "sub" / "wiki.valid.tokens").write_text("new\n")
    assert failure(data / "manifest.json", [keys[1]]).startswith("sub/wiki.valid.tokens: added")
