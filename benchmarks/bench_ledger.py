"""The generation ledger at scale: add, open, containment queries and memory per ledger shingle.

    nice .venv/bin/python benchmarks/bench_ledger.py [--items 100000] [--queries 4096] [--repeat 3] [--threads 2]

Items are ~40-word passages cut from WikiText-2; query records are ~1 KB documents, half of them
with a ledger item pasted inside. Prints:
- add time (one all-or-nothing commit, index sorted and written once) and the files' bytes per
  ledger shingle;
- `Ledger.open` (every file's sha256 checked, index memory-mapped) vs the index rebuild that the
  previous layout made on every query (sort all shingle hashes and their owners): the ratio is
  what a `ledger query` no longer pays;
- containment query time for the batch, found = planted asserted, and the resident memory the
  opened ledger adds per ledger shingle (RSS after open + query, minus before);
- cold: a fresh process per run (interpreter, imports, `Ledger.open`, scoring the same
  records), by the API (`MinHashDetector.score`) and by the command line (`collapseguard ledger
  query --json`), in turn.
Best and median of `--repeat`, interleaved; thread pools pinned to --threads everywhere. There
is no peer here: the open is compared with the previous layout's rebuild, the rest stands alone.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "wiki.train.chunk-shuffled.tokens"


COLD_API = """
import json, sys
import numpy as np
from collapseguard.detectors.dedup.ledger import MinHashConfig, MinHashDetector
docs = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
print(int(np.sum(MinHashDetector(MinHashConfig(sys.argv[1])).score(docs) >= 0.999)))
"""


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def passages(count: int, words: int = 40) -> list[str]:
    out = []
    for line in DATA.open(encoding="utf-8"):
        tokens = line.split()
        if not tokens or tokens[0] == "=":
            continue
        for i in range(0, len(tokens), words):
            if len(tokens[i : i + words]) >= 20:
                out.append(" ".join(tokens[i : i + words]))
    rng = random.Random(0)
    while len(out) < count:  # WikiText-2 has ~50k passages: extend with shuffled recombinations
        a, b = rng.sample(out[:50_000], 2)
        out.append(" ".join(a.split()[:20] + b.split()[20:]) + f" v{len(out)}")
    return out[:count]


def records(items: list[str], count: int, seed: int = 1) -> tuple[list[str], list[int]]:
    """~1 KB documents of random ledger-free words; every other one has a ledger item pasted in."""
    rng = random.Random(seed)
    vocab = [f"q{i}" for i in range(20000)]
    docs, planted = [], []
    for k in range(count):
        words = [rng.choice(vocab) for _ in range(150)]
        if k % 2 == 0:
            j = rng.randrange(len(items))
            words[75:75] = items[j].split()
            planted.append(j)
        else:
            planted.append(-1)
        docs.append(" ".join(words))
    return docs, planted


def main() -> None:
    global DATA
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="ledger items (~40-word passages)")
    parser.add_argument("--queries", type=int, default=4096, help="query records (~1 KB)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of each measurement (>= 3)")
    parser.add_argument("--threads", type=int, default=2, help="numba/OpenMP/BLAS threads, this process and the cold ones")
    parser.add_argument("--shingle-hash", choices=["sha1", "xxh64"], default="sha1", help="the ledger's shingle hash")
    parser.add_argument("--data", type=Path, default=DATA, help="WikiText-2 train tokens file")
    args = parser.parse_args()
    if args.repeat < 3:
        sys.exit("error: --repeat must be >= 3")
    DATA = args.data
    if not DATA.exists():
        print(f"skipped: {DATA} not found")
        return
    timing.pin_threads(args.threads)
    import numpy as np

    from collapseguard.detectors.dedup.ledger import (
        Ledger,
        MinHashConfig,
        MinHashDetector,
        SketchConfig,
    )

    items = passages(args.items)
    docs, planted = records(items, args.queries)
    n_planted = sum(1 for j in planted if j >= 0)
    print(f"load average before: {timing.load_average()}; {args.threads} thread(s)")
    root = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    try:
        t = time.perf_counter()
        book = Ledger.create(root / "L", SketchConfig(shingle_hash=args.shingle_hash))
        with book.transaction() as tx:
            for start in range(0, len(items), 4096):
                tx.add(items[start : start + 4096], [f"g{i}" for i in range(start, min(start + 4096, len(items)))])
        t_add = time.perf_counter() - t
        shingles = int(book.sizes.sum())
        files = {p.name: p.stat().st_size for p in (root / "L").iterdir()}
        index_bytes = sum(v for k, v in files.items() if k.startswith("index-"))
        chunk_bytes = sum(v for k, v in files.items() if k.startswith("chunk-"))
        print(f"ledger ({args.shingle_hash}): {len(book)} items, {shingles} shingles; add (one commit, one run) {t_add:.2f} s")
        print(f"  on disk: index {index_bytes / shingles:.1f} B/shingle, chunks {chunk_bytes / shingles:.1f} B/shingle")
        del book

        def rebuild():  # what every query paid before the index was persisted
            b = Ledger.open(root / "L")
            hashes = b.items.set_hashes
            owner = np.repeat(np.arange(len(b)), b.sizes)
            order = np.argsort(hashes, kind="stable")
            return hashes[order], owner[order]

        opened = timing.interleaved(args.repeat, {"open": timing.timed(lambda: Ledger.open(root / "L")),
                                                  "rebuild": timing.timed(rebuild)})
        print(f"open (sha256-checked, index memory-mapped) {timing.seconds(opened['open'])}   open + index rebuild "
              f"(previous layout) {timing.seconds(opened['rebuild'])}   ratio {timing.ratio(opened['rebuild'], opened['open'])}"
              f"   (best / median of {args.repeat})")

        before = rss_bytes()
        detector = MinHashDetector(MinHashConfig(str(root / "L")))
        detector.score(docs[:8])
        warm, out = timing.interleaved_calls(args.repeat, {"score": lambda: detector.score(docs)})
        scores = out["score"]
        after = rss_bytes()
        found = np.flatnonzero(scores >= 0.999)
        assert set(found.tolist()) >= {k for k, j in enumerate(planted) if j >= 0}, "a planted item was missed"
        mb = sum(len(d) for d in docs) / 1e6
        best, med = timing.best_median(warm["score"])
        print(f"warm: containment score of {len(docs)} records ({mb:.1f} MB), ledger open: {timing.seconds(warm['score'])} "
              f"({len(docs) / best:.0f} / {len(docs) / med:.0f} records/s); planted found: {n_planted}/{n_planted}")
        print(f"resident memory added by the opened ledger and the queries: {(after - before) / shingles:.1f} B/shingle "
              f"({(after - before) / 1e6:.0f} MB)")
        matches = detector.ledger.query(docs[:512], threshold=0.8)
        wrong = [m for m in matches if planted[m.record] < 0 or m.ledger_id != f"g{planted[m.record]}"]
        print(f"query(512 records): {len(matches)} matches, {len(wrong)} not the planted item (duplicates among passages)")

        queries = root / "queries.jsonl"
        queries.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
        env = timing.child_env(args.threads)
        counts = {}

        def api() -> float:
            wall, stdout = timing.python_child(COLD_API, str(root / "L"), str(queries), env=env)
            counts["api"] = int(stdout.split()[-1])
            return wall

        def cli() -> float:
            wall, _, stdout = timing.fresh_process([sys.executable, "-m", "collapseguard.cli.main", "ledger", "query",
                                                    str(root / "L"), str(queries), "--threshold", "0.999", "--json"], env)
            counts["cli"] = json.loads(stdout)["records_matched"]
            return wall

        cold = timing.interleaved(args.repeat, {"api": api, "cli": cli})
        print(f"cold (fresh process: imports, open, score all {len(docs)} records), best / median of {args.repeat}: "
              f"API {timing.seconds(cold['api'])}, `ledger query --json` {timing.seconds(cold['cli'])}; "
              f"records at containment 1: API {counts['api']}, CLI {counts['cli']} (planted {n_planted})")
        print(f"load average after: {timing.load_average()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
