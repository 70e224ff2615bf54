"""The generation ledger: a persistent, appendable on-disk index of known model outputs.

A ledger directory holds ``header.json`` (scheme ``minhash_v1``, permutation scheme, seed,
num_perm, ngram, shingle hash, LSH bands/rows, their design threshold and the fingerprint of all
of these), ``chunk-NNNNNN.npz`` files (per item: its id, its MinHash signature and its sorted set
of 64-bit shingle hashes: sha1_hash64, or xxh64 when the ledger was made with it; a header
without the setting is sha1, as every ledger before it), the persisted containment index, and ``state.json``, whose atomic
replacement commits an add. The layout and the checks made on open are in ``store``.

Queries (per record A against every ledger item B):

- ``containment`` (default): |A ∩ B| / |B| over shingle-hash sets, exact, via the inverted index
  (all ledger hashes sorted at add time and stored; a record's hashes are looked up with
  ``searchsorted`` in the memory-mapped arrays). A
  generation pasted inside a longer document has containment ~1 even though its Jaccard with the
  document is small, which is why banded LSH on signatures alone would miss it.
- ``jaccard``: banded LSH candidates on signatures, each verified by exact Jaccard on the sets.

Opening a ledger with other sketch settings is refused, naming every setting that differs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.detectors.dedup import store
from collapseguard.detectors.dedup.lsh import MinHashLSH, choose_bands, expand_ranges, jaccard_pairs
from collapseguard.detectors.dedup.minhash import (
    SHINGLE_HASHES,
    shingle_hashes,
    signatures_from_hashes,
    unique_per_document,
)
from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.atomic import apply_umask

SCHEME = "minhash_v1"
FORMAT = "collapseguard-ledger"
HEADER = store.HEADER
MODES = ("containment", "jaccard", "paraphrase")
MAX_NUM_PERM = 4096


@dataclass(frozen=True)
class SketchConfig:
    """The settings a ledger is built with; all of them must match to query it."""

    num_perm: int = 128
    seed: int = 1
    ngram: int = 5
    permutation: str = "affine32"  # datasketch scheme the signatures equal
    lsh_threshold: float = 0.8  # bands/rows are chosen for recall at this Jaccard
    bands: int | None = None
    rows: int | None = None
    shingle_hash: str = "sha1"  # sha1 (datasketch's default hashfunc) or xxh64; never mixed in one ledger

    def __post_init__(self):
        check_choice("shingle hash", self.shingle_hash, SHINGLE_HASHES)
        for name, low, high, why in (("num_perm", 1, MAX_NUM_PERM, "each permutation costs 4 bytes per text; default 128"),
                                     ("seed", 0, 2**32 - 1, "a permutation seed; default 1"),
                                     ("ngram", 1, 64, "words per shingle; default 5")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise CollapseguardError(f"{name} {value!r}: must be a whole number from {low} to {high} ({why}); "
                                         f"pass e.g. --{name.replace('_', '-')} {getattr(SketchConfig, name)}")

    def resolved(self) -> SketchConfig:
        """The config with bands and rows filled in (recall-weighted choice when not given)."""
        if self.bands is not None and self.rows is not None:
            return self
        bands, rows = choose_bands(self.lsh_threshold, self.num_perm)
        return replace(self, bands=bands, rows=rows)

    def header(self) -> dict:
        return {"format": FORMAT, "version": store.VERSION, "scheme": SCHEME, **asdict(self.resolved())}


def settings_diff(have: dict, want: dict) -> list[str]:
    """'name: ledger X, requested Y' for every setting that differs (None in `want` = any)."""
    return [
        f"{key}: ledger {have.get(key)!r}, requested {value!r}"
        for key, value in want.items()
        if value is not None and have.get(key) != value
    ]


@dataclass
class Sketches:
    """Shingle-hash sets and signatures of a batch of texts."""

    set_hashes: np.ndarray  # (total,) uint64, sorted within each text
    set_offsets: np.ndarray  # (n + 1,) int64
    signatures: np.ndarray  # (n, num_perm)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.set_offsets)


def sketch(texts: list[str], config: SketchConfig) -> Sketches:
    """Signatures and exact shingle-hash sets of `texts` under `config`."""
    hashes, offsets = shingle_hashes(list(texts), config.ngram, config.shingle_hash)
    signatures = signatures_from_hashes(hashes, offsets, config.num_perm, config.seed, config.permutation)
    return Sketches(*unique_per_document(hashes, offsets), signatures)


@dataclass
class Match:
    """One ledger item found in a record."""

    record: int
    ledger_id: str
    containment: float  # |A ∩ B| / |B|, B the ledger item (NaN in paraphrase mode)
    jaccard: float  # |A ∩ B| / |A ∪ B| (NaN in paraphrase mode)
    cosine: float = float("nan")  # embedding cosine similarity (paraphrase mode only)


class Ledger:
    """A ledger directory opened for reading and appending (checked on open; see ``store``).

    Containment queries read the persisted inverted index (memory-mapped); signatures and
    per-item shingle sets (``items``) are loaded only when jaccard mode or a caller needs them.
    """

    def __init__(self, path: Path, config: SketchConfig, header: dict, state: dict):
        self.path, self.config, self._header = Path(path), config, header
        self._set_state(state)

    def _set_state(self, state: dict) -> None:
        self._state = state
        self.ids, self.sizes, self._keys, self._owners = store.verify(self.path, self._header, state)
        self.embeddings = store.open_embeddings(self.path, state, len(self.ids))
        self._embedder = self._faiss = None
        self._items: Sketches | None = None
        self._lsh: MinHashLSH | None = None

    @classmethod
    def create(cls, path: str | Path, config: SketchConfig | None = None) -> Ledger:
        """Open the ledger at `path`, creating it with `config` when it does not exist yet.

        The new folder (header and empty state) is assembled under a temporary name beside it
        and renamed into place, so a failure leaves no half-made ledger.
        """
        path = Path(path)
        config = (config or SketchConfig()).resolved()
        if (path / HEADER).exists():
            return cls.open(path, config)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CollapseguardError(f"{path}: exists, is not an empty folder and has no {HEADER}; choose a new ledger directory")
        header = config.header()
        header["fingerprint"] = store.settings_fingerprint(header)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            store.write_json_atomic(tmp / HEADER, header)
            store.write_json_atomic(tmp / store.STATE, store.empty_state(header["fingerprint"]))
            apply_umask(tmp, directory=True)
            if path.is_dir():
                path.rmdir()  # empty (checked above)
            os.rename(tmp, path)
        except OSError as exc:
            raise CollapseguardError(f"{path}: cannot create the ledger ({exc.strerror}); choose another directory") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(path, config)

    @classmethod
    def open(cls, path: str | Path, expect: SketchConfig | dict | None = None) -> Ledger:
        """Open and check an existing ledger; refuse when `expect` (a config or a dict of settings) differs."""
        path = Path(path)
        if not (path / HEADER).is_file():
            what = "no such directory" if not path.exists() else f"not a ledger (no {HEADER})"
            raise CollapseguardError(f"{path}: {what}; create one with `collapseguard ledger add {path} FILE`")
        header = store.read_json(path / HEADER, "header")
        if header.get("format") != FORMAT or header.get("scheme") != SCHEME:
            raise CollapseguardError(
                f"{path / HEADER}: format {header.get('format')!r} and scheme {header.get('scheme')!r}, expected "
                f"{FORMAT!r} and {SCHEME!r}; restore the header or rebuild the ledger with this version"
            )
        store.check_header(path / HEADER, header)
        settings = {"shingle_hash": "sha1", **header}  # headers from before the setting are sha1
        config = SketchConfig(**{k: settings[k] for k in SketchConfig.__dataclass_fields__})
        want = asdict(expect) if isinstance(expect, SketchConfig) else dict(expect or {})
        if isinstance(expect, SketchConfig) and (expect.bands is None or expect.rows is None):
            want.pop("bands"), want.pop("rows")
        differ = settings_diff(asdict(config), want)
        if differ:
            raise CollapseguardError(f"{path}: sketch settings differ from the ledger's ({'; '.join(differ)}); use the ledger's settings or a new ledger")
        return cls(path, config, header, store.read_json(path / store.STATE, "state"))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def items(self) -> Sketches:
        """Every item's signature and shingle-hash set (read from the chunks on first use)."""
        if self._items is None:
            parts = [store.load_chunk_arrays(self.path / c["file"]) for c in self._state["chunks"]]
            if not parts:
                self._items = _empty_sketches(self.config)
            else:
                offsets = np.zeros(len(self) + 1, dtype=np.int64)
                np.cumsum(self.sizes, out=offsets[1:])
                self._items = Sketches(np.concatenate([p["set_hashes"] for p in parts]), offsets,
                                       np.concatenate([p["signatures"] for p in parts]))
        return self._items

    def add(self, texts: list[str], ids: list[str], embedder=None) -> int:
        """Append texts (skipping those with no shingles) in one commit; returns how many were added."""
        with self.transaction(embedder) as tx:
            return tx.add(texts, ids)

    def embedder(self, model_dir=None):
        """The sentence embedder of this ledger's embeddings (the recorded model, or `model_dir`), loaded once."""
        from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

        if self._embedder is not None and model_dir is None:
            return self._embedder
        entry = self._state.get("embeddings")
        if entry is None:
            raise CollapseguardError(f"{self.path}: has no embeddings; create the ledger with `ledger add --embeddings`")
        embedder = SentenceEmbedder(model_dir or entry["model_dir"])
        if embedder.dim != entry["dim"] or embedder.path.name != entry["model"]:
            raise CollapseguardError(f"{self.path}: embeddings were made with {entry['model']!r} (dim {entry['dim']}), "
                                     f"not {embedder.path.name!r} (dim {embedder.dim}); pass that model")
        self._embedder = embedder
        return embedder

    @contextmanager
    def transaction(self, embedder=None) -> Iterator[_Transaction]:
        """All-or-nothing appends: `tx.add(...)` any number of times; committed when the block ends.

        An exception inside the block discards every chunk it wrote: the ledger stays as it was.
        `embedder` (a SentenceEmbedder) also stores each item's embedding; a ledger with
        embeddings embeds every later add with its recorded model.
        """
        with store.locked(self.path):
            if store.read_json(self.path / store.STATE, "state") != self._state:
                raise CollapseguardError(f"{self.path}: changed by another writer since it was opened; run the command again")
            if embedder is not None and self.embeddings is None and len(self):
                raise CollapseguardError(f"{self.path}: its {len(self)} items have no embeddings (they are enabled at the "
                                         "first add); build a new ledger with --embeddings")
            if embedder is None and self.embeddings is not None:
                embedder = self.embedder()
            tx = _Transaction(self, embedder)
            try:
                yield tx
                tx.commit()
            except BaseException:
                tx.discard()
                raise

    def lsh(self) -> MinHashLSH:
        if self._lsh is None:
            c = self.config
            self._lsh = MinHashLSH(c.lsh_threshold, c.num_perm, c.bands, c.rows)
            self._lsh.insert(self.items.signatures)
        return self._lsh

    def query(self, texts: list[str], threshold: float = 0.8, mode: str = "containment") -> list[Match]:
        """Ledger items each text contains (or near-duplicates, mode='jaccard') at >= threshold."""
        check_choice("query mode", mode, MODES)
        if not 0.0 < threshold <= 1.0:
            raise CollapseguardError(f"threshold {threshold} must be in (0, 1]; pass e.g. --threshold 0.8")
        if mode == "paraphrase":
            return self.paraphrases(texts, threshold)
        if len(self) == 0 or len(texts) == 0:
            return []
        if mode == "containment":
            sizes, rec, item, inter = self._containment_counts(texts)
            size_a = sizes[rec]
        else:
            records = sketch(texts, self.config)
            rec, item = self.lsh().query(records.signatures)
            _, inter = jaccard_pairs(records.set_hashes, records.set_offsets, self.items.set_hashes, self.items.set_offsets, rec, item)
            size_a = records.sizes[rec]
        size_b = self.sizes[item]
        containment = inter / np.maximum(size_b, 1)
        jaccard = inter / np.maximum(size_a + size_b - inter, 1)
        score = containment if mode == "containment" else jaccard
        hit = (score >= threshold) & (inter > 0)
        order = np.lexsort((-score[hit], rec[hit]))
        r, i, c, j = (x[hit][order] for x in (rec, item, containment, jaccard))
        return [Match(int(a), str(self.ids[b]), float(cc), float(jj)) for a, b, cc, jj in zip(r, i, c, j, strict=True)]

    def paraphrases(self, texts: list[str], threshold: float = 0.8, embedder=None) -> list[Match]:
        """Ledger items whose embedding has cosine >= threshold with the text's (exact faiss range search)."""
        embedder = embedder or self.embedder()
        if len(self) == 0 or len(texts) == 0:
            return []
        if self._faiss is None:
            import faiss

            self._faiss = faiss.IndexFlatIP(self.embeddings.shape[1])
            self._faiss.add(np.ascontiguousarray(self.embeddings))
        lims, scores, items = self._faiss.range_search(embedder.encode(list(texts)), threshold - 1e-6)
        out = []
        for r in range(len(texts)):
            found = sorted(zip(scores[lims[r] : lims[r + 1]], items[lims[r] : lims[r + 1]], strict=True), key=lambda x: -x[0])
            out += [Match(r, str(self.ids[i]), float("nan"), float("nan"), float(c)) for c, i in found if c >= threshold]
        return out

    def _containment_counts(self, texts: list[str]) -> tuple[np.ndarray, ...]:
        """(shingles per text, record, item, |A ∩ B|) for every (text, ledger item) pair sharing a shingle.

        The batch's shingle hashes are sorted once (stable, so a text's duplicates sit together
        and are dropped), then looked up in the persisted index as sorted needles.
        """
        hashes, offsets = shingle_hashes(list(texts), self.config.ngram, self.config.shingle_hash)
        n = len(offsets) - 1
        doc = np.repeat(np.arange(n), np.diff(offsets))
        order = np.argsort(hashes, kind="stable")
        h, d = hashes[order], doc[order]
        keep = np.ones(len(h), dtype=bool)
        keep[1:] = (h[1:] != h[:-1]) | (d[1:] != d[:-1])
        h, d = h[keep], d[keep]
        sizes = np.bincount(d, minlength=n)
        if len(self) == 0 or len(h) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return sizes, empty, empty, empty
        keys, owners = self._keys, self._owners
        lo = np.searchsorted(keys, h, side="left")
        found = lo < len(keys)
        found[found] = keys[lo[found]] == h[found]
        where = np.flatnonzero(found)
        hi = np.searchsorted(keys, h[where], side="right")
        which, pos = expand_ranges(lo[where], hi)
        code = d[where[which]].astype(np.int64) * len(self) + owners[pos]
        code, inter = np.unique(code, return_counts=True)
        return sizes, code // len(self), code % len(self), inter

    def max_containment(self, texts: list[str]) -> np.ndarray:
        """Per text, the largest containment of any ledger item (0 if none); NaN for no shingles."""
        sizes, rec, item, inter = self._containment_counts(texts)
        out = np.where(sizes > 0, 0.0, np.nan)
        np.maximum.at(out, rec, inter / np.maximum(self.sizes[item], 1))
        return out


