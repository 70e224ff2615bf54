"""SynthID-Text watermarks (Dathathri et al., Nature 2024): training-free mean-score detection.

Detection (``SynthIDDetector``, versioned name ``synthid_v1``) recomputes, from the tokens
alone, the g-values of transformers' ``SynthIDTextWatermarkLogitsProcessor``
(transformers/generation/logits_process.py), so text generated with that processor or with
``watermarking_config=SynthIDTextWatermarkingConfig(...)`` is detected with the same settings:

* an n-gram x[t-n+1..t] is hashed by an LCG in wrapping int64, ``h <- (h + x) * M + 1`` with
  M = 6364136223846793005, from h = 1; at depth d the hash is continued with key k_d;
* the g-value at depth d is ``table[h_d mod table_size]`` (floor modulo) where ``table`` is
  ``torch.randint(0, 2, (table_size,))`` drawn from a generator seeded with the table seed;
* a position is not scored when the hash of its (n-1)-token context is among the previous
  ``context_history_size`` context hashes (``compute_context_repetition_mask``), nor from the
  first EOS/padding token on (``compute_eos_token_mask``).

The mean score is the mean g-value over the scored positions and all depths (the ``mean_score``
of google-deepmind/synthid-text). For text not generated with these keys a g-value is a table
entry at a pseudo-random index, i.e. Bernoulli(p0) with p0 the table's fraction of ones (0.5 up
to the table's sampling noise), so with Σg over N = positions x depth g-values
z = (Σg - p0 N) / sqrt(N p0 (1 - p0)) is ≈ N(0, 1) and the exact p-value is the binomial tail
P(Binomial(N, p0) >= Σg).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from collapseguard.detectors.watermark.kgw import (
    TokenWatermarkDetector,
    binomial_p_values,
    z_scores,
)
from collapseguard.errors import CollapseguardError

LCG_MULTIPLIER = np.uint64(6364136223846793005)  # transformers' accumulate_hash (newlib/musl LCG)
LCG_INCREMENT = np.uint64(1)
MAX_TABLE_SIZE = 2**24  # transformers' SynthIDTextWatermarkingConfig.validate
CHUNK = 1 << 16  # n-grams per (CHUNK, depth) block of g-values
KEYS_ENV = "COLLAPSEGUARD_SYNTHID_KEYS"


def parse_keys(value: str | None) -> list[int]:
    """SynthID keys from 'K1,K2,...'; errors never echo the (secret) values."""
    if value is None or not str(value).strip():
        raise CollapseguardError(f"no SynthID keys; pass --keys K1,K2,... or set {KEYS_ENV}")
    try:
        return [int(part.strip()) for part in str(value).split(",")]
    except ValueError:
        raise CollapseguardError("--keys: not a comma-separated list of integers (values not shown: they are secret); "
                                 "pass the keys used at generation") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class SynthIDConfig:
    """Settings of a SynthID-Text watermark; detection must use the settings used at generation.

    keys: the secret watermarking keys, one per depth (ints in the int64 range); never logged
        or printed, and hashed in ``fingerprint()``.
    ngram_len: tokens per n-gram (the scored token and its ngram_len - 1 tokens of context).
    sampling_table_size, sampling_table_seed: the random 0/1 table g-values are read from.
    sampling_table_device: device whose torch generator drew the table at generation
        (transformers uses the model's device; a CUDA generator draws a different table).
    context_history_size: contexts remembered when masking repeated contexts.
    z_threshold: ``prediction`` is ``z_score > z_threshold``.
    min_tokens_scored: fewer scored positions than this -> abstain (NaN).
    normalize: NFKC + zero-width removal + homoglyph folding before tokenising.
    max_chars: only the first ``max_chars`` characters of a record are scored.
    """

    keys: list[int] = field(default_factory=list, repr=False)
    ngram_len: int = 5
    sampling_table_size: int = 2**16
    sampling_table_seed: int = 0
    sampling_table_device: str = "cpu"
    context_history_size: int = 1024
    z_threshold: float = 4.0
    min_tokens_scored: int = 1
    normalize: bool = True
    max_chars: int = 1_000_000

    def __post_init__(self) -> None:
        self.keys = _checked_keys(self.keys)
        _check_int("ngram_len", self.ngram_len, 1, None)
        _check_int("sampling_table_size", self.sampling_table_size, 2, MAX_TABLE_SIZE)
        _check_int("sampling_table_seed", self.sampling_table_seed, 0, 2**64 - 1)
        _check_int("context_history_size", self.context_history_size, 1, None)
        _check_int("min_tokens_scored", self.min_tokens_scored, 1, None)
        _check_int("max_chars", self.max_chars, 1, None)
        if not isinstance(self.sampling_table_device, str) or not self.sampling_table_device:
            raise CollapseguardError("sampling_table_device: must be a torch device name such as 'cpu' or 'cuda'")

    @property
    def depth(self) -> int:
        """Number of keys (g-values per position)."""
        return len(self.keys)


def _checked_keys(keys: Any) -> list[int]:
    """The keys as a list of distinct Python ints; messages never show the (secret) values."""
    hint = "pass the keys used at generation (values not shown: they are secret)"
    if not isinstance(keys, (list, tuple, np.ndarray)) or len(keys) == 0:
        raise CollapseguardError(f"keys: need a non-empty list of integers; {hint}")
    if not all(_is_int(k) and -(2**63) <= int(k) < 2**63 for k in keys):
        raise CollapseguardError(f"keys: every key must be an integer in the int64 range; {hint}")
    keys = [int(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise CollapseguardError(f"keys: contain duplicates, so depths would repeat the same g-values; {hint}")
    return keys


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    """Raise unless ``low <= value <= high`` (no upper bound when high is None) for an int."""
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"in [{low}, {high}]"
        raise CollapseguardError(f"{name}={value!r}: must be an integer {bound}")


# ---------------------------------------------------------------------------------------------
# g-values


@lru_cache(maxsize=8)
def sampling_table(size: int, seed: int, device: str = "cpu") -> np.ndarray:
    """transformers' table: ``torch.randint(0, 2, (size,))`` from a generator seeded with ``seed``.

    On the CPU, torch's generator is MT19937 seeded with the low 32 bits of ``seed``, and randint
    over two values takes each 32-bit output modulo 2: numpy's legacy MT19937 draws the same
    outputs without importing torch (checked against torch in tests/test_synthid.py)."""
    if device == "cpu":
        raw = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, size=size, dtype=np.uint32)
        out = (raw & 1).astype(np.uint8)
        out.flags.writeable = False  # shared by every detector with these settings
        return out
    import torch

    try:
        generator = torch.Generator(device=device).manual_seed(seed)
        table = torch.randint(0, 2, (size,), generator=generator, device=device)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().split(". ")[0].splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CollapseguardError(f"sampling_table_device={device!r}: cannot draw the table there ({reason}); use a device of the kind that generated the text") from None
    out = table.cpu().numpy().astype(np.uint8)
    out.flags.writeable = False  # shared by every detector with these settings
    return out


def accumulate_hash(current: np.ndarray, data: np.ndarray) -> np.ndarray:
    """transformers' ``accumulate_hash`` in uint64 (wraps like int64): fold ``data[..., i]`` into ``current``."""
    current = np.asarray(current, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(data.shape[-1]):
            current = (current + data[..., i]) * LCG_MULTIPLIER + LCG_INCREMENT
    return current


def as_uint64(ids) -> np.ndarray:
    """Token ids or keys as uint64 with int64 two's-complement bits (what torch hashes)."""
    return np.ascontiguousarray(ids, dtype=np.int64).view(np.uint64)


def ngram_hashes(tokens: np.ndarray, starts: np.ndarray, ngram_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(context hash, n-gram hash) of the n-grams ``tokens[s : s + ngram_len]`` for s in ``starts``.

    tokens: flat uint64 token ids; the context hash is the hash of the first ngram_len - 1 tokens.
    """
    windows = tokens[starts[:, None] + np.arange(ngram_len)]  # (N, ngram_len)
    context = accumulate_hash(np.ones(len(starts), dtype=np.uint64), windows[:, :-1])
    return context, accumulate_hash(context, windows[:, -1:])


def depth_g_values(ngram_hash: np.ndarray, keys: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(N, depth) g-values: each n-gram hash continued with each key, looked up in ``table``.

    ``(h + k) * M + 1`` is computed as ``h * M + (k * M + 1)``: one (N, depth) addition.
    """
    with np.errstate(over="ignore"):
        key_terms = keys * LCG_MULTIPLIER + LCG_INCREMENT  # (depth,)
        hashed = (ngram_hash * LCG_MULTIPLIER)[:, None] + key_terms[None, :]  # (N, depth)
    return table[table_index(hashed, len(table))]


def table_index(hashed: np.ndarray, size: int) -> np.ndarray:
    """``hash mod size`` with the hash read as int64 and floor modulo, as torch's ``%``."""
    signed = hashed.view(np.int64)
    if size & (size - 1) == 0:  # a power of two: floor modulo is the low bits
        return signed & np.int64(size - 1)
    return signed % np.int64(size)


def repeated_contexts(owner: np.ndarray, position: np.ndarray, context_hash: np.ndarray, history: int) -> np.ndarray:
    """Whether each position's context hash was among its sequence's previous ``history`` ones.

    Same as transformers' state, a history of ``history`` slots that starts filled with zeros:
    a context hash of 0 also counts as repeated at positions below ``history``.
    """
    order = np.lexsort((position, context_hash, owner))
    o, c, p = owner[order], context_hash[order], position[order]
    same = np.zeros(len(order), dtype=bool)
    same[1:] = (o[1:] == o[:-1]) & (c[1:] == c[:-1]) & (p[1:] - p[:-1] <= history)
    repeated = np.empty(len(order), dtype=bool)
    repeated[order] = same | ((c == 0) & (p < history))
    return repeated


def ngram_index(lengths: np.ndarray, ngram_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner, position, flat start) of every n-gram of sequences of ``lengths`` laid end to end."""
    counts = np.maximum(lengths - ngram_len + 1, 0)
    owner = np.repeat(np.arange(len(lengths)), counts)
    first = np.cumsum(counts) - counts  # index of each sequence's first n-gram
    position = np.arange(counts.sum()) - np.repeat(first, counts)
    offsets = np.cumsum(lengths) - lengths
    return owner, position, offsets[owner] + position


@dataclass
class NGrams:
    """The n-grams of a batch of sequences: owner sequence, n-gram hash and scored mask, each (N,)."""

    owner: np.ndarray
    hash: np.ndarray
    scored: np.ndarray


def batch_ngrams(sequences: list[np.ndarray], config: SynthIDConfig) -> NGrams:
    """Hashes and the repeated-context mask of every n-gram of ``sequences``, in one pass."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    owner, position, starts = ngram_index(lengths, config.ngram_len)
    tokens = as_uint64(np.concatenate(sequences)) if len(sequences) else np.zeros(0, np.uint64)
    context, ngram = ngram_hashes(tokens, starts, config.ngram_len)
    scored = ~repeated_contexts(owner, position, context, config.context_history_size)
    return NGrams(owner, ngram, scored)


def config_table(config: SynthIDConfig) -> np.ndarray:
    """The sampling table of ``config``."""
    return sampling_table(config.sampling_table_size, config.sampling_table_seed, config.sampling_table_device)


def g_sums(ngram_hash: np.ndarray, config: SynthIDConfig) -> np.ndarray:
    """Σ over depths of each n-gram's g-values, CHUNK n-grams at a time (bounded memory)."""
    keys, table = as_uint64(config.keys), config_table(config)
    out = np.zeros(len(ngram_hash), dtype=np.int64)
    for start in range(0, len(ngram_hash), CHUNK):
        out[start : start + CHUNK] = depth_g_values(ngram_hash[start : start + CHUNK], keys, table).sum(axis=1)
    return out


def _rows(input_ids) -> tuple[np.ndarray, int]:
    ids = np.asarray(input_ids, dtype=np.int64)
    if ids.ndim != 2:
        raise CollapseguardError(f"input_ids: expected (batch, length) token ids, got shape {ids.shape}")
    return ids, ids.shape[1]


def g_values(input_ids, config: SynthIDConfig) -> np.ndarray:
    """(batch, L - ngram_len + 1, depth) g-values of equal-length rows: transformers' ``compute_g_values``."""
    ids, length = _rows(input_ids)
    g = depth_g_values(batch_ngrams(list(ids), config).hash, as_uint64(config.keys), config_table(config))
    return g.reshape(len(ids), max(length - config.ngram_len + 1, 0), config.depth)


def context_repetition_mask(input_ids, config: SynthIDConfig) -> np.ndarray:
    """(batch, L - ngram_len + 1) bool, True where scored: transformers' ``compute_context_repetition_mask``."""
    ids, length = _rows(input_ids)
    return batch_ngrams(list(ids), config).scored.reshape(len(ids), max(length - config.ngram_len + 1, 0))


# ---------------------------------------------------------------------------------------------
# Scoring


def mean_score_counts(sequences: list[np.ndarray], config: SynthIDConfig) -> tuple[np.ndarray, np.ndarray]:
    """(scored positions, Σg over scored positions and depths) per sequence."""
    ngrams = batch_ngrams(sequences, config)
    owner = ngrams.owner[ngrams.scored]
    positions = np.bincount(owner, minlength=len(sequences)).astype(np.int64)
    total = np.bincount(owner, weights=g_sums(ngrams.hash[ngrams.scored], config), minlength=len(sequences))
    return positions, np.rint(total).astype(np.int64)


def null_mean(config: SynthIDConfig) -> float:
    """p0: a g-value's probability of 1 for text not generated with the keys (the table's fraction of ones)."""
    return float(config_table(config).mean())


def truncate_at_end(seq, end_ids: tuple[int, ...]) -> np.ndarray:
    """``seq`` without leading end/padding tokens and from the first later one on (EOS mask)."""
    seq = np.asarray(seq, dtype=np.int64).reshape(-1)
    if not end_ids:
        return seq
    is_end = np.isin(seq, end_ids)
    start = int(np.argmin(is_end)) if not is_end.all() else len(seq)
    rest = is_end[start:]
    stop = start + (int(np.argmax(rest)) if rest.any() else len(rest))
    return seq[start:stop]


class SynthIDDetector(TokenWatermarkDetector):
    """SynthID-Text mean-score detection; ``score`` gives z-scores (NaN = too few positions).

    ``tokenizer`` is a tokenizer object or a local directory to load one from. Scoring stops at
    the first EOS or padding token (``eos_token_id``/``pad_token_id``, default: the tokenizer's);
    such tokens at the very start (left padding) are skipped.
    """

    name: ClassVar[str] = "synthid_v1"

    def __init__(self, config: SynthIDConfig | None = None, tokenizer: Any = None,
                 eos_token_id: int | None = None, pad_token_id: int | None = None):  # fmt: skip
        self.config = config or SynthIDConfig()
        self._set_tokenizer(tokenizer)
        tokenizer = self.tokenizer
        eos = eos_token_id if eos_token_id is not None else getattr(tokenizer, "eos_token_id", None)
        pad = pad_token_id if pad_token_id is not None else getattr(tokenizer, "pad_token_id", None)
        self.end_ids = tuple(sorted({int(t) for t in (eos, pad) if t is not None}))
        self.p0 = null_mean(self.config)

    def __repr__(self) -> str:  # the keys stay out of logs
        c = self.config
        return (f"SynthIDDetector(depth={c.depth}, ngram_len={c.ngram_len}, sampling_table_size={c.sampling_table_size}, "
                f"context_history_size={c.context_history_size}, z_threshold={c.z_threshold})")  # fmt: skip

    def detect_ids(self, sequences) -> list[dict]:
        """Per-sequence z_score, p_value (exact binomial), mean_g, num_tokens_scored, prediction."""
        seqs = [truncate_at_end(s, self.end_ids) for s in sequences]
        positions, total = mean_score_counts(seqs, self.config)
        n = positions * self.config.depth
        z = z_scores(total, n, self.p0)
        p = binomial_p_values(total, n, self.p0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_g = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        abstain = positions < self.config.min_tokens_scored
        return [_record(z[i], p[i], mean_g[i], positions[i], abstain[i], self.config.z_threshold) for i in range(len(seqs))]


def _record(z: float, p: float, mean_g: float, positions: int, abstain: bool, threshold: float) -> dict:
    """One output dict; an abstaining record has NaN z/p and no prediction."""
    nan = float("nan")
    return {"z_score": nan if abstain else float(z), "p_value": nan if abstain else float(p),
            "mean_g": float(mean_g), "num_tokens_scored": int(positions),
            "prediction": None if abstain else bool(z > threshold)}  # fmt: skip
