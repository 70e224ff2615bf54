"""End-to-end scan benchmark: `collapseguard scan` (ledger containment + KGW watermark) against a
naive per-record loop with datasketch (MinHash + MinHashLSHEnsemble containment) and transformers'
WatermarkDetector; peak memory at two corpus sizes; the Ray engine's overhead.

Records are ~1 KB of WikiText-2 train text (`../shared/data`); 1% of them have a ledger entry
pasted in. The tokenizer is a byte-level BPE trained here on WikiText-2. Both sides use one
thread (torch, numba, BLAS); repeats are interleaved; best and median of --repeats are reported. The
naive loop is timed on --naive-records records (it is far slower) and compared in records/s.

    nice .venv/bin/python benchmarks/bench_scan.py --records 100000
    nice .venv/bin/python benchmarks/bench_scan.py --memory 10000,200000
    nice .venv/bin/python benchmarks/bench_scan.py --ray --records 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

timing.pin_threads(1)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"
KEY = 15485863
SHARD = 10_000


def documents(n: int, size: int = 1000) -> list[str]:
    """`n` documents of ~`size` characters, consecutive WikiText-2 train lines glued together (cycled)."""
    src = DATA / "wiki.train.chunk-shuffled.tokens"
    if not src.exists():
        sys.exit(f"{src}: WikiText-2 not found; this benchmark needs ../shared/data")
    lines = [t.strip() for t in src.read_text(encoding="utf-8").splitlines() if len(t.strip()) > 40]
    docs, buf, i = [], "", 0
    while len(docs) < n:
        buf += (" " if buf else "") + lines[i % len(lines)]
        i += 1
        if len(buf) >= size:
            docs.append(buf[:size] + f" ({len(docs)})")  # distinct even when the lines cycle
            buf = ""
    return docs


def build(root: Path, n: int, shard: int = SHARD) -> tuple[Path, list[str], list[str]]:
    """Tokenizer, ledger (2,000 entries), parquet shards with 1% pasted entries, and a policy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from collapseguard.detectors.dedup.ledger import Ledger
    from collapseguard.detectors.lm.tiny import train_tokenizer

    docs = documents(n + 2000)
    entries, docs = docs[:2000], docs[2000:]
    for i in range(0, len(docs), 100):
        docs[i] = docs[i][:400] + " " + entries[i % len(entries)]
    tok = train_tokenizer(docs[:5000], vocab_size=8000)
    tok.save_pretrained(str(root / "tok"))
    Ledger.create(root / "gens.ledger").add(entries, [f"gen-{i}" for i in range(len(entries))])
    (root / "data").mkdir()
    for s in range(0, len(docs), shard):
        pq.write_table(pa.table({"text": docs[s:s + shard]}), root / "data" / f"part-{s // shard:05d}.parquet")
    (root / "collapseguard.toml").write_text(
        'batch_size = 2048\n[[detectors]]\nname = "minhash_v1"\nthreshold = 0.8\noptions = { ledger = "gens.ledger" }\n'
        '[[detectors]]\nname = "kgw_v1"\nthreshold = 4.0\noptions = { tokenizer_dir = "tok" }\n')
    return root, docs, entries


def scan(root: Path, out: str, *extra) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) of one `collapseguard scan` in a fresh process."""
    cmd = [sys.executable, "-c", "import resource,subprocess,sys; r=subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r)",
           sys.executable, "-m", "collapseguard.cli.main", "scan", str(root / "data"), "--out", str(root / out),
           "--policy", str(root / "collapseguard.toml"), "--overwrite", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(proc.stderr)
    return time.perf_counter() - start, int(proc.stderr.strip().splitlines()[-1])


def naive(root: Path, docs: list[str], entries: list[str]) -> float:
    """Records/s of a per-record loop: datasketch MinHash + LSHEnsemble containment, transformers' WatermarkDetector."""
    import torch
    from datasketch import MinHash, MinHashLSHEnsemble
    from transformers import AutoTokenizer, GPT2Config, WatermarkDetector, WatermarkingConfig

    torch.set_num_threads(1)

    def mh(text):
        words = text.split()
        m = MinHash(num_perm=128, seed=1)
        for i in range(max(1, len(words) - 4)):
            m.update(" ".join(words[i:i + 5]).encode("utf-8"))
        return m, max(1, len(words) - 4)

    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(root / "tok"))
    ensemble = MinHashLSHEnsemble(threshold=0.8, num_perm=128, num_part=16)
    ensemble.index([(f"gen-{i}", *mh(e)) for i, e in enumerate(entries)])
    wcfg = WatermarkingConfig(greenlist_ratio=0.25, hashing_key=KEY, seeding_scheme="lefthash", context_width=1)
    detector = WatermarkDetector(GPT2Config(vocab_size=len(tok)), "cpu", wcfg)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    for text in docs:
        m, size = mh(text)
        list(ensemble.query(m, size))
        ids = torch.tensor([tok(text)["input_ids"]])
        detector(ids, return_dict=True)
    return len(docs) / (time.perf_counter() - start), setup


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="the WikiText-2 folder (wiki.train.chunk-shuffled.tokens)")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--naive-records", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory", default=None, help="comma-separated corpus sizes for the peak-memory table")
    ap.add_argument("--ray", action="store_true", help="time the Ray engine against the local one")
    ap.add_argument("--one-shard", action="store_true", help="--memory: the whole corpus in one parquet file")
    args = ap.parse_args()
    DATA = args.data
    with tempfile.TemporaryDirectory() as tmp:
        if args.memory:
            for n in map(int, args.memory.split(",")):
                root = Path(tmp) / f"m{n}"
                root.mkdir()
                build(root, n, n if args.one_shard else SHARD)
                secs, rss = scan(root, "out")
                print(json.dumps({"records": n, "seconds": round(secs, 1), "peak_rss_mb": round(rss / 1024)}))
            return
        root, docs, entries = build(Path(tmp), args.records)
        if args.ray:
            load_before = timing.load_average()
            rows = timing.interleaved(args.repeats, {
                "local x1": lambda: scan(root, "local1")[0],
                "local x2": lambda: scan(root, "local2", "--workers", "2")[0],
                "ray x2": lambda: scan(root, "ray", "--engine", "ray", "--workers", "2")[0]})
            print(f"each run a fresh `collapseguard scan` process (imports, a fresh Ray instance for ray); best / median "
                  f"of {args.repeats} interleaved; load average {load_before} before, {timing.load_average()} after")
            for k, v in rows.items():
                best, med = timing.best_median(v)
                print(f"{k:9s} {timing.seconds(v, 1)}  {args.records / best:6.0f} / {args.records / med:6.0f} records/s  "
                      f"({timing.ratio(v, rows['local x2'])} local x2)")
            return
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(args.records / scan(root, "out")[0])
            theirs.append(naive(root, docs[: args.naive_records], entries)[0])
        print(f"records: {args.records:,} of ~1 KB (1% with a pasted ledger entry); ledger 2,000 entries; one thread each")
        med = lambda v: float(sorted(v)[len(v) // 2])  # noqa: E731
        print(f"collapseguard scan (whole command, incl. start-up): {max(ours):8.0f} / {med(ours):8.0f} records/s  "
              f"(best / median of {args.repeats})")
        print(f"naive loop (datasketch + WatermarkDetector):       {max(theirs):8.0f} / {med(theirs):8.0f} records/s  "
              f"(on {args.naive_records:,} records)")
        print(f"ratio: {max(ours) / max(theirs):.1f}x best, {med(ours) / med(theirs):.1f}x median")


if __name__ == "__main__":
    main()
