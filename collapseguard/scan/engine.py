"""Run a scan: find the shards, skip the ones already done, scan the rest on an engine, summarise.

Engines: `local` (this process, or `--workers N` processes, each loading the detectors once) and
`ray` (Ray Data over the same shards: one actor per worker, a fraction of a CPU each, each
loading the detectors once and running the same per-shard code, so outputs are identical).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.shards import Shard, discover, input_folders, shard_sha256
from collapseguard.scan.shard import is_done, other_input, read_marker, scan_shard

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")


@dataclass
class ScanConfig:
    """What `collapseguard scan` takes: inputs, output folder, policy file and how to run."""

    inputs: list[str]
    out: str
    policy: str | None = None
    engine: str = "local"
    workers: int = 1
    overwrite: bool = False
    text_column: str | None = None
    ray_address: str | None = None
    cpus_per_worker: float = 0.5
    extra: dict = field(default_factory=dict)
    attributes: bool = True  # False: markers and summary.json/md only, no attribute shards or plots (the hooks)
    drift: bool = True  # False: no calibration drift check (the hooks, which do not report it)

    def check(self) -> None:
        check_choice("engine", self.engine, ENGINES)
        if self.workers < 1:
            raise CollapseguardError(f"--workers must be at least 1, got {self.workers}")
        if not 0 < self.cpus_per_worker <= 64:
            raise CollapseguardError(f"--cpus-per-worker must be in (0, 64], got {self.cpus_per_worker}")


def load_guard(policy_file, text_column=None):
    """The policy (text column overridden when given), its calibration and the run key parts."""
    from collapseguard.scan.calibrate import calibration_hash, load_policy_calibration
    from collapseguard.scan.policy import load_policy

    policy = load_policy(policy_file)
    if text_column:
        policy.text_column = text_column
    cal = load_policy_calibration(policy)
    cal_hash = calibration_hash(policy.calibration_path) if policy.calibration_path else "none"
    return policy, cal, {"policy_fingerprint": policy.fingerprint(), "calibration_hash": cal_hash}


def run_scan(config: ScanConfig, progress=None) -> dict:
    """Scan every shard not already done; write the summary; return it."""
    from collapseguard.io.outputs import check_not_input
    from collapseguard.scan.distributional import corpus_share, fit_policy_references
    from collapseguard.scan.summary import summarize, write_summary

    config.check()
    out = Path(config.out)
    folders = input_folders(config.inputs)
    check_not_input(out, folders)
    shards = discover(config.inputs, exclude=out)
    policy, cal, key = load_guard(config.policy, config.text_column)
    references = fit_policy_references(policy)  # before scanning: a bad reference fails first
    with claimed_out(out, config, [s.path for s in shards] + folders):
        # the hooks skip the drift check (config.drift) unless its verdict decides records
        drift_report = drift(cal, shards, policy) if config.drift or policy.on_drift == "abstain" else None
        if policy.on_drift == "abstain":  # part of every shard's key: a changed verdict rescans
            key = {**key, "drift_abstain": drift_abstain_reason(drift_report)}
        markers, todo = {}, []
        for shard in shards:
            shard_key = {"input_sha256": shard_sha256(shard), **key}
            marker = None if config.overwrite else read_marker(out, shard)
            check_name_free(out, shard, marker, shard_key["input_sha256"])
            if is_done(marker, out, shard, shard_key):
                markers[shard.rel] = marker
            else:
                todo.append((shard, shard_key))
        if markers:
            log.info("%d shard(s) already done, %d to scan", len(markers), len(todo))
        started = time.perf_counter()
        if todo:
            run = {"local": run_local, "ray": run_ray}[config.engine]
            for marker in run(config, policy, cal, todo, out, progress):
                markers[marker["shard"]] = marker
        summary = summarize(policy, cal, key, [markers[s.rel] for s in shards], out,
                            corpus_share(references, policy, shards) if references else None)
        summary["calibration_drift"] = drift_report
        if key.get("drift_abstain"):
            summary["calibration_drift"]["abstained"] = key["drift_abstain"]
        write_summary(summary, policy, cal, out, plots=config.attributes)
    summary_timing = {"seconds": time.perf_counter() - started, "shards_scanned": len(todo),
                      "shards_skipped": len(shards) - len(todo)}
    return {**summary, "run": summary_timing}


def drift(cal, shards: list[Shard], policy) -> dict | None:
    """How far the scanned text is from the calibration's human text (a sample of up to 1,000
    records, taken evenly from the start of every shard); None without a domain record."""
    if not cal.domain:
        return None
    from collapseguard.detectors.drift import check_texts, speaks, warning_text
    from collapseguard.io.shards import iter_chunks
    from collapseguard.scan.policy import screen_texts

    per_shard, texts = max(1, 1000 // len(shards)), []
    for shard in shards:
        for chunk in iter_chunks(shard, policy.text_column, per_shard, text_only=True):
            texts += [t for t in screen_texts(chunk.texts, policy.max_chars)[0] if t]
            break
    report = check_texts(cal.domain, texts)
    report["warning"] = warning_text(report, cal.fpr_target) if speaks(report) else None
    return report


def drift_abstain_reason(report: dict | None) -> str | None:
    """The abstain reason of every record when the drift test fired (`on_drift = "abstain"`), else None."""
    if not report or not report.get("warn"):  # a shift, not "too few texts to tell"
        return None
    auc = f" (held-out AUC {report['auc']:.2f})" if report.get("auc") is not None else ""
    return f"drift: the scanned text is unlike the calibration's human text{auc}; recalibrate on human text like it"


def claimed_out(out: Path, config: ScanConfig, inputs: list[Path]):
    """The output folder made ours (or refused) for the run, never one of the inputs, inside one or
    holding one; a failed run leaves no empty folders and, when it wrote nothing, no marker."""
    from collapseguard.io.outputs import claimed_output_dir

    return claimed_output_dir(out, lock=True, command="scan", settings={"layout": 1}, overwrite=config.overwrite,
                              inputs=inputs)


def check_name_free(out: Path, shard: Shard, marker: dict | None, sha256: str) -> None:
    """Refuse a shard whose output name holds (per its `marker`) the scan of another input file with
    other bytes (two scans of different inputs into one --out would otherwise replace each other's
    attributes)."""
    other = other_input(marker, shard)
    if other is not None and marker.get("input_sha256") != sha256:
        raise CollapseguardError(
            f"{out}: already holds the scan of {other} under the name {shard.rel!r}, not of {shard.path}; "
            "scan these inputs into another --out (or pass --overwrite to replace it)")


def run_local(config: ScanConfig, policy, cal, todo, out: Path, progress):
    """Shards one after another in this process, or over `workers` processes."""
    if config.workers == 1 or len(todo) == 1:
        for shard, key in todo:
            yield scan_shard(policy, cal, shard, out, key, progress, config.attributes)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(config.workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(config.policy, config.text_column)) as pool:
        futures = [pool.submit(_worker_scan, shard, str(out), key, config.attributes) for shard, key in todo]
        for fut in as_completed(futures):
            marker = fut.result()
            if progress is not None:
                progress(marker["records"])
            yield marker


_WORKER: dict = {}


def one_thread_per_worker() -> None:
    """Workers already split the cores: keep torch and numba from each starting a thread team."""
    import contextlib

    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)
    with contextlib.suppress(ImportError):
        import numba

        numba.set_num_threads(1)


def _init_worker(policy_file, text_column) -> None:
    one_thread_per_worker()
    policy, cal, _ = load_guard(policy_file, text_column)
    _WORKER.update(policy=policy, cal=cal)


def _worker_scan(shard: Shard, out: str, key: dict, attributes: bool = True) -> dict:
    return scan_shard(_WORKER["policy"], _WORKER["cal"], shard, Path(out), key, attributes=attributes)


class ShardScanner:
    """A Ray actor: loads the policy and detectors once, then scans whole shards."""

    def __init__(self, policy_file, text_column, out, attributes=True):
        one_thread_per_worker()
        self.policy, self.cal, _ = load_guard(policy_file, text_column)
        self.out, self.attributes = Path(out), attributes

    def __call__(self, batch: dict) -> dict:
        import json

        markers = []
        for path, rel, fmt, key in zip(batch["path"], batch["rel"], batch["fmt"], batch["key"]):
            shard = Shard(Path(path), rel, fmt)
            markers.append(json.dumps(scan_shard(self.policy, self.cal, shard, self.out, json.loads(key),
                                                 attributes=self.attributes)))
        return {"marker": markers}


def run_ray(config: ScanConfig, policy, cal, todo, out: Path, progress):
    """The same shards through Ray Data, `workers` actors of `cpus_per_worker` CPUs each."""
    import json

    try:
        import ray
    except ImportError:
        raise CollapseguardError("--engine ray needs Ray: pip install 'collapseguard[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, ignore_reinit_error=True)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray").setLevel(logging.WARNING)
    items = [{"path": str(s.path.resolve()), "rel": s.rel, "fmt": s.fmt, "key": json.dumps(k)} for s, k in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardScanner, batch_size=1, concurrency=config.workers, num_cpus=config.cpus_per_worker,
        fn_constructor_kwargs={"policy_file": str(Path(config.policy or "collapseguard.toml").resolve()),
                               "text_column": config.text_column, "out": str(out.resolve()),
                               "attributes": config.attributes})
    for row in ds.iter_rows():
        marker = json.loads(row["marker"])
        if progress is not None:
            progress(marker["records"])
        yield marker
