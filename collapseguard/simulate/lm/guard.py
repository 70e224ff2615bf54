"""The real guard inside the LM collapse loop.

Each generation g >= 1 the loop's fresh crawl (samples of M_{g-1} mixed with human blocks) is
written as a parquet shard whose only columns are `text` and `source` (a crawl carries no
truthful origin; the truth is kept beside it in `crawl_truth.parquet`). The guard policy scans
it (`collapseguard.scan.engine.run_scan`), `run_filter` keeps the records it calls human, and,
when a human fraction is asked for, `curate` mixes a signed pool of verified human blocks (the
original training blocks) with the filtered crawl at that fraction. Whatever is left is what
the workflow (replace / accumulate / subsample) adds to the training data.

The built-in policy ``default``: `kgw_v1` (the loop's KGW key; a share of the generator's
documents carries the watermark), `minhash_v1` over a ledger of the outputs a provider logged
(a share of every generation's documents), and `gen0_ppl_v1` with the loop's own generation-0
model; calibrated each generation (`scan.calibrate.calibrate_policy`) to `fpr` on the held-out
human test blocks, with the previous model's continuations of the held-out prompts (marked
and logged at the same shares) as the labelled machine text that gives the scan its TPR.

Run-folder files: ``keys/`` holds the KGW key and the Ed25519 key that signs the curate pools
(private, mode 0600; never printed); ``seed_<s>/gen_<g>/guard/`` the crawl, policy,
calibration, scan, filter and curate outputs of that generation.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.io.atomic import write_parquet_atomic, write_text_atomic

GUARD_METRICS = ("guard_tpr", "guard_fpr", "share_before", "share_after", "share_estimate", "share_low",
                 "share_high", "human_lost", "human_restored", "guard_kept_blocks")
MINHASH_THRESHOLD = 0.5  # containment of a logged output in the record (fixed: human text scores ~0)


ATTEMPT_MARKER = ".collapseguard-guard-attempt"


def start_attempt(folder: Path) -> None:
    """An empty `folder` for this generation's guard. A folder left by a killed attempt carries
    the marker written here and is removed; any other existing folder is refused, never deleted."""
    if folder.exists():
        if not (folder / ATTEMPT_MARKER).is_file():
            raise CollapseguardError(f"{folder}: exists but was not written by a guarded run; move it away "
                                     "or choose another --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / ATTEMPT_MARKER).write_text("written by `simulate run --guard`; removed when the attempt restarts\n")


@dataclass(frozen=True)
class GuardConfig:
    """The guard of a guarded LM loop.

    policy: ``default`` (the built-in policy above) or a guard policy TOML with its calibration.
    watermark_share / ledger_share: share of the generator's documents that carry the KGW
    watermark / that the provider logs in the ledger. restore_human: curate a training set as
    large as the crawl from the kept crawl and verified human blocks, with a human fraction of
    at least this (more when the kept crawl is too small to fill the rest; 0 = only refill
    what the guard removed); None: train on the kept crawl as it is (a smaller set).
    fpr: the default policy's calibrated false-positive rate.
    """

    policy: str = "default"
    watermark_share: float = 0.0
    ledger_share: float = 0.0
    restore_human: float | None = None
    fpr: float = 0.05

    def __post_init__(self):
        for name in ("watermark_share", "ledger_share", "fpr"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise CollapseguardError(f"--{name.replace('_', '-')} must lie in [0, 1], got {v}")
        if self.restore_human is not None and not 0.0 <= self.restore_human <= 1.0:
            raise CollapseguardError(f"--restore-human must lie in [0, 1], got {self.restore_human}")
        if self.policy != "default" and not Path(self.policy).is_file():
            raise CollapseguardError(f"{self.policy}: no such guard policy file; pass --guard default or a policy TOML")


def document_marks(n: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool: exactly round(share x n) documents, chosen at random."""
    marks = np.zeros(n, dtype=bool)
    marks[rng.choice(n, size=int(round(share * n)), replace=False)] = True
    return marks


def run_keys(out: Path, need_watermark: bool) -> dict:
    """The run's KGW key (made once, kept in `out/keys/watermark.key`) and pool signing key."""
    from collapseguard.provenance.keys import _write_private, generate_keypair

    folder = out / "keys"
    folder.mkdir(exist_ok=True)
    keys = {"sign": folder / "pool.key"}
    if not keys["sign"].exists():
        generate_keypair(keys["sign"])
    if need_watermark:
        path = folder / "watermark.key"
        if not path.exists():
            _write_private(path, str(int.from_bytes(os.urandom(7), "big")).encode())
        keys["watermark"] = int(path.read_text().strip())
    return keys