class _Transaction:
    """Chunks written by one add, invisible until ``commit`` replaces state.json."""

    def __init__(self, ledger: Ledger, embedder=None):
        self.ledger, self.embedder = ledger, embedder
        self.vectors: list[np.ndarray] = []
        self.entries: list[dict] = []
        self.pending_ids: set[str] = set()
        self.new_hashes: list[np.ndarray] = []
        self.new_sizes: list[np.ndarray] = []
        self.added = 0

    def add(self, texts: list[str], ids: list[str]) -> int:
        """Sketch texts and write them as one (not yet committed) chunk; returns how many had shingles."""
        ledger = self.ledger
        if len(texts) != len(ids):
            raise CollapseguardError(f"{len(texts)} texts but {len(ids)} ids; give one id per text")
        if len(set(ids)) != len(ids):
            raise CollapseguardError("duplicate ids in one add; give each generation its own id")
        clash = set(ids) & (self.pending_ids | set(ledger.ids.tolist()))
        if clash:
            raise CollapseguardError(
                f"{ledger.path}: ids already in the ledger (e.g. {sorted(clash)[0]!r}); pass another --id-prefix"
            )
        new = sketch(texts, ledger.config)
        keep = new.sizes > 0
        if not keep.any():
            return 0
        set_hashes, set_offsets = _select_sets(new, keep)
        kept_ids = [i for i, k in zip(ids, keep, strict=True) if k]
        arrays = {
            "ids": np.asarray(kept_ids, dtype=str),
            "signatures": new.signatures[keep],
            "set_hashes": set_hashes,
            "set_offsets": set_offsets,
        }
        name = store.fresh_name(ledger.path, "chunk", ".npz", {e["file"] for e in self.entries})
        self.entries.append({"file": name, "items": len(kept_ids), "shingles": len(set_hashes), "sha256": None})
        self.entries[-1]["sha256"] = store.save_array(ledger.path, name, arrays)
        if self.embedder is not None:
            self.vectors.append(self.embedder.encode([t for t, k in zip(texts, keep, strict=True) if k]))
        self.pending_ids.update(kept_ids)
        self.new_hashes.append(set_hashes)
        self.new_sizes.append(np.diff(set_offsets))
        self.added += len(kept_ids)
        return len(kept_ids)

    def commit(self) -> None:
        """Write the merged index under new names, then replace state.json (the commit point)."""
        ledger = self.ledger
        if not self.entries:
            return
        old = ledger._state
        new_sizes = np.concatenate(self.new_sizes)
        owners = np.repeat(np.arange(len(ledger), len(ledger) + len(new_sizes), dtype=np.uint32), new_sizes)
        keys, owners = merge_index(ledger._keys, ledger._owners, np.concatenate(self.new_hashes), owners)
        taken = {e["file"] for e in self.entries}
        stem = store.fresh_name(ledger.path, "index", ".keys.npy", taken).removesuffix(".keys.npy")
        while (ledger.path / f"{stem}.owners.npy").exists():
            taken.add(f"{stem}.keys.npy")
            stem = store.fresh_name(ledger.path, "index", ".keys.npy", taken).removesuffix(".keys.npy")
        index = {"keys": f"{stem}.keys.npy", "owners": f"{stem}.owners.npy"}
        self.entries.append({"file": index["keys"]})  # cleaned up by discard() on failure
        index["keys_sha256"] = store.save_array(ledger.path, index["keys"], keys)
        self.entries.append({"file": index["owners"]})
        index["owners_sha256"] = store.save_array(ledger.path, index["owners"], owners)
        chunks = old["chunks"] + [e for e in self.entries if "items" in e]
        state = {"fingerprint": old["fingerprint"], "items": len(ledger) + int(len(new_sizes)),
                 "shingles": int(old["shingles"]) + int(new_sizes.sum()), "chunks": chunks, "index": index}
        if self.embedder is not None:
            state["embeddings"] = self._write_embeddings(taken | {index["keys"], index["owners"]})
        store.write_json_atomic(ledger.path / store.STATE, state)
        self.entries = []
        store.remove_unlisted(ledger.path, state, old)
        ledger._set_state(state)

    def _write_embeddings(self, taken: set[str]) -> dict:
        """All items' embeddings (the committed ones, then this add's) under a fresh name."""
        ledger = self.ledger
        old = ledger.embeddings if ledger.embeddings is not None else np.zeros((0, self.embedder.dim), np.float32)
        vectors = np.concatenate([np.asarray(old), *self.vectors]).astype(np.float32, copy=False)
        name = store.fresh_name(ledger.path, "embeddings", ".npy", taken)
        self.entries.append({"file": name})
        sha = store.save_array(ledger.path, name, vectors)
        return {"file": name, "sha256": sha, "dim": int(vectors.shape[1]), "model": self.embedder.path.name,
                "model_dir": str(self.embedder.path)}

    def discard(self) -> None:
        for entry in self.entries:
            try:
                (self.ledger.path / entry["file"]).unlink()
            except OSError:
                pass
        self.entries = []


