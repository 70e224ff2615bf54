"""learned_v1 scoring speed on one CPU core for 1 KB records: full (MiniLM) vs fast (static) features.

Two small folders are trained first (or passed with --full/--fast): `embeddings,style` (the
MiniLM forward pass per text) and `static,style` (the token table distilled from MiniLM). The
speed of either does not depend on what it was trained on: the mlp head is the same size.

Each run is a fresh process pinned to one core (sched_setaffinity; OMP/MKL/tokenizers threads
1, torch.set_num_threads(1) where torch is used: the static path never imports it) that imports collapseguard, loads the folder and scores
--cold records (the cold rate: records / time from process spawn to their scores, imports and
model load included), then scores --warm other records (the warm, marginal rate). Runs
alternate full, fast, full, fast, ... (--repeats each); the table gives best and median. Rates
are given per wall second and per CPU second of the process (the CPU figure is what one
uncontended core would do; on a shared machine the wall figure is lower).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/bench_learned.py --data ../shared/data --out bench_learned.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RECORD_BYTES = 1000

CHILD = r"""
import json, os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from collapseguard.detectors.learned import LearnedConfig, LearnedDetector
folder, records = sys.argv[1], json.load(open(sys.argv[2]))
cold, warm = records["cold"], records["warm"]
det = LearnedDetector(LearnedConfig(folder))
if "embeddings" in det.meta["features"]:  # the fast path never imports torch
    import torch
    torch.set_num_threads(1)
s = det.score(cold)
cold_end, cold_cpu = time.time(), time.process_time()
t, c = time.perf_counter(), time.process_time()
s2 = det.score(warm)
out = {"cold_end": cold_end, "cold_cpu": cold_cpu, "warm_wall": time.perf_counter() - t,
       "warm_cpu": time.process_time() - c, "finite": int(sum(x == x for x in list(s) + list(s2)))}
if "static" in det.meta["features"]:  # where the warm time goes
    from collapseguard.detectors.learned import decision, normalise_whitespace
    from collapseguard.detectors.style import style_features
    texts = [normalise_whitespace(x) for x in warm]
    parts = {}
    for name, fn in (("static", det.extractor.static_embedder().encode), ("style", style_features)):
        c = time.process_time(); x = fn(texts); parts[name] = time.process_time() - c
    out["parts_cpu"] = parts