@contextlib.contextmanager
def watermark_env(key: int | None):
    """The KGW key in the environment, where the policy's kgw_v1 reads it, for the block's duration."""
    from collapseguard.scan.policy import KGW_KEY_ENV

    old = os.environ.get(KGW_KEY_ENV)
    if key is not None:
        os.environ[KGW_KEY_ENV] = str(key)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(KGW_KEY_ENV, None)
        else:
            os.environ[KGW_KEY_ENV] = old


def write_default_policy(folder: Path, gen0_dir: Path, ledger: Path | None, watermark: bool) -> Path:
    """The built-in policy, its paths relative to `folder`."""
    rel = os.path.relpath(gen0_dir, folder)
    lines = ['text_column = "text"', 'calibration = "calibration.json"', "batch_size = 256"]
    if ledger is not None:
        lines += ["[[detectors]]", 'name = "minhash_v1"', f"threshold = {MINHASH_THRESHOLD}",
                  f'options = {{ ledger = "{os.path.relpath(ledger, folder)}" }}']
    if watermark:
        lines += ["[[detectors]]", 'name = "kgw_v1"', f'options = {{ tokenizer_dir = "{rel}" }}']
    lines += ["[[detectors]]", 'name = "gen0_ppl_v1"', f'options = {{ model_dir = "{rel}", device = "cpu" }}']
    path = folder / "collapseguard.toml"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def build_ledger(path: Path, texts: list[str]) -> Path | None:
    """A ledger of the logged outputs so far (None when nothing was logged)."""
    if not texts:
        return None
    from collapseguard.detectors.dedup.ledger import Ledger

    Ledger.create(path).add(texts, [f"out-{i}" for i in range(len(texts))])
    return path


def calibrate_default(policy_path: Path, human: list[str], machine: list[str], fpr: float, seed: int) -> None:
    from collapseguard.scan.calibrate import calibrate_policy, save_policy_calibration
    from collapseguard.scan.policy import load_policy

    cal = calibrate_policy(load_policy(policy_path), human, fpr, machine=machine or None, seed=seed,
                           record_domain=False)
    save_policy_calibration(cal, policy_path.parent / "calibration.json")


def write_pool(folder: Path, texts: list[str], sources: list[str], origin: str | None, key: Path) -> Path:
    """A pool folder: one parquet shard and a manifest signed with the run's key."""
    import pyarrow as pa

    from collapseguard.provenance.dsse import sign_statement
    from collapseguard.provenance.manifest import build_statement, write_manifest

    cols = {"text": texts, "source": sources}
    if origin is not None:
        cols["origin"] = [origin] * len(texts)
    write_parquet_atomic(pa.table(cols), folder / "data" / "part-00000.parquet")
    write_manifest(folder / "manifest.json", sign_statement(build_statement(folder, ["data/part-00000.parquet"]), key))
    return folder


def sources_to_index(sources: list[str], prefix: str) -> np.ndarray:
    return np.asarray([int(s.split("#", 1)[1]) for s in sources if s.startswith(prefix + "#")], dtype=np.int64)


def rate(hits: np.ndarray, mask: np.ndarray) -> float:
    return float(hits[mask].mean()) if mask.any() else float("nan")


