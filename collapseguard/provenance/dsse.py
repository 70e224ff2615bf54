"""DSSE envelopes (https://github.com/secure-systems-lab/dsse, v1.0) signed with Ed25519.

The signature covers PAE(payloadType, payload) =
``b"DSSEv1 " + len(type) + b" " + type + b" " + len(payload) + b" " + payload`` (lengths in ASCII
decimal), never the JSON, so any change to the statement's bytes breaks it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class VerificationFailed(Exception):
    """A manifest, its signature or its files failed verification (exit code 1, not bad input)."""


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64 (DSSE accepts either), padding optional; ValueError otherwise."""
    import binascii

    if not isinstance(text, str):
        raise ValueError("not a string")
    text = text.strip() + "=" * (-len(text.strip()) % 4)
    alphabet = "-_" if ("-" in text or "_" in text) else "+/"
    try:
        return base64.b64decode(text, altchars=alphabet.encode(), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def serialize(statement: dict) -> bytes:
    """The statement's canonical bytes (sorted keys, compact, UTF-8)."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_statement(statement: dict, private_key_path) -> dict:
    """A DSSE envelope holding `statement`, signed with the Ed25519 key at `private_key_path`."""
    from collapseguard.provenance.keys import key_id, load_private_key
    from collapseguard.provenance.manifest import check_statement

    check_statement(statement, "statement")
    key = load_private_key(private_key_path)
    payload = serialize(statement)
    sig = key.sign(pae(PAYLOAD_TYPE, payload))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}]}


def _public_keys(public_keys) -> list[tuple[str, object, str]]:
    """(key id, key, where) for paths or key objects."""
    from collapseguard.provenance.keys import key_id, load_public_key

    out = []
    for k in public_keys:
        key = load_public_key(k) if isinstance(k, (str, Path)) else k
        out.append((key_id(key), key, str(k) if isinstance(k, (str, Path)) else key_id(key)[:16]))
    return out


def verify_envelope(envelope: dict, public_keys: list) -> dict:
    """The statement inside `envelope` once one signature verifies with one of `public_keys`
    (PEM paths or Ed25519 public keys); VerificationFailed naming the problem otherwise."""
    return verify_signatures(envelope, public_keys)[0]


def verify_signatures(envelope: dict, public_keys: list) -> tuple[dict, list[str]]:
    """(statement, ids of the trusted keys whose signatures verify), once at least one does;
    VerificationFailed naming the first problem otherwise."""
    from cryptography.exceptions import InvalidSignature

    from collapseguard.provenance.manifest import check_envelope, decode_payload

    check_envelope(envelope, "envelope")
    keys = _public_keys(public_keys)
    if not keys:
        raise VerificationFailed("no trusted public key given; pass --public-key PUB (or list trusted_keys in the policy)")
    if envelope["payloadType"] != PAYLOAD_TYPE:
        raise VerificationFailed(f"payloadType is {envelope['payloadType']!r}, not {PAYLOAD_TYPE!r}")
    if not envelope["signatures"]:
        raise VerificationFailed("the envelope has no signatures")
    try:
        payload = b64decode(envelope["payload"])
    except ValueError:
        raise VerificationFailed("the payload is not base64") from None
    message = pae(envelope["payloadType"], payload)
    problems, verified = [], []
    for sig in envelope["signatures"]:
        try:
            raw = b64decode(sig["sig"])
        except ValueError:
            problems.append("a signature is not base64")
            continue
        hint = sig.get("keyid")
        kid = _verifying_key(keys, hint, raw, message, InvalidSignature)
        if kid is not None:
            verified.append(kid)
            continue
        known = any(kid == hint for kid, _, _ in keys)
        if known:
            problems.append(f"broken signature: it does not verify with the trusted key {hint[:16]}… "
                            "(the manifest was changed after signing, or the signature is corrupt)")
        else:
            problems.append(f"signed by key {str(hint)[:16]}…, which is not on the trusted list "
                            f"({', '.join(w for _, _, w in keys)}), and no trusted key verifies it")
    if verified:
        return decode_payload(envelope, "envelope"), list(dict.fromkeys(verified))
    raise VerificationFailed(problems[0])


def _verifying_key(keys, hint, raw: bytes, message: bytes, invalid) -> str | None:
    """The id of the trusted key that verifies `raw` over `message` (the hinted key tried first)."""
    for kid, key, _ in sorted(keys, key=lambda k: k[0] != hint):
        try:
            key.verify(raw, message)
            return kid
        except invalid:
            continue
    return None
