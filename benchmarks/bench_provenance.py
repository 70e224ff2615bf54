"""`collapseguard provenance build` against `sha256sum` of the same files, both fresh processes.

    nice python benchmarks/bench_provenance.py [--data ../shared/data/wikitext-2] [--include '*.tokens'] [--repeats 5]

Every run is a fresh process (interpreter start-up and imports included; what a user runs):
ours is the `collapseguard` console script beside this Python (else `python -m
collapseguard.cli.main`) writing a manifest of every file matching --include under --data
(sha256, size, record count, dataset identity) to a temporary folder; the peer is coreutils'
`sha256sum` of the same files (digests only). The two run in turn, --repeats rounds, one thread
each; best and median. The manifest's digests are checked against sha256sum's.

With --curate N: `collapseguard curate` of 4 human and 4 synthetic parquet shards of N records
(50 random words each; unsigned pools), human fraction 0.3, 2N records out, --repeats fresh
processes (no peer): wall seconds and peak RSS of each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"


def cli_prefix() -> list[str]:
    """The `collapseguard` console script beside this Python, else `python -m collapseguard.cli.main`."""
    exe = shutil.which("collapseguard", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "collapseguard.cli.main"]


def ours_command(data: Path, include: str, out: Path) -> list[str]:
    return cli_prefix() + ["provenance", "build", str(data), "--include", include, "--out", str(out), "--overwrite"]


def manifest_digests(path: Path) -> dict[str, str]:
    """{file name: sha256} of an in-toto statement's subjects."""
    return {Path(s["name"]).name: s["digest"]["sha256"] for s in json.loads(path.read_text())["subject"]}


RSS_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r)")


def curate_pools(root: Path, per_shard: int) -> None:
    """4 human and 4 synthetic parquet shards of `per_shard` records of 50 words."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    for pool in ("human", "synthetic"):
        (root / pool).mkdir()
        for k in range(4):
            texts = [" ".join(rng.choices(vocab, k=50)) for _ in range(per_shard)]
            pq.write_table(pa.table({"text": texts}), root / pool / f"part-{k}.parquet")


def bench_curate(per_shard: int, repeats: int) -> None:
    env = timing.child_env(1)
    with tempfile.TemporaryDirectory(prefix="bench_curate.") as tmp:
        root = Path(tmp)
        curate_pools(root, per_shard)
        cli = cli_prefix()
        runs = []
        for r in range(repeats):
            argv = [sys.executable, "-c", RSS_WRAPPER, *cli, "curate", "--human", str(root / "human"), "--synthetic",
                    str(root / "synthetic"), "--allow-unsigned", "--human-fraction", "0.3", "--size", str(2 * per_shard),
                    "--seed", "1", "--out", str(root / f"mix{r}")]
            wall, _, stdout = timing.fresh_process(argv, env)
            runs.append((wall, int(stdout.split()[-1]) / 1024))
    walls = [w for w, _ in runs]
    print(f"curate of 4 x {per_shard} human and 4 x {per_shard} synthetic records (50 words), {2 * per_shard} out, fresh "
          f"process, one thread: {timing.seconds(walls, 2)} (best / median of {repeats}); peak RSS "
          f"{min(m for _, m in runs):.0f} / {sorted(m for _, m in runs)[len(runs) // 2]:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder of data files to build a manifest of")
    ap.add_argument("--include", default="*.tokens", help="glob of the files to cover (read as text)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved fresh-process runs of each side (>= 3)")
    ap.add_argument("--curate", type=int, default=0, metavar="N", help="also time curate on 2 x 4 shards of N records")
    args = ap.parse_args()
    if args.repeats < 3 or args.curate < 0:
        sys.exit("error: --repeats must be >= 3 and --curate >= 0")
    files = sorted(p for p in args.data.glob(args.include) if p.is_file())
    if not files:
        sys.exit(f"error: no files matching {args.include!r} under {args.data}; pass --data DIR --include GLOB")
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        sys.exit("error: sha256sum (coreutils) not found on PATH")
    env = timing.child_env(1)
    load_before = timing.load_average()
    with tempfile.TemporaryDirectory(prefix="bench_provenance.") as tmp:
        out = Path(tmp) / "manifest.json"
        sums = {}

        def ours() -> float:
            return timing.fresh_process(ours_command(args.data, args.include, out), env)[0]

        def peer() -> float:
            wall, _, stdout = timing.fresh_process([sha256sum, *map(str, files)], env)
            sums.update({Path(name.lstrip("*")).name: digest for digest, name in (ln.split(None, 1) for ln in stdout.splitlines())})
            return wall

        times = timing.interleaved(args.repeats, {"ours": ours, "sha256sum": peer})
        digests = manifest_digests(out)
    if digests != sums:
        sys.exit(f"error: manifest digests differ from sha256sum's: {digests} vs {sums}")
    mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} files, {mb:.1f} MB under {args.data}; fresh process per run, one thread, best / median of "
          f"{args.repeats} interleaved; load average {load_before} before, {timing.load_average()} after")
    print(f"provenance build (sha256, sizes, records, manifest): {timing.seconds(times['ours'])}")
    print(f"sha256sum (digests only):                            {timing.seconds(times['sha256sum'])}")
    print(f"ours / sha256sum: {timing.ratio(times['ours'], times['sha256sum'])} (above 1: ours is slower)")
    print("digests: identical to sha256sum's")
    if args.curate:
        bench_curate(args.curate, args.repeats)


if __name__ == "__main__":
    main()
