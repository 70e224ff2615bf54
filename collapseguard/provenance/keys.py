"""Ed25519 keys for signing manifests: PEM files, the private key 0600 with a `.pub` beside it.

A key's id is securesystemslib's default keyid: the hex sha256 of the canonical JSON
`{"keytype":"ed25519","keyval":{"public":HEX},"scheme":"ed25519"}`, so a plain securesystemslib
verifier matches our signatures to its keys; envelopes carry it as a hint. A private key file that
group or others may read is refused, as ssh refuses one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from collapseguard.errors import CollapseguardError

KEYGEN = "make one with `collapseguard provenance keygen --out KEY`"


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise CollapseguardError("signing needs `cryptography`: pip install 'collapseguard[provenance]'") from None
    return serialization, ed25519


def public_path(private_path: str | Path) -> Path:
    """Where the public key of `private_path` lives: the same name plus `.pub`."""
    private_path = Path(private_path)
    return private_path.with_name(private_path.name + ".pub")


def generate_keypair(out_path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 private key (PKCS8 PEM, mode 0600) to `out_path` and its public key
    (SubjectPublicKeyInfo PEM) to `out_path.pub`; return both paths."""
    serialization, ed25519 = _crypto()
    out_path, pub_path = Path(out_path), public_path(out_path)
    for p in (out_path, pub_path):
        if p.exists() and not overwrite:
            raise CollapseguardError(f"{p}: already exists; choose another --out or pass --overwrite")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_private(out_path, private_pem)
    from collapseguard.io.atomic import atomic_path

    with atomic_path(pub_path) as tmp:
        tmp.write_bytes(public_pem)
    return out_path, pub_path


def _write_private(path: Path, data: bytes) -> None:
    """Create the file 0600 from the start (a temp name, then renamed), so it is never readable by others."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read(path: Path, kind: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: no such {kind} key file; {KEYGEN}") from None
    except IsADirectoryError:
        raise CollapseguardError(f"{path}: a folder, not a {kind} key file; {KEYGEN}") from None


def check_private_mode(path) -> None:
    """Refuse a private key file that group or others may read or write (as ssh does)."""
    if os.name != "posix":
        return
    try:
        mode = Path(path).stat().st_mode & 0o777
    except OSError:
        return  # _read names the problem
    if mode & 0o077:
        raise CollapseguardError(f"{path}: permissions {mode:04o} are too open (group or others may read the "
                                 f"private key); run `chmod 600 {path}`")


def load_private_key(path):
    """The Ed25519 private key in a PEM file (mode 0600 or stricter); anything else is a one-line error."""
    serialization, ed25519 = _crypto()
    data = _read(path, "private")
    if b"PRIVATE KEY" in data:
        check_private_mode(path)
    if b"PUBLIC KEY" in data:
        raise CollapseguardError(f"{path}: a public key; sign with the private key (the file without .pub)")
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CollapseguardError(f"{path}: the private key is encrypted; {KEYGEN} (stored 0600, unencrypted)") from None
    except (ValueError, UnsupportedAlgorithm):  # a damaged key can name an unknown algorithm
        raise CollapseguardError(f"{path}: not a PEM private key; {KEYGEN}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise CollapseguardError(f"{path}: a {type(key).__name__.lstrip('_')} key, not Ed25519; {KEYGEN}")
    return key


def load_public_key(path):
    """The Ed25519 public key in a PEM file; anything else is a one-line error."""
    serialization, ed25519 = _crypto()
    data = _read(path, "public")
    if b"PRIVATE KEY" in data:
        raise CollapseguardError(f"{path}: a private key; pass its public key (the .pub file) and keep this one secret")
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):  # a damaged key can name an unknown algorithm
        raise CollapseguardError(f"{path}: not a PEM public key; pass the .pub file from `collapseguard provenance keygen`") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise CollapseguardError(f"{path}: a {type(key).__name__.lstrip('_')} public key, not Ed25519; {KEYGEN}")
    return key


def raw_public(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key) -> str:
    """securesystemslib's default keyid of an Ed25519 public key (sha256 of its canonical JSON)."""
    import json

    key = {"keytype": "ed25519", "keyval": {"public": raw_public(public_key).hex()}, "scheme": "ed25519"}
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
