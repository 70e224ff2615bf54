"""The ledger's files and their integrity checks.

A ledger directory holds:

- ``header.json``: the sketch settings and ``fingerprint``, the sha256 of those settings taken at
  creation. An edited setting (num_perm, bands, ...) no longer matches it and is refused.
- ``chunk-NNNNNN.npz``: per item its id, MinHash signature and sorted shingle-hash set.
- ``index-NNNNNN.keys.npy`` / ``.owners.npy``: the containment inverted index over every
  committed chunk (all shingle hashes sorted, uint64, and the item each belongs to, uint32):
  12 bytes per ledger shingle, memory-mapped on open, so a query costs no rebuild.
- ``embeddings-NNNNNN.npy`` (optional, ``ledger add --embeddings``): one float32 unit vector per
  item from a local sentence-embedding model, for paraphrase queries.
- ``state.json``: the commit record: the header fingerprint, each chunk with its item and
  shingle counts and sha256, and the index files with theirs. An add writes its chunks and the
  new index under fresh names, then replaces ``state.json`` atomically: that rename is the
  commit, so a failed or killed add leaves the ledger exactly as it was. Files that
  ``state.json`` does not name are leftovers of such an add (or of the state before last) and
  are ignored; a successful add removes them, keeping the previous state's files so that a
  reader that has just read the old ``state.json`` can still open them.

On open every listed file is checked: present, sha256 as recorded, arrays of the header's
width and dtype, offsets consistent, ids unique. Any mismatch is one CollapseguardError naming
the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError

HEADER = "header.json"
STATE = "state.json"
VERSION = 2
SETTINGS = ("format", "version", "scheme", "num_perm", "seed", "ngram", "permutation",
            "lsh_threshold", "bands", "rows")
SIGNATURE_DTYPES = {"affine32": np.uint32, "affine64": np.uint64, "legacy": np.uint64}
REBUILD = "remove the ledger folder and rebuild it with `collapseguard ledger add`"


def settings_fingerprint(header: dict) -> str:
    """sha256 of the header's settings (canonical JSON), recorded at creation. ``shingle_hash``
    counts only when the header has it, so ledgers made before the setting keep their fingerprint."""
    settings = {k: header.get(k) for k in SETTINGS}
    if "shingle_hash" in header:
        settings["shingle_hash"] = header["shingle_hash"]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj: dict) -> None:
    from collapseguard.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CollapseguardError(f"{path}: missing ledger {what}; {REBUILD}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CollapseguardError(f"{path}: unreadable ledger {what} ({exc}); restore it or {REBUILD}") from None
    if not isinstance(obj, dict):
        raise CollapseguardError(f"{path}: unreadable ledger {what} (not a JSON object); restore it or {REBUILD}")
    return obj


def check_header(path: Path, header: dict) -> None:
    """Refuse a header whose settings no longer match the fingerprint it was created with."""
    if header.get("version") != VERSION:
        raise CollapseguardError(
            f"{path}: ledger format version {header.get('version')!r}, this collapseguard reads {VERSION}; {REBUILD}")
    if header.get("fingerprint") != settings_fingerprint(header):
        raise CollapseguardError(
            f"{path}: settings were edited after the ledger was created (fingerprint mismatch); "
            f"restore the original header or {REBUILD}")


def empty_state(fingerprint: str) -> dict:
    return {"fingerprint": fingerprint, "items": 0, "shingles": 0, "chunks": [], "index": None}


def _check_listed(directory: Path, entry, key: str = "file") -> Path:
    """The file `entry[key]` names, checked against the sha256 recorded beside it."""
    name = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise CollapseguardError(f"{directory / STATE}: malformed entry {entry!r}; restore it or {REBUILD}")
    path = directory / name
    if not path.is_file():
        raise CollapseguardError(f"{path}: ledger file listed in {STATE} is missing; restore it or {REBUILD}")
    if file_sha256(path) != entry.get("sha256" if key == "file" else f"{key}_sha256"):
        raise CollapseguardError(f"{path}: contents differ from the sha256 in {STATE} (truncated or edited); "
                                 f"restore it or {REBUILD}")
    return path


def _chunk_error(path: Path, why: str) -> CollapseguardError:
    return CollapseguardError(f"{path}: {why}; restore the chunk or {REBUILD}")


def _npy_header(zf: zipfile.ZipFile, name: str) -> tuple[tuple, np.dtype]:
    with zf.open(name + ".npy") as f:
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def read_chunk(path: Path, entry: dict, num_perm: int, permutation: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, per-item shingle counts) of a verified chunk; checks every array against the header."""
    try:
        with zipfile.ZipFile(path) as zf:
            sig_shape, sig_dtype = _npy_header(zf, "signatures")
            hash_shape, hash_dtype = _npy_header(zf, "set_hashes")
        with np.load(path, allow_pickle=False) as data:
            ids, offsets = data["ids"], data["set_offsets"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise _chunk_error(path, f"unreadable ledger chunk ({exc})") from None
    n = len(ids)
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise _chunk_error(path, f"ids are {ids.dtype}{ids.shape}, not a list of strings")
    if sig_shape != (n, num_perm) or sig_dtype != np.dtype(SIGNATURE_DTYPES[permutation]):
        raise _chunk_error(path, f"signatures are {sig_dtype}{sig_shape}, the header says "
                                 f"{np.dtype(SIGNATURE_DTYPES[permutation])}({n}, {num_perm})")
    if len(hash_shape) != 1 or hash_dtype != np.uint64:
        raise _chunk_error(path, f"shingle hashes are {hash_dtype}{hash_shape}, not uint64 (n,)")
    if (offsets.shape != (n + 1,) or offsets.dtype.kind not in "iu" or offsets[0] != 0
            or offsets[-1] != hash_shape[0] or np.any(np.diff(offsets) <= 0)):
        raise _chunk_error(path, "item offsets do not fit its shingle hashes")
    if entry.get("items") != n or entry.get("shingles") != hash_shape[0]:
        raise _chunk_error(path, f"holds {n} items and {hash_shape[0]} shingles, {STATE} says "
                                 f"{entry.get('items')} and {entry.get('shingles')}")
    return ids, np.diff(offsets).astype(np.int64)


def load_chunk_arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in ("ids", "signatures", "set_hashes", "set_offsets")}


