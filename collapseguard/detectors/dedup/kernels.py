"""Compiled (numba) hot paths for MinHash: SHA-1 of every shingle and the per-document minimum.

Input is one UTF-8 buffer of whitespace-normalised documents (``" ".join(text.split())``), so
the shingle ``tokens[i:i+n]`` is the byte slice from the start of token i to the end of token
i+n-1: no per-shingle Python string is ever built. (Tokenising raw UTF-8 inside numba and
assembling each shingle was measured slower than this.) SHA-1 follows FIPS 180-4; the value
kept is datasketch's ``sha1_hash64`` (first 8 digest bytes, little-endian), whose low 32 bits
are ``sha1_hash32``. When numba is not installed, ``AVAILABLE`` is False and callers use the
hashlib/numpy path in ``minhash.py`` (same results, slower).
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # optional extra `dedup`
    numba = None

AVAILABLE = numba is not None
_M32 = 0xFFFFFFFF


def _jit(fn):
    return numba.njit(cache=True, nogil=True)(fn) if AVAILABLE else fn


@_jit
def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & _M32


@_jit
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


@_jit
def sha1_hash64_slice(buf, start, length, block, w):
    """datasketch sha1_hash64 of buf[start:start+length] (copied into the scratch `block`)."""
    block[:length] = buf[start : start + length]
    return sha1_hash64_block(block, length, w)


@_jit
def shingle_counts(buf, doc_offsets, n):
    """Shingles of each normalised document (tokens joined by single spaces; see ``minhash.shingles``)."""
    n_docs = len(doc_offsets) - 1
    counts = np.zeros(n_docs, dtype=np.int64)
    for d in range(n_docs):
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if hi == lo:
            continue
        ntok = 1
        for p in range(lo, hi):
            if buf[p] == 32:
                ntok += 1
        counts[d] = ntok - n + 1 if ntok >= n else 1
    return counts


@_jit
def shingle_hashes_kernel(buf, doc_offsets, n, offsets, max_tokens, max_bytes):
    """sha1_hash64 bits (int64) of every shingle (duplicates included), laid out by `offsets`.

    In a normalised document the shingle tokens[i:i+n] is one contiguous byte slice.
    """
    out = np.empty(offsets[-1], dtype=np.int64)
    block = np.empty(max_bytes + 72, dtype=np.uint8)
    starts = np.empty(max_tokens + 1, dtype=np.int64)
    ends = np.empty(max_tokens + 1, dtype=np.int64)
    w = np.empty(80, dtype=np.int64)
    for d in range(len(doc_offsets) - 1):
        lo, hi = doc_offsets[d], doc_offsets[d + 1]
        if hi == lo:
            continue
        ntok = 0
        starts[0] = lo
        for p in range(lo, hi):
            if buf[p] == 32:
                ends[ntok] = p
                ntok += 1
                starts[ntok] = p + 1
        ends[ntok] = hi
        ntok += 1
        pos = offsets[d]
        for i in range(offsets[d + 1] - offsets[d]):
            last = min(i + n - 1, ntok - 1)
            out[pos + i] = sha1_hash64_slice(buf, starts[i], ends[last] - starts[i], block, w)
    return out


@_jit
def min_affine(h, offsets, a, b, out, mask):
    """out[d, k] = min over shingles j of doc d of (a[k] * h[j] + b[k]) & mask (uint64 wrap)."""
    num_perm = len(a)
    acc = np.empty(num_perm, dtype=np.uint64)
    for d in range(len(offsets) - 1):
        acc[:] = out[d]
        for j in range(offsets[d], offsets[d + 1]):
            hj = h[j]
            for k in range(num_perm):  # branch-free so LLVM vectorises it
                acc[k] = min(acc[k], (a[k] * hj + b[k]) & mask)
        out[d] = acc


@_jit
def min_affine32(h, offsets, a, b, out):
    """affine32: out[d, k] = min over doc d's shingles of (a[k] * h[j] + b[k]) mod 2^32."""
    num_perm = len(a)
    acc = np.empty(num_perm, dtype=np.uint32)
    for d in range(len(offsets) - 1):
        acc[:] = out[d]
        for j in range(offsets[d], offsets[d + 1]):
            hj = h[j]
            for k in range(num_perm):
                acc[k] = min(acc[k], np.uint32(a[k] * hj + b[k]))
        out[d] = acc


@_jit
def min_legacy(h, offsets, a, b, out, prime, mask):
    """datasketch legacy: ((a*h + b) mod 2^64 mod prime) & mask, min per document."""
    num_perm = len(a)
    acc = np.empty(num_perm, dtype=np.uint64)
    for d in range(len(offsets) - 1):
        acc[:] = out[d]
        for j in range(offsets[d], offsets[d + 1]):
            hj = h[j]
            for k in range(num_perm):
                acc[k] = min(acc[k], ((a[k] * hj + b[k]) % prime) & mask)
        out[d] = acc


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
