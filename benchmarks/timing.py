"""Shared timing helpers for the benchmarks: pinned thread pools, interleaved repeats, fresh
processes (cold runs, imports included), best / median and the machine's load.

Import from a script in this folder with `sys.path.insert(0, str(Path(__file__).resolve().parent))`.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Fix every native thread pool of this process and its children (call before numpy/torch import)."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def child_env(threads: int | None = None, **extra: str) -> dict[str, str]:
    """This process's environment with this checkout first on PYTHONPATH and, given `threads`, every pool pinned."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS}, TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def fresh_process(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                  ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
    """(wall s, CPU s of the child and its children, stdout) of one command: interpreter start-up,
    imports and everything it does included. Exits with its stderr if its status is not in `ok`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env if env is not None else child_env(), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        name = " ".join(a if len(a) < 60 else a.strip()[:40] + "..." for a in map(str, argv[:4]))
        sys.exit(f"error: {name} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def python_child(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """(wall s, stdout) of `python -c code args...` in a fresh interpreter."""
    wall, _, out = fresh_process([sys.executable, "-c", code, *map(str, args)], env)
    return wall, out


def interleaved(repeats: int, sides: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each side's seconds over `repeats` rounds, the sides run in turn within each round (so the
    machine's load hits all alike). Every callable returns the seconds it measured."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            times[name].append(fn())
    return times


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A callable returning the wall seconds of one call of `fn`."""
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    return run


def interleaved_calls(repeats: int, sides: dict[str, Callable[[], object]]) -> tuple[dict[str, list[float]], dict[str, object]]:
    """`interleaved` on the wall seconds of each call of every side, and each side's last output."""
    last: dict[str, object] = {}
    times = interleaved(repeats, {name: timed(lambda name=name, fn=fn: last.__setitem__(name, fn())) for name, fn in sides.items()})
    return times, last


def best_median(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def seconds(times: list[float], digits: int = 3) -> str:
    """'best / median s'."""
    best, med = best_median(times)
    return f"{best:.{digits}f} / {med:.{digits}f} s"


def ratio(baseline: list[float], ours: list[float]) -> str:
    """'best / median x' of baseline time over ours (above 1: ours is faster)."""
    return f"{min(baseline) / min(ours):.2f}x / {statistics.median(baseline) / statistics.median(ours):.2f}x"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
