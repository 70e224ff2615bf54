"""MinHash signatures and LSH against datasketch and rensa on WikiText-2 text, in one run.

    nice .venv/bin/python benchmarks/bench_minhash.py [--docs 8000] [--repeat 5] [--threads 2] [--peers all]

Thread counts are fixed on both sides before anything is imported (NUMBA_NUM_THREADS for ours,
RAYON_NUM_THREADS for rensa). Each measurement interleaves our repeats with the peer's; rows print
the best and the median of `--repeat` for both sides and the ratios (peer / ours).

- signatures on ~1 KB documents: ours (texts -> signatures, identical to datasketch, asserted;
  and with shingle_hash="xxh64", identical to datasketch given that hashfunc) vs rensa's fastest
  path from texts for the same word 5-grams (its bulk ``digest_matrix_from_token_sets``, fed by
  the fastest plain-Python shingler of three tried, no de-duplication: rensa takes sets), vs rensa
  on its README's own tokenisation (``text.split()``: word unigrams, a cheaper and different
  task), vs rensa given the shingles, and vs datasketch ``MinHash.bulk``;
- cold: a fresh process per run (interpreter, imports, numba cache load, first call) for ours and
  for rensa, on the same documents;
- LSH query at the same bands on ~40-word passages: ours vs rensa ``RMinHashLSH.query_all`` and
  datasketch ``MinHashLSH.query`` (our candidates asserted equal to datasketch's at its bands);
- recall on planted near-duplicates at Jaccard 0.8.

rensa is only a peer here: its rows are skipped when it is not installed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "wiki.train.chunk-shuffled.tokens"


def interleaved_times(repeat: int, ours, peer):
    """All `repeat` times of `ours` and `peer`, run alternately; (times_ours, times_peer, out_ours, out_peer)."""
    times, out = timing.interleaved_calls(repeat, {"ours": ours, "peer": peer})
    return times["ours"], times["peer"], out["ours"], out["peer"]


def row(name: str, ours: float, theirs: float, peer: str = "datasketch") -> None:
    print(f"{name:<58} ours {ours:8.3f} s   {peer} {theirs:8.3f} s   ratio {theirs / ours:6.2f}x")


def row2(name: str, ours: list[float], theirs: list[float], peer: str = "rensa") -> None:
    """Best / median of both sides, and the ratio (peer / ours) of each."""
    print(f"{name:<62} ours {timing.seconds(ours)}   {peer} {timing.seconds(theirs)}   ratio {timing.ratio(theirs, ours)}",
          flush=True)


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


def slice_shingles(text: str, n: int = 5) -> list[str]:
    """Word n-grams joined by one space, in order, duplicates kept (rensa takes them as a set)."""
    tokens = text.split()
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def zip_shingles(text: str, n: int = 5) -> list[str]:
    """slice_shingles via zip and map (fewer Python-level steps per shingle)."""
    tokens = text.split()
    if len(tokens) <= n:
        return [" ".join(tokens)] if tokens else []
    return list(map(" ".join, zip(*(tokens[i:] for i in range(n)))))


def rensa_from_texts(rensa):
    """rensa's ways from texts to 5-gram signatures: its bulk matrix API fed by a plain-Python shingler."""
    matrix = rensa.RMinHash.digest_matrix_from_token_sets
    return {
        "zip shingler, list": lambda docs: matrix([zip_shingles(t) for t in docs], 128, 1),
        "zip shingler, generator": lambda docs: matrix((zip_shingles(t) for t in docs), 128, 1),
        "slice shingler, generator": lambda docs: matrix((slice_shingles(t) for t in docs), 128, 1),
    }


def fastest_rensa(rensa, docs, tries: int = 2) -> str:
    """The name of rensa's fastest way from texts here (best of `tries` each)."""
    ways = rensa_from_texts(rensa)
    times = {name: min(timing.interleaved(tries, {name: timing.timed(lambda fn=fn: fn(docs))})[name])
             for name, fn in ways.items()}
    print("  rensa from texts, best of " + str(tries) + ": " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()))
    return min(times, key=times.get)


