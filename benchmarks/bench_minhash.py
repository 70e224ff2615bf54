"""MinHash signatures and LSH against datasketch and rensa on WikiText-2 text, in one run.

    nice .venv/bin/python benchmarks/bench_minhash.py [--docs 8000] [--repeat 5] [--threads 2]

Thread counts are fixed on both sides before anything is imported (NUMBA_NUM_THREADS for ours,
RAYON_NUM_THREADS for rensa). Each measurement interleaves our repeats with the peer's and keeps
the best of `--repeat`. Rows print our time, the peer's and the ratio (peer / ours).

- signatures on ~1 KB documents: ours (texts -> signatures, identical to datasketch, asserted)
  vs rensa's bulk ``digest_matrix_from_token_sets`` from texts (Python shingling + rensa) and given
  the shingles, and vs datasketch ``MinHash.bulk``;
- LSH query at the same bands on ~40-word passages: ours vs rensa ``RMinHashLSH.query_all`` and
  datasketch ``MinHashLSH.query`` (our candidates asserted equal to datasketch's at its bands);
- recall on planted near-duplicates at Jaccard 0.8.

rensa is only a peer here: its rows are skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "wiki.train.chunk-shuffled.tokens"


def best_of(repeat: int, fn):
    """(min seconds over `repeat` runs, last result)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def interleaved(repeat: int, ours, peer):
    """Best-of-`repeat` times of `ours` and `peer`, run alternately; (t_ours, t_peer, out_ours, out_peer)."""
    t_ours, t_peer, out_ours, out_peer = [], [], None, None
    for _ in range(repeat):
        t = time.perf_counter()
        out_ours = ours()
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        out_peer = peer()
        t_peer.append(time.perf_counter() - t)
    return min(t_ours), min(t_peer), out_ours, out_peer


def row(name: str, ours: float, theirs: float, peer: str = "datasketch") -> None:
    print(f"{name:<58} ours {ours:8.3f} s   {peer} {theirs:8.3f} s   ratio {theirs / ours:6.2f}x")


def rensa_or_none():
    try:
        import rensa
    except ImportError:
        print("rensa not installed: its rows are skipped (pip install rensa)")
        return None
    return rensa


def load_texts(limit: int) -> list[str]:
    lines = [line.strip() for line in DATA.open(encoding="utf-8")]
    return [line for line in lines if line and not line.startswith("=")][:limit]


def kilobyte_documents(count: int) -> list[str]:
    """Consecutive WikiText-2 lines joined until each document has ~1 KB (cut at 1100 characters)."""
    docs, cur = [], ""
    for line in load_texts(10**9):
        cur = f"{cur} {line}" if cur else line
        if len(cur) >= 1000:
            docs.append(cur[:1100])
            cur = ""
            if len(docs) == count:
                break
    return docs


def passages(count: int, words: int = 40) -> list[str]:
    """Passages of `words` words cut from WikiText-2 lines (the LSH items)."""
    out = []
    for line in load_texts(10**9):
        tokens = line.split()
        for i in range(0, len(tokens), words):
            if len(tokens[i : i + words]) >= 10:
                out.append(" ".join(tokens[i : i + words]))
        if len(out) >= count:
            break
    return out[:count]


def bench_signatures_rensa(docs, repeat):
    """Ours vs rensa's fastest bulk path, from texts and given the shingles."""
    from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles

    rensa = rensa_or_none()
    if rensa is None:
        return
    pre = [shingles(t, 5) for t in docs]

    def ours():
        return minhash_signatures(docs, num_perm=128, seed=1, ngram=5)

    def from_texts():
        return rensa.RMinHash.digest_matrix_from_token_sets([shingles(t, 5) for t in docs], 128, 1)

    def given():
        return rensa.RMinHash.digest_matrix_from_token_sets(pre, 128, 1)

    mb = sum(len(d.encode()) for d in docs) / 1e6
    t_ours, t_peer, _, _ = interleaved(repeat, ours, from_texts)
    row(f"signatures, {len(docs)} x ~1 KB docs ({mb:.1f} MB), texts -> sigs", t_ours, t_peer, "rensa")
    t_ours, t_peer, _, _ = interleaved(repeat, ours, given)
    row("signatures, ~1 KB docs, rensa given the shingles", t_ours, t_peer, "rensa")


