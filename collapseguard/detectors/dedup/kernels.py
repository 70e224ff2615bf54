"""Compiled (numba) hot paths for MinHash: SHA-1 of every shingle and the per-document minimum.

Input is one UTF-8 buffer of the documents as they are. The kernels split it on Unicode
whitespace (exactly ``str.split()``'s set) and hash each shingle ``" ".join(tokens[i:i+n])``:
when its tokens are separated by single spaces it is one byte range of the buffer, otherwise it
is assembled in a scratch block. No per-token or per-shingle Python object is ever built, and
blocks of documents run in parallel (``prange``). Two shingle hashes (``HASHES``): SHA-1
(FIPS 180-4), keeping datasketch's ``sha1_hash64`` (first 8 digest bytes, little-endian), whose
low 32 bits are ``sha1_hash32``; and XXH64 (seed 0, the xxHash specification), ~10x cheaper. When numba is not installed, ``AVAILABLE`` is False and callers use the
hashlib/numpy path in ``minhash.py`` (same results, slower).
"""

from __future__ import annotations

import types

import numpy as np

try:
    import numba
except ImportError:  # optional extra `dedup`
    numba = None

AVAILABLE = numba is not None
_M32 = 0xFFFFFFFF
prange = numba.prange if AVAILABLE else range
PARALLEL_MIN_WORK = 200_000  # bytes or shingles below which a serial loop is faster
# LSH band keys and probes: short, memory-bound loops. Two threads were slower than one up to
# ~1M probes on a shared 2-core machine (0.18 vs 0.12 s for 55k queries x 16 bands) and even at
# 3.5M (0.67 vs 0.61 s), so queries stay on one thread below this many (query, band) probes.
LSH_PARALLEL_MIN_WORK = 4_000_000


def _jit(fn):
    return numba.njit(cache=True, nogil=True)(fn) if AVAILABLE else fn


def _inline(fn):
    return numba.njit(cache=True, nogil=True, inline="always")(fn) if AVAILABLE else fn


def _pjit(fn):
    """Compiled twice: with numba's parallel loops (``prange`` over blocks of documents) and as a
    plain serial loop (``fn.serial``, its own cache entry), which `run` picks for small inputs."""
    if not AVAILABLE:
        fn.serial = fn
        return fn
    parallel = numba.njit(cache=True, nogil=True, parallel=True)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    parallel.serial = numba.njit(cache=True, nogil=True)(twin)
    return parallel


def run(kernel, work: int, *args, min_work: int | None = None):
    """Call the parallel kernel for `work` >= `min_work` (default PARALLEL_MIN_WORK) units, else its
    serial twin: waking a thread team costs more than small inputs gain (much more on a busy
    machine). At one thread the parallel build is still used for large inputs: the shingle-hash
    kernel measured ~2x faster in that build than in its serial twin (0.14 vs 0.28 s, 8 MB)."""
    if work < (PARALLEL_MIN_WORK if min_work is None else min_work):
        return kernel.serial(*args)
    return kernel(*args)


def num_threads() -> int:
    """Threads the parallel kernels use (numba's setting: NUMBA_NUM_THREADS or set_num_threads)."""
    return numba.get_num_threads() if AVAILABLE else 1


@_inline
def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & _M32


