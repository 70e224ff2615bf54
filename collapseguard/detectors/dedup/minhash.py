"""MinHash signatures of word shingles, bit-identical to datasketch and much faster.

Shingles: the text is split on Unicode whitespace (``str.split()``) and every run of ``n``
consecutive tokens, joined by one space, is a shingle; duplicates are dropped (a set). A text
with 1..n-1 tokens has exactly one shingle (all its tokens joined by one space); an empty or
whitespace-only text has none, and its signature is datasketch's empty state (all max_hash).

Signatures: row ``i`` of ``minhash_signatures(texts)`` equals
``datasketch.MinHash(num_perm, seed, scheme=scheme).hashvalues`` after
``update(s.encode("utf-8"))`` for every shingle ``s`` of ``texts[i]`` (same dtype too).
With ``shingle_hash="xxh64"`` each shingle is hashed with XXH64 (seed 0) instead of SHA-1,
~10x cheaper; the row then equals datasketch's MinHash given
``hashfunc=lambda b: xxhash.xxh64_intdigest(b) & 0xFFFFFFFF`` (affine32, legacy) or
``hashfunc=xxhash.xxh64_intdigest`` (affine64), just as the SHA-1 default is datasketch's
``sha1_hash32`` / ``sha1_hash64``. Signatures of the two hashes are not comparable.
Schemes (datasketch 2.x, ``minhash.py``):

- ``affine32`` (datasketch >= 2.0 default): h = sha1_hash32(s); h = fmix32(h);
  phv = a*h + b mod 2^32 with odd a.
- ``affine64``: sha1_hash64, fmix64, a*h + b mod 2^64.
- ``legacy`` (datasketch < 2.0): phv = ((a*h + b) mod 2^64 mod (2^61 - 1)) & (2^32 - 1), stored
  as uint64 (the uint64 product wraps exactly as datasketch's does).

Speed: with numba (the ``dedup`` extra) the UTF-8 of a batch is tokenised, every shingle is
SHA-1 hashed and the per-document minimum taken in compiled kernels, blocks of documents in
parallel on every core numba is allowed (``NUMBA_NUM_THREADS``). Without numba, each unique
shingle of a batch is hashed once with hashlib and the permutations and per-document minimum
(``np.minimum.reduceat``) are done for many documents at once, in chunks.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from collapseguard.detectors.dedup import kernels
from collapseguard.errors import CollapseguardError, check_choice

SCHEMES = ("affine32", "affine64", "legacy")
SHINGLE_HASHES = kernels.HASHES  # ("sha1", "xxh64"): the 64-bit hash of each shingle's UTF-8
MERSENNE_PRIME = np.uint64((1 << 61) - 1)  # datasketch minhash.py `_mersenne_prime`
MAX_HASH32 = np.uint64((1 << 32) - 1)  # datasketch `_max_hash` (legacy empty value)
# MurmurHash3 finalizer constants (shift, mult, shift, mult, shift), datasketch `_FMIX_CONSTANTS`.
_FMIX = {
    32: (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16),
    64: (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
}
_DTYPES = {"affine32": np.uint32, "affine64": np.uint64, "legacy": np.uint64}
_EMPTY = {
    "affine32": np.uint32(0xFFFFFFFF),
    "affine64": np.uint64(0xFFFFFFFFFFFFFFFF),
    "legacy": MAX_HASH32,
}
CHUNK_CELLS = 1 << 22  # shingles x permutations per chunk: bounds the temporary at ~32 MB
BATCH_CHARS = 1 << 22  # characters of text per internal batch of minhash_signatures (~4 MB)
_KERNEL_LOCK = threading.Lock()  # numba's default thread pool is not safe to enter from two threads


def shingles(text: str, n: int = 5) -> list[str]:
    """Unique word n-grams of `text` (whitespace tokens joined by one space), first-seen order."""
    if n < 1:
        raise CollapseguardError(f"shingle size n={n} must be at least 1; pass --ngram 1 or more")
    tokens = text.split()
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    grams = (" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return list(dict.fromkeys(grams))


def sha1_hash64_array(items: list[str]) -> np.ndarray:
    """uint64 of the first 8 sha1 bytes (little-endian) of each UTF-8 string: datasketch sha1_hash64.

    Its low 32 bits are datasketch's sha1_hash32 (the first 4 bytes, little-endian).
    """
    sha1 = hashlib.sha1
    blob = b"".join([sha1(s.encode("utf-8")).digest()[:8] for s in items])
    return np.frombuffer(blob, dtype="<u8").astype(np.uint64, copy=False)


def xxh64_array(items: list[str]) -> np.ndarray:
    """uint64 XXH64 (seed 0) of each string's UTF-8 (the compiled kernel, or its Python twin)."""
    out = np.empty(len(items), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, s in enumerate(items):
            data = np.frombuffer(s.encode("utf-8"), dtype=np.uint8)
            out[i] = kernels.xxh64(data, 0, len(data))
    return out


def permutations(num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) permutation parameters datasketch draws from np.random.RandomState(seed)."""
    check_choice("minhash scheme", scheme, SCHEMES)
    if num_perm < 1:
        raise CollapseguardError(f"num_perm={num_perm} must be positive; pass --num-perm 128")
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = [
            (gen.randint(1, MERSENNE_PRIME, dtype=np.uint64), gen.randint(0, MERSENNE_PRIME, dtype=np.uint64))
            for _ in range(num_perm)
        ]
        ab = np.array(pairs, dtype=np.uint64).T
        return ab[0].copy(), ab[1].copy()
    width = 32 if scheme == "affine32" else 64
    dtype = _DTYPES[scheme]
    a = gen.randint(0, 1 << (width - 1), num_perm, dtype=dtype) * dtype(2) + dtype(1)
    b = gen.randint(0, 1 << width, num_perm, dtype=dtype)
    return a, b


def fmix(h: np.ndarray, width: int) -> np.ndarray:
    """MurmurHash3 finalizer on unsigned ints of `width` bits (wrapping arithmetic)."""
    dtype = np.uint32 if width == 32 else np.uint64
    s1, m1, s2, m2, s3 = (dtype(c) for c in _FMIX[width])
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def scheme_input(hash64: np.ndarray, scheme: str) -> np.ndarray:
    """The per-shingle value the permutations act on (sha1 hash of the right width, pre-mixed)."""
    if scheme == "affine32":
        return fmix((hash64 & np.uint64(0xFFFFFFFF)).astype(np.uint32), 32)
    if scheme == "affine64":
        return fmix(hash64, 64)
    return hash64 & np.uint64(0xFFFFFFFF)


def permute(h: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str) -> np.ndarray:
    """Permuted hash values (num_perm, len(h)) for pre-mixed inputs `h`."""
    with np.errstate(over="ignore"):
        phv = np.multiply.outer(a, h)  # (num_perm, len(h))
        phv += b[:, None]
    if scheme == "legacy":
        phv %= MERSENNE_PRIME
        phv &= MAX_HASH32
    return phv


def signatures_from_hashes(
    hashes: np.ndarray, offsets: np.ndarray, num_perm: int = 128, seed: int = 1, scheme: str = "affine32"
) -> np.ndarray:
    """Signatures of documents whose sha1_hash64 shingle hashes are `hashes[offsets[i]:offsets[i+1]]`.

    hashes: (total,) uint64; offsets: (n_docs + 1,) int64, non-decreasing, offsets[0] == 0.
    Duplicate hashes within a document do not change its signature.
    """
    check_choice("minhash scheme", scheme, SCHEMES)
    a, b = permutations(num_perm, seed, scheme)
    h = scheme_input(np.asarray(hashes, dtype=np.uint64), scheme)
    offsets = np.asarray(offsets, dtype=np.int64)
    if kernels.AVAILABLE:
        return _signatures_compiled(h, offsets, a, b, scheme)
    return _signatures_numpy(h, offsets, a, b, scheme)


def _signatures_compiled(h, offsets, a, b, scheme) -> np.ndarray:
    blocks = kernels.doc_blocks(np.diff(offsets) + 1, 4 * kernels.num_threads())
    if scheme == "affine32":
        out32 = np.full((len(offsets) - 1, len(a)), _EMPTY[scheme], dtype=np.uint32)
        with _KERNEL_LOCK:
            kernels.run(kernels.min_affine32_blocks, len(h), h, offsets, a, b, out32, blocks)
        return out32
    out = np.full((len(offsets) - 1, len(a)), _EMPTY[scheme], dtype=np.uint64)
    h64, a64, b64 = (x.astype(np.uint64) for x in (h, a, b))
    with _KERNEL_LOCK:
        if scheme == "legacy":
            kernels.run(kernels.min_legacy_blocks, len(h), h64, offsets, a64, b64, out, MERSENNE_PRIME, MAX_HASH32, blocks)
        else:
            kernels.run(kernels.min_affine_blocks, len(h), h64, offsets, a64, b64, out, np.uint64(0xFFFFFFFFFFFFFFFF), blocks)
    return out.astype(_DTYPES[scheme], copy=False)


def _signatures_numpy(h, offsets, a, b, scheme) -> np.ndarray:
    """Chunks of documents: permutations (num_perm, shingles), then np.minimum.reduceat per doc."""
    n_docs, num_perm = len(offsets) - 1, len(a)
    out = np.full((n_docs, num_perm), _EMPTY[scheme], dtype=_DTYPES[scheme])
    sizes = np.diff(offsets)
    cells = max(1, CHUNK_CELLS // num_perm)
    start = 0
    while start < n_docs:
        stop = int(np.searchsorted(offsets, offsets[start] + cells, side="right")) - 1
        stop = min(max(stop, start + 1), n_docs)
        docs = np.arange(start, stop)[sizes[start:stop] > 0]
        if len(docs):
            lo, hi = offsets[start], offsets[stop]
            phv = permute(h[lo:hi], a, b, scheme)  # (num_perm, shingles)
            out[docs] = np.minimum.reduceat(phv, offsets[docs] - lo, axis=1).T
        start = stop
    return out


def _utf8_buffer(texts, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One UTF-8 buffer of the texts as they are, and each text's byte offsets in it."""
    docs = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise CollapseguardError(f"record {first + i}: expected text, got {type(text).__name__}; pass strings")
        try:
            docs.append(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise CollapseguardError(f"record {first + i}: not encodable as UTF-8 ({exc.reason}); clean the text") from None
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    return np.frombuffer(b"".join(docs), dtype=np.uint8), offsets


def _compiled_shingle_hashes(texts, ngram: int, first: int = 0, shingle_hash: str = "sha1") -> tuple[np.ndarray, np.ndarray]:
    buf, doc_offsets = _utf8_buffer(texts, first)
    algo = SHINGLE_HASHES.index(shingle_hash)
    room = np.zeros(len(doc_offsets), dtype=np.int64)
    np.cumsum(kernels.shingle_bound(np.diff(doc_offsets), ngram), out=room[1:])
    with _KERNEL_LOCK:
        blocks = kernels.doc_blocks(np.diff(doc_offsets) + 1, 4 * kernels.num_threads())
        spaced, counts = kernels.run(kernels.shingle_hashes_raw, len(buf), buf, doc_offsets, ngram, room, blocks, algo)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        hashes = kernels.run(kernels.compact, len(spaced), spaced, room, counts, offsets)
    return hashes.view(np.uint64), offsets


def shingle_hashes(texts: list[str], ngram: int = 5, shingle_hash: str = "sha1") -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes (sha1_hash64, or xxh64) of every document's shingles, flattened: (hashes, offsets).

    Compiled path: the texts' UTF-8 is tokenised on Unicode whitespace inside the kernel and
    every shingle occurrence (duplicates kept) is assembled and hashed there, blocks of
    documents in parallel. Fallback: each distinct shingle string hashed once with hashlib.
    """
    check_choice("shingle hash", shingle_hash, SHINGLE_HASHES)
    if ngram < 1:
        raise CollapseguardError(f"shingle size n={ngram} must be at least 1; pass --ngram 1 or more")
    if kernels.AVAILABLE:
        return _compiled_shingle_hashes(texts, ngram, 0, shingle_hash)
    table: dict[str, int] = {}
    ids: list[int] = []
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise CollapseguardError(f"record {i}: expected text, got {type(text).__name__}; pass strings")
        setdefault = table.setdefault
        ids.extend([setdefault(g, len(table)) for g in shingles(text, ngram)])
        offsets[i + 1] = len(ids)
    unique_hashes = (sha1_hash64_array if shingle_hash == "sha1" else xxh64_array)(list(table))
    return unique_hashes[np.asarray(ids, dtype=np.int64)], offsets


def unique_per_document(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each document's hashes sorted and de-duplicated (a set), same flat layout."""
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    order = np.lexsort((hashes, doc))
    h, d = hashes[order], doc[order]
    keep = np.ones(len(h), dtype=bool)
    keep[1:] = (h[1:] != h[:-1]) | (d[1:] != d[:-1])
    counts = np.bincount(d[keep], minlength=len(offsets) - 1)
    new_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    return h[keep], new_offsets


def shingle_hash_sets(texts: list[str], ngram: int = 5, shingle_hash: str = "sha1") -> tuple[np.ndarray, np.ndarray]:
    """Each text's set of 64-bit shingle hashes (sorted), flattened: (hashes, offsets)."""
    return unique_per_document(*shingle_hashes(texts, ngram, shingle_hash))


def text_batches(texts, batch_chars: int):
    """(start, stop) slices of `texts` holding about `batch_chars` characters each (at least one text)."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text) if isinstance(text, str) else 0
        if size >= batch_chars:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(texts):
        yield start, len(texts)


def minhash_signatures(
    texts: list[str], num_perm: int = 128, seed: int = 1, ngram: int = 5, scheme: str = "affine32",
    batch_chars: int = BATCH_CHARS, shingle_hash: str = "sha1",
) -> np.ndarray:
    """MinHash signatures (len(texts), num_perm) equal to datasketch's, row by row.

    dtype is datasketch's for the scheme: uint32 for affine32, uint64 for affine64 and legacy.
    Texts are processed in batches of about `batch_chars` characters, so the working memory
    beyond the output is bounded by the batch (and the longest single text), not the input.
    `shingle_hash` "xxh64" is ~2-3x faster from texts, with other signatures (module docstring).
    """
    check_choice("minhash scheme", scheme, SCHEMES)
    check_choice("shingle hash", shingle_hash, SHINGLE_HASHES)
    if ngram < 1:
        raise CollapseguardError(f"shingle size n={ngram} must be at least 1; pass --ngram 1 or more")
    texts = texts if isinstance(texts, list) else list(texts)
    out = np.full((len(texts), num_perm), _EMPTY[scheme], dtype=_DTYPES[scheme])
    for start, stop in text_batches(texts, batch_chars):
        if kernels.AVAILABLE:
            hashes, offsets = _compiled_shingle_hashes(texts[start:stop], ngram, start, shingle_hash)
        else:
            hashes, offsets = shingle_hashes(texts[start:stop], ngram, shingle_hash)
        out[start:stop] = signatures_from_hashes(hashes, offsets, num_perm, seed, scheme)
    return out
