"""The generation ledger: a persistent, appendable on-disk index of known model outputs.

A ledger directory holds ``header.json`` (scheme ``minhash_v1``, permutation scheme, seed,
num_perm, ngram, LSH bands/rows and their design threshold) and ``chunk-NNNNNN.npz`` files, each
appended atomically (written to a temporary name, then hard-linked into place, so a killed run
leaves no half chunk and two writers never overwrite each other). A chunk stores, per item: its
id, its MinHash signature, and its sorted set of 64-bit shingle hashes (sha1_hash64).

Queries (per record A against every ledger item B):

- ``containment`` (default): |A ∩ B| / |B| over shingle-hash sets, exact, via an inverted index
  (all ledger hashes sorted once; a record's hashes are looked up with ``searchsorted``). A
  generation pasted inside a longer document has containment ~1 even though its Jaccard with the
  document is small, which is why banded LSH on signatures alone would miss it.
- ``jaccard``: banded LSH candidates on signatures, each verified by exact Jaccard on the sets.

Opening a ledger with other sketch settings is refused, naming every setting that differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.detectors.dedup.lsh import MinHashLSH, choose_bands, expand_ranges, jaccard_pairs
from collapseguard.detectors.dedup.minhash import (
    shingle_hashes,
    signatures_from_hashes,
    unique_per_document,
)
from collapseguard.errors import CollapseguardError, check_choice

SCHEME = "minhash_v1"
FORMAT = "collapseguard-ledger"
HEADER = "header.json"
MODES = ("containment", "jaccard")


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

    def resolved(self) -> SketchConfig:
        """The config with bands and rows filled in (recall-weighted choice when not given)."""
        if self.bands is not None and self.rows is not None:
            return self
        bands, rows = choose_bands(self.lsh_threshold, self.num_perm)
        return SketchConfig(self.num_perm, self.seed, self.ngram, self.permutation, self.lsh_threshold, bands, rows)

    def header(self) -> dict:
        return {"format": FORMAT, "version": 1, "scheme": SCHEME, **asdict(self.resolved())}


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
    hashes, offsets = shingle_hashes(list(texts), config.ngram)
    signatures = signatures_from_hashes(hashes, offsets, config.num_perm, config.seed, config.permutation)
    return Sketches(*unique_per_document(hashes, offsets), signatures)


@dataclass
class Match:
    """One ledger item found in a record."""

    record: int
    ledger_id: str
    containment: float  # |A ∩ B| / |B|, B the ledger item
    jaccard: float  # |A ∩ B| / |A ∪ B|


@dataclass
class Ledger:
    """A ledger directory opened for reading and appending."""

    path: Path
    config: SketchConfig
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    items: Sketches | None = None
    _inverted: tuple[np.ndarray, np.ndarray] | None = None
    _lsh: MinHashLSH | None = None

    @classmethod
    def create(cls, path: str | Path, config: SketchConfig | None = None) -> Ledger:
        """Open the ledger at `path`, creating it with `config` when it does not exist yet."""
        path = Path(path)
        config = (config or SketchConfig()).resolved()
        if (path / HEADER).exists():
            return cls.open(path, config)
        if path.exists() and any(path.iterdir()):
            raise CollapseguardError(f"{path}: exists, is not empty and has no {HEADER}; choose a new ledger directory")
        path.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(path / HEADER, config.header())
        return cls(path, config, items=_empty_sketches(config))

    @classmethod
    def open(cls, path: str | Path, expect: SketchConfig | dict | None = None) -> Ledger:
        """Open an existing ledger; refuse when `expect` (a config or a dict of settings) differs."""
        path = Path(path)
        if not (path / HEADER).is_file():
            what = "no such directory" if not path.exists() else f"not a ledger (no {HEADER})"
            raise CollapseguardError(f"{path}: {what}; create one with `collapseguard ledger add {path} FILE`")
        try:
            header = json.loads((path / HEADER).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CollapseguardError(f"{path / HEADER}: unreadable ledger header ({exc}); restore it or rebuild the ledger") from None
        if header.get("format") != FORMAT or header.get("scheme") != SCHEME:
            raise CollapseguardError(
                f"{path}: ledger scheme {header.get('scheme')!r} is not {SCHEME!r}; rebuild it with this version"
            )
        config = SketchConfig(**{k: header[k] for k in SketchConfig.__dataclass_fields__})
        want = asdict(expect) if isinstance(expect, SketchConfig) else dict(expect or {})
        if isinstance(expect, SketchConfig) and (expect.bands is None or expect.rows is None):
            want.pop("bands"), want.pop("rows")
        differ = settings_diff(asdict(config), want)
        if differ:
            raise CollapseguardError(f"{path}: sketch settings differ from the ledger's ({'; '.join(differ)}); use the ledger's settings or a new ledger")
        ledger = cls(path, config)
        ledger._load()
        return ledger

    def __len__(self) -> int:
        return len(self.ids)

    def _chunks(self) -> list[Path]:
        return sorted(self.path.glob("chunk-*.npz"))

    def _load(self) -> None:
        ids, hashes, sizes, sigs = [], [], [], []
        for chunk in self._chunks():
            try:
                with np.load(chunk, allow_pickle=False) as data:
                    ids.append(data["ids"])
                    hashes.append(data["set_hashes"])
                    sizes.append(np.diff(data["set_offsets"]))
                    sigs.append(data["signatures"])
            except (OSError, ValueError, KeyError) as exc:
                raise CollapseguardError(f"{chunk}: unreadable ledger chunk ({exc}); remove it and re-add its inputs") from None
        self.ids = np.concatenate(ids) if ids else np.zeros(0, dtype=str)
        if not ids:
            self.items = _empty_sketches(self.config)
            return
        offsets = np.zeros(len(self.ids) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(sizes), out=offsets[1:])
        self.items = Sketches(np.concatenate(hashes), offsets, np.concatenate(sigs))
        self._inverted = self._lsh = None

    def add(self, texts: list[str], ids: list[str]) -> int:
        """Append texts (skipping those with no shingles) as one chunk; returns how many were added."""
        if len(texts) != len(ids):
            raise CollapseguardError(f"{len(texts)} texts but {len(ids)} ids; give one id per text")
        if len(set(ids)) != len(ids):
            raise CollapseguardError("duplicate ids in one add; give each generation its own id")
        clash = set(ids) & set(self.ids.tolist())
        if clash:
            raise CollapseguardError(
                f"{self.path}: ids already in the ledger (e.g. {sorted(clash)[0]!r}); pass another --id-prefix"
            )
        new = sketch(texts, self.config)
        keep = new.sizes > 0
        if not keep.any():
            return 0
        set_hashes, set_offsets = _select_sets(new, keep)
        arrays = {
            "ids": np.asarray([i for i, k in zip(ids, keep, strict=True) if k], dtype=str),
            "signatures": new.signatures[keep],
            "set_hashes": set_hashes,
            "set_offsets": set_offsets,
        }
        _append_chunk(self.path, arrays)
        self._load()
        return int(keep.sum())

    def inverted(self) -> tuple[np.ndarray, np.ndarray]:
        """(all ledger shingle hashes sorted, the item each belongs to)."""
        if self._inverted is None:
            owner = np.repeat(np.arange(len(self)), self.items.sizes)
            order = np.argsort(self.items.set_hashes, kind="stable")
            self._inverted = (self.items.set_hashes[order], owner[order])
        return self._inverted

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
        if len(self) == 0 or len(texts) == 0:
            return []
        records = sketch(texts, self.config)
        if mode == "containment":
            rec, item, inter = self._shared_counts(records)
        else:
            rec, item = self.lsh().query(records.signatures)
            _, inter = jaccard_pairs(records.set_hashes, records.set_offsets, self.items.set_hashes, self.items.set_offsets, rec, item)
        size_a, size_b = records.sizes[rec], self.items.sizes[item]
        containment = inter / np.maximum(size_b, 1)
        jaccard = inter / np.maximum(size_a + size_b - inter, 1)
        score = containment if mode == "containment" else jaccard
        hit = (score >= threshold) & (inter > 0)
        order = np.lexsort((-score[hit], rec[hit]))
        r, i, c, j = (x[hit][order] for x in (rec, item, containment, jaccard))
        return [Match(int(a), str(self.ids[b]), float(cc), float(jj)) for a, b, cc, jj in zip(r, i, c, j, strict=True)]

    def _shared_counts(self, records: Sketches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record, item, |A ∩ B|) for every pair sharing at least one shingle hash."""
        keys, owners = self.inverted()
        lo = np.searchsorted(keys, records.set_hashes, side="left")
        hi = np.searchsorted(keys, records.set_hashes, side="right")
        which, pos = expand_ranges(lo, hi)
        record_of_hash = np.repeat(np.arange(len(records.sizes)), records.sizes)
        code = record_of_hash[which].astype(np.int64) * len(self) + owners[pos]
        code, inter = np.unique(code, return_counts=True)
        return code // len(self), code % len(self), inter

    def max_containment(self, texts: list[str]) -> np.ndarray:
        """Per text, the largest containment of any ledger item (0 if none); NaN for no shingles."""
        records = sketch(texts, self.config)
        out = np.where(records.sizes > 0, 0.0, np.nan)
        if len(self):
            rec, item, inter = self._shared_counts(records)
            np.maximum.at(out, rec, inter / np.maximum(self.items.sizes[item], 1))
        return out


def _empty_sketches(config: SketchConfig) -> Sketches:
    return Sketches(np.zeros(0, np.uint64), np.zeros(1, np.int64), np.zeros((0, config.num_perm), np.uint32))


def _select_sets(s: Sketches, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    owner = np.repeat(np.arange(len(keep)), s.sizes)
    hashes = s.set_hashes[keep[owner]]
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(s.sizes[keep], out=offsets[1:])
    return hashes, offsets


def _write_json_atomic(path: Path, obj: dict) -> None:
    from collapseguard.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _append_chunk(directory: Path, arrays: dict) -> Path:
    """Write arrays to a temp file, then hard-link it to the next free chunk name (never overwrite)."""
    fd, tmp = tempfile.mkstemp(prefix=".chunk.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        number = len(list(directory.glob("chunk-*.npz")))
        while True:
            final = directory / f"chunk-{number:06d}.npz"
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                number += 1
    finally:
        os.unlink(tmp)


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