def bench_lsh_rensa(repeat, count, bands=16):
    """LSH query at the same bands (rows = 128 / bands) on passages: ours vs rensa RMinHashLSH."""
    from collapseguard.detectors.dedup.lsh import MinHashLSH
    from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles

    rensa = rensa_or_none()
    if rensa is None:
        return
    docs = passages(count)
    sig = minhash_signatures(docs)
    rmh = rensa.RMinHash.from_token_sets([shingles(d) for d in docs], 128, 1)

    def ours_insert():
        lsh = MinHashLSH(0.8, 128, bands, 128 // bands)
        lsh.insert(sig)
        lsh.query(sig[:1])  # builds the sorted keys and band tables
        return lsh

    def rensa_insert():
        lsh = rensa.RMinHashLSH(0.8, 128, bands)
        lsh.insert_many(rmh)
        return lsh

    t_ours, t_peer, ours, theirs = interleaved(repeat, ours_insert, rensa_insert)
    row(f"LSH insert {len(docs)} passages (b={bands}, r={128 // bands})", t_ours, t_peer, "rensa")
    t_ours, t_peer, (q, _), res = interleaved(repeat, lambda: ours.query(sig), lambda: theirs.query_all(rmh))
    row(f"LSH query {len(docs)} passages (b={bands}, r={128 // bands})", t_ours, t_peer, "rensa")
    print(f"  candidate pairs: ours {len(q)}, rensa {sum(len(r) for r in res)} (different hashes, so not equal)")


def bench_signatures(texts, repeat):
    from datasketch import MinHash

    from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles

    def ours():
        return minhash_signatures(texts, num_perm=128, seed=1, ngram=5)

    def update_loop():
        out = []
        for text in texts:
            m = MinHash(num_perm=128, seed=1)
            for s in shingles(text, 5):
                m.update(s.encode("utf-8"))
            out.append(m)
        return out

    def bulk():
        return MinHash.bulk([[s.encode("utf-8") for s in shingles(t, 5)] for t in texts], num_perm=128, seed=1)

    pre = [[s.encode("utf-8") for s in shingles(t, 5)] for t in texts]
    t_loop, loop = best_of(1, update_loop)
    t_ours, t_bulk, sig, mhs = interleaved(repeat, ours, bulk)
    t_ours_pre, t_bulk_pre, _, _ = interleaved(repeat, ours, lambda: MinHash.bulk(pre, num_perm=128, seed=1))
    ref = np.array([m.hashvalues for m in mhs])
    if not (np.array_equal(sig, ref) and np.array_equal(sig, np.array([m.hashvalues for m in loop]))):
        sys.exit("signatures differ from datasketch")
    print(f"signatures identical to datasketch: {sig.shape} {sig.dtype}")
    row("signatures vs MinHash.update loop", t_ours, t_loop)
    row("signatures vs MinHash.bulk (texts -> sigs)", t_ours, t_bulk)
    row("signatures vs MinHash.bulk (given shingles)", t_ours_pre, t_bulk_pre)
    return sig, mhs


def bench_lsh(sig, mhs, repeat):
    from datasketch import MinHashLSH as DSLSH

    from collapseguard.detectors.dedup.lsh import MinHashLSH

    def theirs():
        lsh = DSLSH(threshold=0.8, num_perm=128)
        t = time.perf_counter()
        for i, m in enumerate(mhs):
            lsh.insert(i, m)
        t_ins = time.perf_counter() - t
        t = time.perf_counter()
        res = [lsh.query(m) for m in mhs]
        return t_ins, time.perf_counter() - t, res, (lsh.b, lsh.r)

    def ours(bands=None, rows=None):
        lsh = MinHashLSH(threshold=0.8, num_perm=128, bands=bands, rows=rows)
        t = time.perf_counter()
        lsh.insert(sig)
        t_ins = time.perf_counter() - t
        t = time.perf_counter()
        q, item = lsh.query(sig)
        return t_ins, time.perf_counter() - t, (q, item), (lsh.bands, lsh.rows)

    b, r = theirs()[3]
    runs, same = [], []
    for _ in range(repeat):
        runs.append(theirs())
        same.append(ours(b, r))
    d_ins, d_q = min(x[0] for x in runs), min(x[1] for x in runs)
    d_res = runs[-1][2]
    o_ins, o_q = min(x[0] for x in same), min(x[1] for x in same)
    q, item = same[-1][2]
    ref_pairs = {(i, j) for i, keys in enumerate(d_res) for j in keys}
    if set(zip(q.tolist(), item.tolist(), strict=True)) != ref_pairs:
        sys.exit("LSH candidates differ from datasketch at the same bands/rows")
    print(f"LSH candidates identical to datasketch at bands={b} rows={r}: {len(ref_pairs)} pairs")
    row(f"LSH insert {len(sig)} (b={b}, r={r})", o_ins, d_ins)
    row(f"LSH query {len(sig)} (b={b}, r={r})", o_q, d_q)
    tuned = [ours() for _ in range(repeat)]
    tb, tr = tuned[-1][3]
    row(f"LSH insert, ours recall-tuned (b={tb}, r={tr})", min(x[0] for x in tuned), d_ins)
    row(f"LSH query, ours recall-tuned (b={tb}, r={tr})", min(x[1] for x in tuned), d_q)


def planted_recall(texts, pairs: int, seed: int = 0):
    """Recall at 0.8 on edited copies of long lines (true Jaccard >= 0.8), ours vs datasketch default."""
    from datasketch import MinHash
    from datasketch import MinHashLSH as DSLSH

    from collapseguard.detectors.dedup.lsh import MinHashLSH, collision_probability
    from collapseguard.detectors.dedup.minhash import minhash_signatures, shingles

    rng = random.Random(seed)
    vocab = sorted({w for t in texts[:2000] for w in t.split()})
    bases, variants, truth = [], [], []
    for text in texts:
        words = text.split()
        if len(words) < 80:
            continue
        copy = list(words)
        for pos in rng.sample(range(len(words)), rng.randint(1, max(1, len(words) // 40))):
            copy[pos] = rng.choice(vocab)
        a, b = set(shingles(text)), set(shingles(" ".join(copy)))
        j = len(a & b) / len(a | b)
        if j >= 0.8:
            bases.append(text)
            variants.append(" ".join(copy))
            truth.append(j)
        if len(bases) == pairs:
            break
    truth = np.array(truth)
    ours = MinHashLSH(threshold=0.8, num_perm=128)
    ours.insert(minhash_signatures(bases))
    q, item = ours.query(minhash_signatures(variants))
    recall_ours = np.isin(np.arange(len(bases)), q[q == item]).mean()
    ref = DSLSH(threshold=0.8, num_perm=128)
    mh = MinHash.bulk([[s.encode() for s in shingles(t)] for t in bases + variants], num_perm=128, seed=1)
    for i in range(len(bases)):
        ref.insert(i, mh[i])
    recall_ref = np.mean([i in ref.query(mh[len(bases) + i]) for i in range(len(bases))])
    print(f"planted near-duplicates: {len(bases)} pairs, true Jaccard {truth.min():.3f}..{truth.max():.3f} (mean {truth.mean():.3f})")
    for name, recall, (b, r) in [("ours", recall_ours, (ours.bands, ours.rows)), ("datasketch default", recall_ref, (ref.b, ref.r))]:
        print(f"  recall {name:<19} b={b:<3} r={r:<3} measured {recall:.3f}   S-curve mean {collision_probability(truth, b, r).mean():.3f}"
              f"   P(0.8) {collision_probability(0.8, b, r):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="threads for ours (numba) and rensa (rayon)")
    parser.add_argument("--lsh-items", type=int, default=100_000)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    os.environ["NUMBA_NUM_THREADS"] = os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    from collapseguard.detectors.dedup import kernels as minhash_kernels
    from collapseguard.detectors.dedup.minhash import minhash_signatures

    texts = load_texts(args.docs)
    t = time.perf_counter()
    minhash_signatures(texts[:5])
    print(f"compiled path: {minhash_kernels.AVAILABLE} (first call incl. numba cache load {time.perf_counter() - t:.2f} s); "
          f"threads: ours {minhash_kernels.num_threads()}, rensa RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}")
    n_sh = sum(max(0, len(t.split()) - 4) for t in texts)
    print(f"{len(texts)} WikiText-2 lines, ~{n_sh} shingles (word 5-grams), num_perm=128, seed=1")
    sig, mhs = bench_signatures(texts, args.repeat)
    bench_lsh(sig, mhs, args.repeat)
    bench_signatures_rensa(kilobyte_documents(args.docs), args.repeat)
    bench_lsh_rensa(args.repeat, args.lsh_items)
    planted_recall(load_texts(40000), args.pairs)


if __name__ == "__main__":
    main()