@_inline
def _bswap32(x):
    return ((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | (x >> 24)


@_jit
def sha1_hash64_block(block, length, w):
    """datasketch sha1_hash64 of block[:length]; pads in place (block holds >= length + 72 bytes).

    `w` is an int64 scratch of 80 words. All arithmetic is on int64 holding 32-bit values
    (masked), which numba compiles tightly.
    """
    total = ((length + 8) // 64 + 1) * 64
    block[length] = 0x80
    block[length + 1 : total - 8] = 0
    bits = length * 8
    for j in range(8):
        block[total - 1 - j] = (bits >> (8 * j)) & 0xFF
    h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    for base in range(0, total, 64):
        for t in range(16):
            p = base + 4 * t
            w[t] = (np.int64(block[p]) << 24) | (np.int64(block[p + 1]) << 16) | (np.int64(block[p + 2]) << 8) | np.int64(block[p + 3])
        for t in range(16, 80):
            w[t] = _rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1)
        a, b, c, d, e = h0, h1, h2, h3, h4
        for t in range(20):
            tmp = (_rotl(a, 5) + ((b & c) | ((b ^ _M32) & d)) + e + 0x5A827999 + w[t]) & _M32
            e, d, c, b, a = d, c, _rotl(b, 30), a, tmp
        for t in range(20, 40):
            tmp = (_rotl(a, 5) + (b ^ c ^ d) + e + 0x6ED9EBA1 + w[t]) & _M32
            e, d, c, b, a = d, c, _rotl(b, 30), a, tmp
        for t in range(40, 60):
            tmp = (_rotl(a, 5) + ((b & c) | (b & d) | (c & d)) + e + 0x8F1BBCDC + w[t]) & _M32
            e, d, c, b, a = d, c, _rotl(b, 30), a, tmp
        for t in range(60, 80):
            tmp = (_rotl(a, 5) + (b ^ c ^ d) + e + 0xCA62C1D6 + w[t]) & _M32
            e, d, c, b, a = d, c, _rotl(b, 30), a, tmp
        h0 = (h0 + a) & _M32
        h1 = (h1 + b) & _M32
        h2 = (h2 + c) & _M32
        h3 = (h3 + d) & _M32
        h4 = (h4 + e) & _M32
    return _bswap32(h0) | (_bswap32(h1) << 32)


_P1 = np.uint64(0x9E3779B185EBCA87)  # XXH64 primes
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
HASHES = ("sha1", "xxh64")  # code = index, passed to the kernels


@_inline
def _rotl64(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@_inline
def _read64(buf, p):
    v = np.uint64(0)
    for j in range(8):
        v |= np.uint64(buf[p + j]) << np.uint64(8 * j)
    return v


@_inline
def _xxh_round(acc, lane):
    return _rotl64(acc + lane * _P2, 31) * _P1


@_inline
def _xxh_merge(h, v):
    return (h ^ _xxh_round(np.uint64(0), v)) * _P1 + _P4


@_jit
def xxh64(buf, lo, length):
    """XXH64 (seed 0) of buf[lo:lo + length], as uint64 (xxhash's ``xxh64_intdigest``)."""
    p, end = lo, lo + length
    if length >= 32:
        v1, v2, v3, v4 = _P1 + _P2, _P2, np.uint64(0), np.uint64(0) - _P1
        while p + 32 <= end:
            v1 = _xxh_round(v1, _read64(buf, p))
            v2 = _xxh_round(v2, _read64(buf, p + 8))
            v3 = _xxh_round(v3, _read64(buf, p + 16))
            v4 = _xxh_round(v4, _read64(buf, p + 24))
            p += 32
        h = _rotl64(v1, 1) + _rotl64(v2, 7) + _rotl64(v3, 12) + _rotl64(v4, 18)
        h = _xxh_merge(_xxh_merge(_xxh_merge(_xxh_merge(h, v1), v2), v3), v4)
    else:
        h = _P5
    h += np.uint64(length)
    while p + 8 <= end:
        h = _rotl64(h ^ _xxh_round(np.uint64(0), _read64(buf, p)), 27) * _P1 + _P4
        p += 8
    if p + 4 <= end:
        word = np.uint64(buf[p]) | (np.uint64(buf[p + 1]) << np.uint64(8)) | (np.uint64(buf[p + 2]) << np.uint64(16)) | (np.uint64(buf[p + 3]) << np.uint64(24))
        h = _rotl64(h ^ (word * _P1), 23) * _P2 + _P3
        p += 4
    while p < end:
        h = _rotl64(h ^ (np.uint64(buf[p]) * _P5), 11) * _P1
        p += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    return h ^ (h >> np.uint64(32))


@_jit
def space_len(buf, p, hi):
    """Bytes of the whitespace character at buf[p] (0 if it is not one), as ``str.split()`` sees it.

    UTF-8 of every code point Python's ``str.isspace`` accepts: ASCII \\t\\n\\v\\f\\r, 0x1c-0x1f and
    space; U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
    """
    c = buf[p]
    if 32 < c < 0xC2:  # most bytes: printable ASCII and UTF-8 continuation bytes
        return 0
    if c == 32 or (9 <= c <= 13) or (28 <= c <= 31):
        return 1
    if c == 0xC2:
        if p + 1 < hi and (buf[p + 1] == 0x85 or buf[p + 1] == 0xA0):
            return 2
        return 0
    if c < 0xE1 or c > 0xE3 or p + 2 >= hi:
        return 0
    d, e = buf[p + 1], buf[p + 2]
    if c == 0xE1:
        return 3 if d == 0x9A and e == 0x80 else 0
    if c == 0xE3:
        return 3 if d == 0x80 and e == 0x80 else 0
    if d == 0x80 and ((0x80 <= e <= 0x8A) or e == 0xA8 or e == 0xA9 or e == 0xAF):
        return 3
    return 3 if d == 0x81 and e == 0x9F else 0


@_inline
def _ascii_space(c):
    return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)


@_inline
def next_token(buf, p, hi):
    """(start, end) of the first token at or after byte p of a UTF-8 document ending at hi.

    ASCII is classified inline; only lead bytes >= 0xC2 (rare) call ``space_len``: a call per
    token boundary made this loop ~3x slower.
    """
    while p < hi:
        c = buf[p]
        if c < 0xC2:
            if not _ascii_space(c):
                break
            p += 1
            continue
        k = space_len(buf, p, hi)
        if k == 0:
            break
        p += k
    start = p
    while p < hi:
        c = buf[p]
        if c < 0xC2:
            if _ascii_space(c):
                break
        elif space_len(buf, p, hi) != 0:
            break
        p += 1
    return start, p


@_inline
def _hash_shingle(buf, rs, re, first, count, n, contiguous, block, w, algo):
    """Hash (`algo`: 0 sha1_hash64, 1 xxh64) of `count` tokens from ring slot `first` (the ring
    holds the last n token spans) joined by one space, as int64 bits.

    When the tokens are already separated by single spaces (`contiguous`, the common case) the
    shingle is one byte range of `buf`, hashed in place by xxh64 (copied once for SHA-1's
    padding); otherwise it is assembled token by token in `block`.
    """
    last = first + count - 1
    if last >= n:
        last -= n
    if contiguous:
        lo, length = rs[first], re[last] - rs[first]
        if algo == 1:
            return np.int64(xxh64(buf, lo, length))
        for q in range(length):
            block[q] = buf[lo + q]
        return sha1_hash64_block(block, length, w)
    length, idx = 0, first
    for k in range(count):
        if k:
            block[length] = 32
            length += 1
        for q in range(rs[idx], re[idx]):
            block[length] = buf[q]
            length += 1
        idx = idx + 1 if idx + 1 < n else 0
    if algo == 1:
        return np.int64(xxh64(block, 0, length))
    return sha1_hash64_block(block, length, w)


@_pjit
def shingle_hashes_raw(buf, doc_offsets, n, offsets, blocks, algo):
    """Hash bits (int64; `algo` 0: sha1_hash64, 1: xxh64) of every shingle of raw UTF-8 documents,
    document d's written from offsets[d] (room for ``shingle_bound``); returns (hashes, counts).

    Tokens are whitespace-separated (``space_len``); the last n token spans sit in a ring (slot
    counters, no division), and `last_bad` remembers the latest token not followed by exactly
    one space, so a shingle is one byte range of `buf` when that token is before it. Documents
    are split into `blocks` (boundaries, ascending) that run in parallel, each with its own scratch.
    """
    out = np.empty(offsets[-1], dtype=np.int64)
    counts = np.zeros(len(doc_offsets) - 1, dtype=np.int64)
    for bi in prange(len(blocks) - 1):
        lo_doc, hi_doc = blocks[bi], blocks[bi + 1]
        longest = 0
        for d in range(lo_doc, hi_doc):
            longest = max(longest, doc_offsets[d + 1] - doc_offsets[d])
        block = np.empty(longest + 72, dtype=np.uint8)
        w = np.empty(80, dtype=np.int64)
        rs = np.empty(n, dtype=np.int64)
        re = np.empty(n, dtype=np.int64)
        for d in range(lo_doc, hi_doc):
            p, hi, ntok, pos = doc_offsets[d], doc_offsets[d + 1], 0, offsets[d]
            slot, last_bad, prev_end = 0, -1, 0
            while True:
                start, p = next_token(buf, p, hi)
                if start == hi:
                    break
                if ntok and (start != prev_end + 1 or buf[prev_end] != 32):
                    last_bad = ntok - 1
                rs[slot], re[slot], prev_end = start, p, p
                slot = slot + 1 if slot + 1 < n else 0
                ntok += 1
                if ntok >= n:  # `slot` is now the oldest of the last n tokens
                    out[pos] = _hash_shingle(buf, rs, re, slot, n, n, last_bad < ntok - n, block, w, algo)
                    pos += 1
            if 0 < ntok < n:
                out[pos] = _hash_shingle(buf, rs, re, 0, ntok, n, last_bad < 0, block, w, algo)
                pos += 1
            counts[d] = pos - offsets[d]
    return out, counts


def shingle_bound(doc_bytes: np.ndarray, n: int) -> np.ndarray:
    """Most shingles a document of `doc_bytes` UTF-8 bytes can have (tokens <= (bytes + 1) // 2)."""
    return np.where(doc_bytes > 0, np.maximum((doc_bytes + 1) // 2 - n + 1, 1), 0)


@_pjit
def min_affine32_blocks(h, offsets, a, b, out, blocks):
    """min_affine32 with blocks of documents in parallel."""
    for bi in prange(len(blocks) - 1):
        acc = np.empty(len(a), dtype=np.uint32)
        for d in range(blocks[bi], blocks[bi + 1]):
            acc[:] = out[d]
            for j in range(offsets[d], offsets[d + 1]):
                hj = h[j]
                for k in range(len(a)):
                    acc[k] = min(acc[k], np.uint32(a[k] * hj + b[k]))
            out[d] = acc


@_pjit
def min_affine_blocks(h, offsets, a, b, out, mask, blocks):
    """min_affine with blocks of documents in parallel."""
    for bi in prange(len(blocks) - 1):
        acc = np.empty(len(a), dtype=np.uint64)
        for d in range(blocks[bi], blocks[bi + 1]):
            acc[:] = out[d]
            for j in range(offsets[d], offsets[d + 1]):
                hj = h[j]
                for k in range(len(a)):
                    acc[k] = min(acc[k], (a[k] * hj + b[k]) & mask)
            out[d] = acc


@_pjit
def min_legacy_blocks(h, offsets, a, b, out, prime, mask, blocks):
    """min_legacy with blocks of documents in parallel."""
    for bi in prange(len(blocks) - 1):
        acc = np.empty(len(a), dtype=np.uint64)
        for d in range(blocks[bi], blocks[bi + 1]):
            acc[:] = out[d]
            for j in range(offsets[d], offsets[d + 1]):
                hj = h[j]
                for k in range(len(a)):
                    acc[k] = min(acc[k], ((a[k] * hj + b[k]) % prime) & mask)
            out[d] = acc


def doc_blocks(weights: np.ndarray, parts: int) -> np.ndarray:
    """Boundaries splitting documents into about `parts` contiguous blocks of similar total weight."""
    n = len(weights)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    cum = np.cumsum(weights, dtype=np.float64)
    targets = cum[-1] * np.arange(1, parts) / parts
    inner = np.searchsorted(cum, targets, side="right")
    return np.unique(np.concatenate(([0], inner, [n]))).astype(np.int64)


@_jit
def intersection_sizes(hashes_a, offsets_a, hashes_b, offsets_b, ia, ib):
    """|A_ia[p] ∩ B_ib[p]| for each pair p of sorted, de-duplicated hash sets (a merge walk)."""
    out = np.zeros(len(ia), dtype=np.int64)
    for p in range(len(ia)):
        i, iend = offsets_a[ia[p]], offsets_a[ia[p] + 1]
        j, jend = offsets_b[ib[p]], offsets_b[ib[p] + 1]
        count = 0
        while i < iend and j < jend:
            x, y = hashes_a[i], hashes_b[j]
            if x == y:
                count += 1
                i += 1
                j += 1
            elif x < y:
                i += 1
            else:
                j += 1
        out[p] = count
    return out


@_inline
def _fmix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@_pjit
def band_keys(sig, bands, rows):
    """One uint64 key per (document, band): a fmix64 chain over the band's values (see lsh.band_keys)."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in prange(n):
        for band in range(bands):
            key = np.uint64(0x9E3779B97F4A7C15)
            for r in range(rows):
                key = _fmix64(key ^ np.uint64(sig[d, band * rows + r])) + np.uint64(r + 1)
            out[d, band] = key
    return out


@_pjit
def band_tables(sorted_keys):
    """Per band, an open-addressing table (capacity a power of two >= 2n): each distinct key with
    the start and length of its run in the band's sorted row. Length 0 marks an empty slot."""
    bands, n = sorted_keys.shape
    capacity = 2
    while capacity < 2 * n:
        capacity *= 2
    mask = np.uint64(capacity - 1)
    tkey = np.zeros((bands, capacity), dtype=np.uint64)
    tstart = np.zeros((bands, capacity), dtype=np.int64)
    tlen = np.zeros((bands, capacity), dtype=np.int64)
    for band in prange(bands):
        row = sorted_keys[band]
        j = 0
        while j < n:
            end = j + 1
            while end < n and row[end] == row[j]:
                end += 1
            slot = row[j] & mask
            while tlen[band, slot] != 0:
                slot = (slot + np.uint64(1)) & mask
            tkey[band, slot], tstart[band, slot], tlen[band, slot] = row[j], j, end - j
            j = end
    return tkey, tstart, tlen


@_pjit
def lsh_probe(keys, tkey, tstart, tlen):
    """Per (query, band): the start and length of the matching run in the band's sorted row."""
    nq, bands = keys.shape
    mask = np.uint64(tkey.shape[1] - 1)
    start = np.zeros((nq, bands), dtype=np.int64)
    length = np.zeros((nq, bands), dtype=np.int64)
    for q in prange(nq):
        for band in range(bands):
            x = keys[q, band]
            slot = x & mask
            while tlen[band, slot] != 0 and tkey[band, slot] != x:
                slot = (slot + np.uint64(1)) & mask
            start[q, band], length[q, band] = tstart[band, slot], tlen[band, slot]
    return start, length


@_pjit
def lsh_gather(start, length, order, offsets):
    """Each query's items from its runs, sorted and de-duplicated in place; returns (items, counts)."""
    nq, bands = start.shape
    items = np.empty(offsets[-1], dtype=np.int64)
    counts = np.zeros(nq, dtype=np.int64)
    for q in prange(nq):
        lo = offsets[q]
        pos = lo
        for band in range(bands):
            for j in range(start[q, band], start[q, band] + length[q, band]):
                item = order[band, j]  # insertion sort: a query has few candidates
                k = pos
                while k > lo and items[k - 1] > item:
                    items[k] = items[k - 1]
                    k -= 1
                items[k] = item
                pos += 1
        m = 0
        for k in range(lo, pos):
            if k == lo or items[k] != items[k - 1]:
                items[lo + m] = items[k]
                m += 1
        counts[q] = m
    return items, counts


@_pjit
def compact(items, offsets, counts, new_offsets):
    """Copy each query's first counts[q] items from its slot at offsets[q] to new_offsets[q]."""
    out = np.empty(new_offsets[-1], dtype=np.int64)
    for q in prange(len(counts)):
        for k in range(counts[q]):
            out[new_offsets[q] + k] = items[offsets[q] + k]
    return out
