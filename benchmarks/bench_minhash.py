"""MinHash signatures and LSH against datasketch on WikiText-2 lines, in one run.

    nice .venv/bin/python benchmarks/bench_minhash.py [--docs 8000] [--repeat 3]

Prints our time, datasketch's time and the ratio for: signatures vs a `MinHash.update` loop and
vs `MinHash.bulk` (identical signatures asserted), LSH insert and query vs `MinHashLSH` (the
candidate sets are asserted equal at datasketch's own bands/rows), and recall on planted
near-duplicates at Jaccard 0.8. Both sides start from the same texts and the same shingles.
"""

from __future__ import annotations

import argparse
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


def row(name: str, ours: float, theirs: float) -> None:
    print(f"{name:<44} ours {ours:8.3f} s   datasketch {theirs:8.3f} s   ratio {theirs / ours:6.1f}x")


def load_texts(limit: int) -> list[str]:
    lines = [line.strip() for line in DATA.open(encoding="utf-8")]
    return [line for line in lines if line and not line.startswith("=")][:limit]


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
    t_ours, sig = best_of(repeat, ours)
    t_loop, loop = best_of(1, update_loop)
    t_bulk, mhs = best_of(repeat, bulk)
    t_bulk_pre, _ = best_of(repeat, lambda: MinHash.bulk(pre, num_perm=128, seed=1))
    ref = np.array([m.hashvalues for m in mhs])
    if not (np.array_equal(sig, ref) and np.array_equal(sig, np.array([m.hashvalues for m in loop]))):
        sys.exit("signatures differ from datasketch")
    print(f"signatures identical to datasketch: {sig.shape} {sig.dtype}")
    row("signatures vs MinHash.update loop", t_ours, t_loop)
    row("signatures vs MinHash.bulk (texts -> sigs)", t_ours, t_bulk)
    row("signatures vs MinHash.bulk (given shingles)", t_ours, t_bulk_pre)
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

    runs = [theirs() for _ in range(repeat)]
    d_ins, d_q = min(r[0] for r in runs), min(r[1] for r in runs)
    d_res, (b, r) = runs[-1][2], runs[-1][3]
    same = [ours(b, r) for _ in range(repeat)]
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
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=2000)
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    from collapseguard.detectors.dedup import kernels as minhash_kernels
    from collapseguard.detectors.dedup.minhash import minhash_signatures

    texts = load_texts(args.docs)
    t = time.perf_counter()
    minhash_signatures(texts[:5])
    print(f"compiled path: {minhash_kernels.AVAILABLE} (first call incl. numba cache load {time.perf_counter() - t:.2f} s)")
    n_sh = sum(max(0, len(t.split()) - 4) for t in texts)
    print(f"{len(texts)} WikiText-2 lines, ~{n_sh} shingles (word 5-grams), num_perm=128, seed=1")
    sig, mhs = bench_signatures(texts, args.repeat)
    bench_lsh(sig, mhs, args.repeat)
    planted_recall(load_texts(40000), args.pairs)


if __name__ == "__main__":
    main()