class LoopGuard:
    """The guard of one seed's loop: state shared by its generations (keys, logged outputs)."""

    def __init__(self, config: GuardConfig, out: Path, seed: int, tokenizer, test_texts: list[str],
                 keys: dict):
        self.config, self.out, self.seed, self.tok = config, out, seed, tokenizer
        self.test_texts, self.keys = test_texts, keys
        self.logged: list[str] = []  # every output the provider logged so far (ledger contents)
        self.machine: list[str] = []  # the previous model's held-out continuations (calibration)

    def record_outputs(self, texts: list[str], logged: np.ndarray, heldout: list[str], heldout_logged: np.ndarray):
        """After generation g: its logged outputs join the ledger; its held-out continuations calibrate g+1."""
        self.logged += [t for t, m in zip(texts, logged) if m]
        self.logged += [t for t, m in zip(heldout, heldout_logged) if m]
        self.machine = list(heldout)

    def apply(self, g: int, fresh, original, gdir: Path):
        """(the blocks the guard lets through, metrics) for generation g's crawl `fresh`."""
        from collapseguard.scan.engine import ScanConfig, run_scan
        from collapseguard.scan.filter import FilterConfig, run_filter

        folder = gdir / "guard"
        start_attempt(folder)
        texts = self.tok.batch_decode(fresh.ids.tolist())
        crawl = folder / "crawl"
        import pyarrow as pa

        write_parquet_atomic(pa.table({"text": texts, "source": [f"crawl#{i}" for i in range(len(texts))]}),
                             crawl / "part-00000.parquet")
        write_parquet_atomic(fresh.table(self.tok, g), folder / "crawl_truth.parquet")
        key = self.keys.get("watermark")
        with watermark_env(key):
            if self.config.policy == "default":
                ledger = build_ledger(folder / "ledger", self.logged)
                policy = write_default_policy(folder, self.out / f"seed_{self.seed}" / "gen_000" / "model", ledger,
                                              key is not None and self.config.watermark_share > 0)
                calibrate_default(policy, self.test_texts, self.machine, self.config.fpr, self.seed * 1000 + g)
            else:
                policy = Path(self.config.policy)
            summary = run_scan(ScanConfig([str(crawl)], str(folder / "scan"), policy=str(policy)))
        run_filter(FilterConfig([str(crawl)], str(folder / "scan"), str(folder / "filtered")))
        import pyarrow.parquet as pq

        from collapseguard.scan.shard import attributes_path

        kept_src = pq.read_table(folder / "filtered" / "kept" / "part-00000.parquet", columns=["source"])
        kept = np.zeros(len(fresh), dtype=bool)
        kept[sources_to_index(kept_src.column("source").to_pylist(), "crawl")] = True
        decision = pq.read_table(attributes_path(folder / "scan", "part-00000.parquet"), columns=["decision"])
        flagged = np.asarray(decision.column("decision").to_pylist()) == "synthetic"
        result = fresh.take(np.flatnonzero(kept))
        restored = 0
        if self.config.restore_human is not None:
            result, restored = self.restore(folder, fresh, original, kept)
        return result, self.metrics(fresh, flagged, kept, result, summary) | {"human_restored": restored / len(fresh)}

    def restore(self, folder: Path, fresh, original, kept: np.ndarray):
        """Verified human blocks and the kept crawl, mixed by `curate` at the asked human fraction."""
        from collapseguard.curate.mix import CurateConfig, curate
        from collapseguard.provenance.keys import public_path

        f = self.config.restore_human
        texts = self.tok.batch_decode(original.ids.tolist())
        human = write_pool(folder / "human_pool", texts, [f"human#{i}" for i in range(len(texts))], "human",
                           self.keys["sign"])
        kept_texts = self.tok.batch_decode(fresh.ids[kept].tolist())
        crawl = write_pool(folder / "kept_pool", kept_texts, [f"crawl#{i}" for i in np.flatnonzero(kept)], None,
                           self.keys["sign"])
        size = len(fresh)
        # the asked fraction, raised until the kept crawl fills the rest: round(F x size) human
        f = max(f, (size - int(kept.sum())) / size)
        config = CurateConfig(human=(str(human),), synthetic=(str(crawl),) if kept.any() else (), human_fraction=f,
                              size=size, seed=self.seed, public_keys=(str(public_path(self.keys["sign"])),))
        curate(config, folder / "curated", key=self.keys["sign"])
        import pyarrow.parquet as pq

        sources = pq.read_table(folder / "curated" / "data", columns=["source"]).column("source").to_pylist()
        from collapseguard.simulate.lm.loop import Blocks

        verified = sources_to_index(sources, "human")
        return Blocks.concat([original.take(verified), fresh.take(sources_to_index(sources, "crawl"))]), len(verified)

    @staticmethod
    def metrics(fresh, flagged: np.ndarray, kept: np.ndarray, result, summary: dict) -> dict:
        """Truth bookkeeping: the guard's actual error rates (records it called synthetic), the
        synthetic share before and after (filter and curate), and the share of the crawl's human
        blocks that did not pass (abstentions included: what a user keeps is what counts)."""
        syn = fresh.origin == "synthetic"
        share = summary.get("synthetic_share") or {}

        def num(v):
            return float("nan") if v is None else float(v)

        return {"guard_tpr": rate(flagged, syn), "guard_fpr": rate(flagged, ~syn),
                "share_before": float(syn.mean()) if len(syn) else float("nan"),
                "share_after": float(np.mean(result.origin == "synthetic")) if len(result) else float("nan"),
                "share_estimate": num(share.get("estimate")), "share_low": num(share.get("low")),
                "share_high": num(share.get("high")),
                "human_lost": rate(~kept, ~syn), "guard_kept_blocks": float(len(result))}