print(json.dumps(out))
"""


def records_1kb(data: Path, n: int, seed: int = 0) -> list[str]:
    """n records of <= RECORD_BYTES UTF-8 bytes cut at word boundaries from detect-dev texts (human and machine)."""
    files = sorted((data / "detect-dev").glob("*.raw_data.json"))
    if not files:
        sys.exit(f"error: no detect-dev *.raw_data.json under {data}; pass --data DIR (the folder holding detect-dev/)")
    words = []
    for f in files:
        blob = json.loads(f.read_text(encoding="utf-8"))
        for t in blob["original"] + blob["sampled"]:
            words += t.split(" ")
    rng = np.random.default_rng(seed)
    out, start = [], 0
    starts = rng.integers(0, len(words) - 1000, size=n)
    for start in starts:
        rec, size = [], 0
        for w in words[start:]:
            if size + len(w.encode()) + 1 > RECORD_BYTES:
                break
            rec.append(w)
            size += len(w.encode()) + 1
        out.append(" ".join(rec))
    return out


def train_folder(out: Path, features: str, data: Path, n: int) -> Path:
    """A small learned_v1 folder (mlp, default strength) on the first n pairs of one detect-dev file."""
    from collapseguard.detectors.learned import train_learned

    blob = json.loads((data / "detect-dev" / "xsum_gpt2-xl.raw_data.json").read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    train_learned(blob["original"][:n], blob["sampled"][:n], out, features, "mlp", cv_folds=0)
    print(f"trained {features} on {2 * n} texts in {time.perf_counter() - t0:.0f} s -> {out}", file=sys.stderr)
    return out


def run_once(folder: Path, records_file: Path, n_cold: int) -> dict:
    t0 = time.time()
    _, cpu_total, out = timing.fresh_process([sys.executable, "-c", CHILD, str(folder), str(records_file)],
                                             timing.child_env(1))
    r = json.loads(out.strip().splitlines()[-1])
    return {"cold_wall": r["cold_end"] - t0, "cold_cpu": r["cold_cpu"], "warm_wall": r["warm_wall"],
            "warm_cpu": r["warm_cpu"], "process_cpu": cpu_total, "finite": r["finite"], "parts_cpu": r.get("parts_cpu")}


def summary(runs: list[dict], n_cold: int, n_warm: int) -> dict:
    """Records per second at the best and the median time of each measurement."""
    rate = {"cold_wall": n_cold, "cold_cpu": n_cold, "warm_wall": n_warm, "warm_cpu": n_warm}
    out = {}
    for key, n in rate.items():
        best, median = timing.best_median([run[key] for run in runs])
        out[key] = {"best": round(n / best, 1), "median": round(n / median, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding detect-dev/")
    ap.add_argument("--full", type=Path, default=None, help="an embeddings,style learned_v1 folder (default: train one)")
    ap.add_argument("--fast", type=Path, default=None, help="a static,style learned_v1 folder (default: train one)")
    ap.add_argument("--train-pairs", type=int, default=100, help="pairs the default folders are trained on")
    ap.add_argument("--cold", type=int, default=500, help="records scored by the cold (fresh process) measurement")
    ap.add_argument("--warm", type=int, default=2000, help="further records for the warm (marginal) rate")
    ap.add_argument("--warm-full", type=int, default=100, help="warm records for the full model (it is slow)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved")
    ap.add_argument("--out", type=Path, default=None, help="write every run as JSON")
    args = ap.parse_args()
    if args.repeats < 1 or args.cold < 1 or args.warm < 1 or args.warm_full < 1:
        sys.exit("error: --repeats, --cold, --warm and --warm-full must be >= 1")
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_learned.") as tmp:
        tmp = Path(tmp)
        folders = {"full": args.full or train_folder(tmp / "full", "embeddings,style", args.data, args.train_pairs),
                   "fast": args.fast or train_folder(tmp / "fast", "static,style", args.data, args.train_pairs)}
        recs = records_1kb(args.data, args.cold + max(args.warm, args.warm_full))
        files = {}
        for kind, n_warm in (("full", args.warm_full), ("fast", args.warm)):
            files[kind] = tmp / f"records_{kind}.json"
            files[kind].write_text(json.dumps({"cold": recs[:args.cold], "warm": recs[args.cold:args.cold + n_warm]}))
        runs: dict = {"full": [], "fast": []}
        for rep in range(args.repeats):
            for kind in ("full", "fast"):
                runs[kind].append(run_once(folders[kind], files[kind], args.cold))
                r = runs[kind][-1]
                print(f"run {rep} {kind}: cold {r['cold_wall']:.1f} s wall / {r['cold_cpu']:.1f} s cpu, warm "
                      f"{r['warm_wall']:.2f} s wall / {r['warm_cpu']:.2f} s cpu", file=sys.stderr, flush=True)
    table = {"full": summary(runs["full"], args.cold, args.warm_full), "fast": summary(runs["fast"], args.cold, args.warm)}
    mean_bytes = float(np.mean([len(r.encode()) for r in recs]))
    print(f"\nrecords/s on one core, {mean_bytes:.0f}-byte records; best / median of {args.repeats} interleaved runs\n")
    print("| model | cold (wall) | cold (cpu) | warm (wall) | warm (cpu) |\n|---|---:|---:|---:|---:|")
    for kind, name in (("full", "full: mlp [embeddings,style]"), ("fast", "fast: mlp [static,style]")):
        t = table[kind]
        print(f"| {name} | " + " | ".join(f"{t[k]['best']:.0f} / {t[k]['median']:.0f}"
                                          for k in ("cold_wall", "cold_cpu", "warm_wall", "warm_cpu")) + " |")
    parts = [r["parts_cpu"] for r in runs["fast"] if r["parts_cpu"]]
    if parts:
        share = {k: float(np.median([p[k] for p in parts])) for k in parts[0]}
        print("\nfast, warm, CPU s per 1000 records: " + ", ".join(f"{k} {1000 * v / args.warm:.2f}" for k, v in share.items()))
    if args.out:
        from collapseguard.io.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps({"record_bytes_mean": mean_bytes, "cold": args.cold,
                                                "warm": {"full": args.warm_full, "fast": args.warm},
                                                "summary": table, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