def check_xxh64_equals_datasketch(docs, sig) -> None:
    """shingle_hash="xxh64" rows equal datasketch's MinHash given hashfunc = XXH64's low 32 bits."""
    try:
        import xxhash
        from datasketch import MinHash
    except ImportError:
        print("  (xxhash or datasketch not installed: xxh64 equality not checked here; tests/test_minhash.py does)")
        return
    from collapseguard.detectors.dedup.minhash import shingles

    def hashfunc(b):
        return xxhash.xxh64_intdigest(b) & 0xFFFFFFFF

    ref = MinHash.bulk([[s.encode() for s in shingles(t)] for t in docs[:300]], num_perm=128, seed=1, hashfunc=hashfunc)
    if not np.array_equal(sig[:300], np.array([m.hashvalues for m in ref])):
        sys.exit("xxh64 signatures differ from datasketch's MinHash with the xxh64 hashfunc")
    print("  xxh64 signatures identical to datasketch MinHash(hashfunc=xxh64 low 32 bits) on the first 300 documents")


def bench_signatures_rensa(docs, repeat):
    """Ours (sha1 and xxh64) vs rensa's fastest path from texts, its own tokenisation, and given the shingles."""
    from collapseguard.detectors.dedup.minhash import minhash_signatures

    rensa = rensa_or_none()
    if rensa is None:
        return None
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"signatures vs rensa: {len(docs)} documents of ~1 KB ({mb:.1f} MB), word 5-grams, num_perm=128")
    way = fastest_rensa(rensa, docs)
    peer = rensa_from_texts(rensa)[way]
    ours_sha1 = lambda: minhash_signatures(docs, num_perm=128, seed=1, ngram=5)  # noqa: E731
    ours_xxh = lambda: minhash_signatures(docs, num_perm=128, seed=1, ngram=5, shingle_hash="xxh64")  # noqa: E731
    t_o, t_p, _, _ = interleaved_times(repeat, ours_sha1, lambda: peer(docs))
    row2(f"texts -> sigs, ours sha1 (= datasketch) vs rensa ({way})", t_o, t_p)
    t_o, t_p, sig, _ = interleaved_times(repeat, ours_xxh, lambda: peer(docs))
    row2(f"texts -> sigs, ours xxh64 vs rensa ({way})", t_o, t_p)
    check_xxh64_equals_datasketch(docs, sig)
    matrix = rensa.RMinHash.digest_matrix_from_token_sets
    t_o, t_p, _, _ = interleaved_times(repeat, ours_xxh, lambda: matrix((t.split() for t in docs), 128, 1))
    row2("ours xxh64 5-grams vs rensa README tokenisation (unigrams)", t_o, t_p)
    pre = [zip_shingles(t) for t in docs]
    t_o, t_p, _, _ = interleaved_times(repeat, ours_xxh, lambda: matrix(pre, 128, 1))
    row2("ours xxh64 from texts vs rensa given the 5-grams", t_o, t_p)
    return way


COLD_OURS = """
import pickle, sys, time
docs = pickle.load(open(sys.argv[1], "rb"))
t = time.perf_counter()
from collapseguard.detectors.dedup.minhash import minhash_signatures
minhash_signatures(docs, shingle_hash=sys.argv[2])
print(time.perf_counter() - t)
"""

COLD_RENSA = """
import pickle, sys, time
docs = pickle.load(open(sys.argv[1], "rb"))
t = time.perf_counter()
import rensa
{functions}
rensa_from_texts(rensa)[sys.argv[2]](docs)
print(time.perf_counter() - t)
"""


def bench_cold(docs, repeat: int, way: str | None) -> None:
    """Fresh processes: imports, numba cache load (ours) and the first call, timed in the child
    after it has read the documents (interpreter start-up, the same for both, is left out)."""
    import inspect
    import pickle
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.pkl"
        path.write_bytes(pickle.dumps(docs))

        def child(code, *args):
            return float(timing.python_child(code, path, *args)[1].split()[-1])

        for hash_name in ("sha1", "xxh64"):
            ours = [child(COLD_OURS, hash_name) for _ in range(repeat)]
            if way is None:
                print(f"cold, ours {hash_name}: {timing.seconds(ours)}")
                continue
            functions = "".join(inspect.getsource(f) for f in (slice_shingles, zip_shingles, rensa_from_texts))
            peer = [child(COLD_RENSA.format(functions=functions), way) for _ in range(repeat)]
            row2(f"cold (fresh process, imports + first call), ours {hash_name}", ours, peer)


