"""`gen0_ppl_v1`: score texts under a local Gen-0 causal LM (and optionally an observer LM).

Texts are tokenised once, cut into windows no longer than the model's context (each token is
scored exactly once, with at least ``max_length - stride`` tokens of context after the first
window), then all windows of all texts are sorted by length and batched so padding is minimal.
Per-token statistics (log-prob, GLTR log-rank, entropy, Fast-DetectGPT's mean and variance)
are aggregated per text; see `lm_scores` for the formulas and papers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapseguard.detectors.base import Detector, config_dict
from collapseguard.detectors.lm.scores import (
    ALL_COLUMNS,
    STAT_COLUMNS,
    TextScores,
    aggregate,
    cross_entropy_rows,
    token_stats,
)
from collapseguard.errors import CollapseguardError, check_choice

# Main score -> sign that makes "higher = more machine-like".
# Machine text is more predictable: higher log-prob and Fast-DetectGPT discrepancy, lower
# log-rank, entropy and Binoculars ratio.
SCORE_SIGNS = {"fast_detectgpt": 1.0, "log_prob": 1.0, "log_rank": -1.0, "entropy": -1.0, "binoculars": -1.0}
_SCORE_FIELDS = {
    "fast_detectgpt": "fast_detectgpt",
    "log_prob": "mean_log_prob",
    "log_rank": "mean_log_rank",
    "entropy": "mean_entropy",
    "binoculars": "binoculars",
}
# Per-token columns each main score needs (the rest are skipped when only `score()` is asked).
_NEEDS = {
    "fast_detectgpt": frozenset({"gap", "var"}),
    "log_prob": frozenset(),
    "log_rank": frozenset({"log_rank"}),
    "entropy": frozenset({"entropy"}),
    "binoculars": frozenset(),
}
# Fields that change speed or where files live, never the scores: left out of the fingerprint.
RUNTIME_FIELDS = frozenset({"model_dir", "observer_dir", "batch_size", "max_batch_tokens", "device"})
_CHARS_PER_TOKEN_CAP = 32  # cut raw text before tokenising so a 10 MB record costs no more than needed


@dataclass
class PerplexityConfig:
    """Options of `Gen0PerplexityDetector`.

    model_dir: local Hugging Face causal-LM folder (the Gen-0 model; the Binoculars performer).
    observer_dir: optional second model with the same tokenizer (enables `binoculars`).
    score: main score returned by `score()`: fast_detectgpt | log_prob | log_rank | entropy | binoculars.
    min_tokens: texts with fewer scored tokens abstain (NaN).
    max_length: window length in tokens (default: the model's context size).
    stride: step between windows (default: max_length // 2).
    max_text_tokens: only the first this-many tokens of a text are scored (bounds a 10 MB record).
    batch_size / max_batch_tokens: batching limits (windows per batch, padded tokens per batch;
        default 4096 tokens on CUDA, 1024 on CPU, where smaller batches stay in cache and beat
        both 4096-token batches and a per-text loop at 1 and 2 threads; see BENCHMARKS.md).
    device: auto | cpu | cuda | cuda:N.
    """

    model_dir: str
    observer_dir: str | None = None
    score: str = "fast_detectgpt"
    min_tokens: int = 16
    max_length: int | None = None
    stride: int | None = None
    max_text_tokens: int = 8192
    add_special_tokens: bool = True
    batch_size: int = 32
    max_batch_tokens: int | None = None
    device: str = "auto"

    def __post_init__(self):
        check_choice("perplexity score", self.score, SCORE_SIGNS)
        if self.score == "binoculars" and not self.observer_dir:
            raise CollapseguardError("score 'binoculars' needs a second model; pass observer_dir (--observer DIR)")
        for name in ("min_tokens", "max_text_tokens", "batch_size", "max_batch_tokens"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise CollapseguardError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 2:
            raise CollapseguardError(f"max_length must be >= 2, got {self.max_length}")
        if self.stride is not None and self.stride < 1:
            raise CollapseguardError(f"stride must be >= 1, got {self.stride}")


def weight_files(model_dir: Path) -> list[Path]:
    """Weight files of a model folder: safetensors preferred, else PyTorch .bin (loaded weights_only)."""
    st = sorted(model_dir.glob("*.safetensors"))
    return st or sorted(model_dir.glob("pytorch_model*.bin"))


def weights_digest(model_dir: str | Path) -> str:
    """sha256 over a model folder's weight files (names and bytes), so a retrained model gets a new fingerprint."""
    h = hashlib.sha256()
    for f in weight_files(Path(model_dir)):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CollapseguardError(f"device {device!r} asked for but CUDA is not available; pass --device cpu")
    return device


def load_causal_lm(model_dir: str | Path, device: str):
    """(tokenizer, model) from a local folder; refuses folders without weights. Never touches the hub."""
    path = Path(model_dir)
    if not path.is_dir():
        raise CollapseguardError(f"{path}: not a model directory; pass the folder `collapseguard gen0 train --out` wrote")
    files = weight_files(path)
    if not files:
        raise CollapseguardError(f"{path}: no model weights (*.safetensors or pytorch_model.bin); pass a trained model folder")
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise CollapseguardError("the perplexity detector needs transformers: pip install 'collapseguard[lm]'") from None
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, use_safetensors=files[0].suffix == ".safetensors"
        )
    except Exception as exc:  # OSError/ValueError, and safetensors' own error for a corrupt weights file
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CollapseguardError(f"{path}: cannot load tokenizer/model ({type(exc).__name__}: {msg[:200]}); "
                                 "check the folder holds a causal LM (retrain or re-copy it)") from None
    model.to(device).eval()
    return tokenizer, model


def context_size(model) -> int:
    cfg = model.config
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 1:
            return value
    return 1024


@dataclass
class Window:
    """A slice of one text's token ids; tokens at local index >= `first` are scored."""

    text: int
    order: int
    ids: list[int]
    first: int


def plan_windows(text_index: int, ids: list[int], max_length: int, stride: int) -> list[Window]:
    """Cut `ids` into windows of at most `max_length`; every token after the first scored once."""
    n = len(ids)
    if n <= max_length:
        return [Window(text_index, 0, ids, 1)] if n >= 2 else []
    out, start, scored_to = [], 0, 1
    while True:
        end = min(start + max_length, n)
        out.append(Window(text_index, len(out), ids[start:end], scored_to - start))
        scored_to = end
        if end == n:
            return out
        start = min(start + stride, n - max_length)


def plan_batches(windows: list[Window], batch_size: int, max_batch_tokens: int) -> list[list[Window]]:
    """Sort windows by length and group them so each batch pads to at most `max_batch_tokens`."""
    ordered = sorted(windows, key=lambda w: len(w.ids))
    batches, current = [], []
    for w in ordered:
        if current and (len(current) >= batch_size or len(w.ids) * (len(current) + 1) > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(w)
    if current:
        batches.append(current)
    return batches


class Gen0PerplexityDetector(Detector):
    """Scores texts by how predictable they are to the Gen-0 model (higher = more machine)."""

    name = "gen0_ppl_v1"

    def __init__(self, config: PerplexityConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self.tokenizer, self.model = load_causal_lm(config.model_dir, self.device)
        self.observer = None
        if config.observer_dir:
            obs_tok, self.observer = load_causal_lm(config.observer_dir, self.device)
            if obs_tok.get_vocab() != self.tokenizer.get_vocab():
                raise CollapseguardError(
                    f"{config.observer_dir}: observer tokenizer differs from {config.model_dir}'s; "
                    "Binoculars needs two models with the same tokenizer"
                )
        ctx = context_size(self.model)
        if self.observer is not None:
            ctx = min(ctx, context_size(self.observer))
        self.max_length = min(config.max_length or ctx, ctx)
        self.stride = min(config.stride or max(1, self.max_length // 2), self.max_length - 1)
        self.max_batch_tokens = config.max_batch_tokens or (1024 if self.device == "cpu" else 4096)
        self._digests: dict | None = None

    # --- identity -------------------------------------------------------------------------
    def identity(self) -> dict:
        """Name, score-relevant config and the weights' digests (what a calibration must match)."""
        if self._digests is None:
            self._digests = {"model_sha256": weights_digest(self.config.model_dir)}
            if self.config.observer_dir:
                self._digests["observer_sha256"] = weights_digest(self.config.observer_dir)
        cfg = {k: v for k, v in config_dict(self.config).items() if k not in RUNTIME_FIELDS}
        cfg["max_length"], cfg["stride"] = self.max_length, self.stride
        return {"name": self.name, "config": {**cfg, **self._digests}}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()

    # --- tokenising and the forward pass ----------------------------------------------------
    def encode(self, texts: list[str], offsets: bool = False):
        """Token ids (capped at max_text_tokens) per text; whitespace-only texts get none."""
        cap = self.config.max_text_tokens
        clipped = [t[: cap * _CHARS_PER_TOKEN_CAP] if t.strip() else "" for t in texts]
        enc = self.tokenizer(
            clipped, add_special_tokens=self.config.add_special_tokens,
            return_offsets_mapping=offsets, return_attention_mask=False, verbose=False,
        )
        ids = [list(x[:cap]) if t else [] for x, t in zip(enc["input_ids"], clipped, strict=True)]
        if offsets:
            return ids, [list(o[:cap]) for o in enc["offset_mapping"]]
        return ids

    def token_arrays(self, ids_per_text: list[list[int]], progress: Callable[[int], None] | None = None,
                     columns=ALL_COLUMNS):
        """Per text: stats (T, 6) for its scored tokens (see `token_stats`) and observer cross-entropies (T,) or None."""
        import torch

        windows = [w for i, ids in enumerate(ids_per_text) for w in plan_windows(i, ids, self.max_length, self.stride)]
        parts: dict[int, list] = {i: [] for i in range(len(ids_per_text))}
        pad = 0
        with torch.inference_mode():
            for batch in plan_batches(windows, self.config.batch_size, self.max_batch_tokens):
                width = len(batch[-1].ids)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                rows, cols, counts = [], [], []
                for b, w in enumerate(batch):
                    n = len(w.ids)
                    input_ids[b, :n] = torch.tensor(w.ids)
                    mask[b, :n] = 1
                    rows.extend([b] * (n - w.first))
                    cols.extend(range(w.first - 1, n - 1))  # position t-1 predicts token t
                    counts.append(n - w.first)
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                r = torch.tensor(rows, device=self.device)
                c = torch.tensor(cols, device=self.device)
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits[r, c]  # (N, V)
                stats = token_stats(logits, input_ids[r, c + 1], columns)
                cross = None
                if self.observer is not None:
                    obs = self.observer(input_ids=input_ids, attention_mask=mask).logits[r, c]
                    cross = cross_entropy_rows(obs, logits)
                offset = 0
                for w, k in zip(batch, counts, strict=True):
                    piece_cross = None if cross is None else cross[offset : offset + k]
                    parts[w.text].append((w.order, stats[offset : offset + k], piece_cross))
                    offset += k
                if progress is not None:
                    progress(len(batch))
        out = []
        for i in range(len(ids_per_text)):
            pieces = sorted(parts[i], key=lambda p: p[0])
            stats = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros((0, len(STAT_COLUMNS)))
            cross = np.concatenate([p[2] for p in pieces]) if pieces and pieces[0][2] is not None else None
            out.append((stats, cross))
        return out

    def count_windows(self, texts: list[str]) -> int:
        """How many windows `score(texts)` will run (for progress bars)."""
        return sum(len(plan_windows(0, ids, self.max_length, self.stride)) for ids in self.encode(texts))

    # --- public scores ----------------------------------------------------------------------
    def score_table(self, texts: list[str], progress: Callable[[int], None] | None = None,
                    columns=ALL_COLUMNS) -> list[TextScores]:
        """All per-text scores; texts with fewer than min_tokens scored tokens get NaNs (abstain)."""
        out = []
        for stats, cross in self.token_arrays(self.encode(list(texts)), progress, columns):
            s = aggregate(stats, cross)
            if s.n_tokens < self.config.min_tokens:
                s = aggregate(np.zeros((0, len(STAT_COLUMNS))))
                s.n_tokens = int(stats.shape[0])
            out.append(s)
        return out

    def score(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The configured main score (higher = more machine); NaN = abstain."""
        key, sign = _SCORE_FIELDS[self.config.score], SCORE_SIGNS[self.config.score]
        table = self.score_table(texts, progress, _NEEDS[self.config.score])
        return np.array([sign * getattr(s, key) for s in table], dtype=float)

    def feature_names(self) -> list[str]:
        """The signed scores `features` returns, in order (binoculars only with an observer)."""
        return [k for k in SCORE_SIGNS if k != "binoculars" or self.observer is not None]

    def features(self, texts: list[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """(len(texts), k) signed scores named by `feature_names` (higher = more machine); NaN rows abstain."""
        names = self.feature_names()
        table = self.score_table(texts, progress)
        rows = [[SCORE_SIGNS[k] * getattr(s, _SCORE_FIELDS[k]) for k in names] for s in table]
        return np.array(rows, dtype=float).reshape(len(table), len(names))

    def token_scores(self, text: str) -> list[dict]:
        """Per scored token: text, character span, log-prob, rank (1 = top choice) and entropy."""
        ids, offs = self.encode([text], offsets=True)
        (stats, _), = self.token_arrays(ids)
        scored_ids, scored_offs = ids[0][1:], offs[0][1:]
        return [
            {
                "token": self.tokenizer.decode([tid]),
                "start": int(o[0]),
                "end": int(o[1]),
                "log_prob": float(row[0]),
                "rank": int(round(math.exp(row[1]))),
                "entropy": float(row[2]),
            }
            for tid, o, row in zip(scored_ids, scored_offs, stats, strict=True)
        ]