def merge_index(keys, owners, new_keys, new_owners) -> tuple[np.ndarray, np.ndarray]:
    """Merge new (hash, owner) pairs into a sorted index: new pairs sorted, then placed by searchsorted."""
    order = np.argsort(new_keys, kind="stable")
    new_keys, new_owners = new_keys[order], new_owners[order]
    if keys is None:
        return new_keys, new_owners
    pos = np.searchsorted(keys, new_keys, side="right") + np.arange(len(new_keys))
    out_keys = np.empty(len(keys) + len(new_keys), dtype=np.uint64)
    out_owners = np.empty(len(out_keys), dtype=np.uint32)
    old = np.ones(len(out_keys), dtype=bool)
    old[pos] = False
    out_keys[pos], out_owners[pos] = new_keys, new_owners
    out_keys[old], out_owners[old] = keys, owners
    return out_keys, out_owners


def _empty_sketches(config: SketchConfig) -> Sketches:
    return Sketches(np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros((0, config.num_perm), np.uint32))


def _select_sets(s: Sketches, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    owner = np.repeat(np.arange(len(keep)), s.sizes)
    hashes = s.set_hashes[keep[owner]]
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(s.sizes[keep], out=offsets[1:])
    return hashes, offsets


@dataclass
class MinHashConfig:
    """Score a text by how much of a known generation it contains.

    The sketch settings default to the ledger's own; given, they must equal them (a calibration
    made with one ledger configuration is then refused by another, through the fingerprint).
    """

    ledger_dir: str = "ledger"
    num_perm: int | None = None
    seed: int | None = None
    ngram: int | None = None


class MinHashDetector(Detector):
    """``minhash_v1``: max containment of any ledger item in the text (NaN when it has no shingles)."""

    name: ClassVar[str] = SCHEME

    def __init__(self, config: MinHashConfig | None = None):
        config = config or MinHashConfig()
        want = {"num_perm": config.num_perm, "seed": config.seed, "ngram": config.ngram}
        self.ledger = Ledger.open(config.ledger_dir, want)
        c = self.ledger.config
        self.config = MinHashConfig(str(config.ledger_dir), c.num_perm, c.seed, c.ngram)

    @classmethod
    def from_options(cls, ledger_dir=None, model_dir=None, **options) -> MinHashDetector:
        """Build from CLI options: the ledger is `ledger_dir` (or `--model LEDGER_DIR`)."""
        valid = {"num_perm", "seed", "ngram"}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise CollapseguardError(f"minhash_v1: unknown option(s) {', '.join(unknown)}; valid: ledger_dir, {', '.join(sorted(valid))}")
        path = ledger_dir or model_dir
        if path is None:
            raise CollapseguardError("minhash_v1 needs a ledger: pass --model LEDGER_DIR (made by `collapseguard ledger add`)")
        return cls(MinHashConfig(str(path), **{k: int(v) for k, v in options.items()}))

    def score(self, texts: list[str]) -> np.ndarray:
        return self.ledger.max_containment(list(texts))