def bench_lsh_rensa(repeat, count, bands=16):
    """LSH insert and query at the same bands (rows = 128 / bands) on passages: ours vs rensa RMinHashLSH."""
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

    t_ours, t_peer, ours, theirs = interleaved_times(repeat, ours_insert, rensa_insert)
    row2(f"LSH insert {len(docs)} passages (b={bands}, r={128 // bands})", t_ours, t_peer)
    t_ours, t_peer, (q, _), res = interleaved_times(repeat, lambda: ours.query(sig), lambda: theirs.query_all(rmh))
    row2(f"LSH query {len(docs)} passages (b={bands}, r={128 // bands})", t_ours, t_peer)
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
    times, out = timing.interleaved_calls(1, {"loop": update_loop})
    t_loop, loop = times["loop"][0], out["loop"]
    t_ours, t_bulk, sig, mhs = interleaved_times(repeat, ours, bulk)
    t_ours_pre, t_bulk_pre, _, _ = interleaved_times(repeat, ours, lambda: MinHash.bulk(pre, num_perm=128, seed=1))
    ref = np.array([m.hashvalues for m in mhs])
    if not (np.array_equal(sig, ref) and np.array_equal(sig, np.array([m.hashvalues for m in loop]))):
        sys.exit("signatures differ from datasketch")
    print(f"signatures identical to datasketch: {sig.shape} {sig.dtype}")
    row("signatures vs MinHash.update loop", min(t_ours), t_loop)
    row("signatures vs MinHash.bulk (texts -> sigs)", min(t_ours), min(t_bulk))
    row("signatures vs MinHash.bulk (given shingles)", min(t_ours_pre), min(t_bulk_pre))
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
    global DATA
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repeats per measurement (best and median)")
    parser.add_argument("--cold-repeat", type=int, default=3, help="fresh processes per side for the cold rows (0: none)")
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="threads for ours (numba), rensa (rayon) and OpenMP/BLAS pools")
    parser.add_argument("--lsh-items", type=int, default=100_000)
    parser.add_argument("--peers", choices=["all", "rensa", "datasketch"], default="all", help="which peers to measure")
    parser.add_argument("--data", type=Path, default=DATA, help="WikiText-2 train tokens file")
    args = parser.parse_args()
    DATA = args.data
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    timing.pin_threads(args.threads)
    from collapseguard.detectors.dedup import kernels as minhash_kernels
    from collapseguard.detectors.dedup.minhash import minhash_signatures

    texts = load_texts(args.docs)
    t = time.perf_counter()
    minhash_signatures(texts[:5])
    minhash_signatures(texts[:5], shingle_hash="xxh64")
    print(f"compiled path: {minhash_kernels.AVAILABLE} (first calls incl. numba cache load {time.perf_counter() - t:.2f} s); "
          f"threads: ours {minhash_kernels.num_threads()}, rensa RAYON_NUM_THREADS={args.threads}; "
          f"load average {timing.load_average()}")
    if args.peers in ("all", "datasketch"):
        n_sh = sum(max(0, len(t.split()) - 4) for t in texts)
        print(f"{len(texts)} WikiText-2 lines, ~{n_sh} shingles (word 5-grams), num_perm=128, seed=1")
        sig, mhs = bench_signatures(texts, args.repeat)
        bench_lsh(sig, mhs, args.repeat)
    if args.peers in ("all", "rensa"):
        docs = kilobyte_documents(args.docs)
        minhash_signatures(docs), minhash_signatures(docs, shingle_hash="xxh64")  # parallel builds loaded too
        way = bench_signatures_rensa(docs, args.repeat)
        if args.cold_repeat:
            bench_cold(docs, args.cold_repeat, way)
        bench_lsh_rensa(args.repeat, args.lsh_items)
    if args.peers == "all":
        planted_recall(load_texts(40000), args.pairs)
    print(f"load average at the end {timing.load_average()}")


if __name__ == "__main__":
    main()