def verify(directory: Path, header: dict, state: dict):
    """Check state.json against the header and every file it lists.

    Returns (ids, sizes, keys, owners): ids (n,) str, sizes (n,) int64 shingles per item, and the
    memory-mapped inverted index (keys (S,) uint64 sorted, owners (S,) uint32), or Nones when empty.
    """
    state_path = directory / STATE
    if state.get("fingerprint") != header["fingerprint"]:
        raise CollapseguardError(f"{state_path}: belongs to another ledger header (fingerprint mismatch); {REBUILD}")
    chunks = state.get("chunks")
    if not isinstance(chunks, list):
        raise CollapseguardError(f"{state_path}: malformed chunk list; restore it or {REBUILD}")
    ids, sizes = [], []
    for entry in chunks:
        path = _check_listed(directory, entry)
        chunk_ids, chunk_sizes = read_chunk(path, entry, header["num_perm"], header["permutation"])
        ids.append(chunk_ids)
        sizes.append(chunk_sizes)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype="<U1")
    all_sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    if len(np.unique(all_ids)) != len(all_ids):
        raise CollapseguardError(f"{directory}: an item id appears in two chunks; {REBUILD}")
    if state.get("items") != len(all_ids) or state.get("shingles") != int(all_sizes.sum()):
        raise CollapseguardError(f"{state_path}: item or shingle totals disagree with its chunks; {REBUILD}")
    if not len(all_ids):
        return all_ids, all_sizes, None, None
    keys, owners = _open_index(directory, state.get("index"), int(all_sizes.sum()), len(all_ids))
    return all_ids, all_sizes, keys, owners


def _open_index(directory: Path, entry, shingles: int, items: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(entry, dict):
        raise CollapseguardError(f"{directory / STATE}: no containment index recorded; {REBUILD}")
    arrays = []
    for part, dtype in (("keys", np.uint64), ("owners", np.uint32)):
        path = _check_listed(directory, entry, part)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CollapseguardError(f"{path}: unreadable index ({exc}); {REBUILD}") from None
        if array.shape != (shingles,) or array.dtype != dtype:
            raise CollapseguardError(f"{path}: index is {array.dtype}{array.shape}, expected {np.dtype(dtype)}({shingles},); {REBUILD}")
        arrays.append(array)
    return arrays[0], arrays[1]


def open_embeddings(directory: Path, state: dict, items: int) -> np.ndarray | None:
    """The committed sentence embeddings (items, dim) float32, memory-mapped, or None without them."""
    entry = state.get("embeddings")
    if entry is None:
        return None
    path = _check_listed(directory, entry)
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CollapseguardError(f"{path}: unreadable embeddings ({exc}); {REBUILD}") from None
    if vectors.dtype != np.float32 or vectors.shape != (items, entry.get("dim")):
        raise CollapseguardError(f"{path}: embeddings are {vectors.dtype}{vectors.shape}, expected "
                                 f"float32({items}, {entry.get('dim')}); {REBUILD}")
    return vectors


def fresh_name(directory: Path, stem: str, suffix: str, taken: set[str]) -> str:
    """The first `stem-NNNNNN<suffix>` not on disk and not in `taken`."""
    number = 0
    while True:
        name = f"{stem}-{number:06d}{suffix}"
        if name not in taken and not (directory / name).exists():
            return name
        number += 1


def save_array(directory: Path, name: str, array: np.ndarray) -> str:
    """np.save under a temporary name, fsync, rename to `name` (which must be new); returns its sha256."""
    from collapseguard.io.atomic import apply_umask

    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if name.endswith(".npz"):
                np.savez(f, **array)
            else:
                np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        apply_umask(tmp)
        os.link(tmp, directory / name)  # never replaces an existing file
    finally:
        os.unlink(tmp)
    return file_sha256(directory / name)


@contextmanager
def locked(directory: Path):
    """An exclusive lock on the ledger (flock on its header) while an add runs (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no cross-process lock
        yield
        return
    fd = os.open(directory / HEADER, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _listed(state: dict) -> set[str]:
    names = {c["file"] for c in state["chunks"]}
    if state.get("index"):
        names |= {state["index"]["keys"], state["index"]["owners"]}
    if state.get("embeddings"):
        names.add(state["embeddings"]["file"])
    return names


def remove_unlisted(directory: Path, state: dict, previous: dict | None = None) -> None:
    """Delete chunk/index/embedding files neither `state` nor `previous` names (leftovers of failed
    adds, and files two commits old): a reader that opened the previous state can still load it."""
    keep = _listed(state) | (_listed(previous) if previous else set())
    for pattern in ("chunk-*.npz", "index-*.npy", "embeddings-*.npy"):
        for path in directory.glob(pattern):
            if path.name not in keep:
                try:
                    path.unlink()
                except OSError:
                    pass
