"""KGW green-list watermarks (Kirchenbauer et al. 2023, "A Watermark for Large Language Models").

Detection (``KGWDetector``, versioned name ``kgw_v1``) and embedding (``KGWLogitsProcessor``)
use the same key scheme as transformers' ``WatermarkLogitsProcessor`` / ``WatermarkDetector``
(transformers/generation/logits_process.py and watermarking.py), so z-scores agree with
transformers' to floating-point precision, and text made by either side is detected by both.

The key scheme, as transformers implements it (vocabulary size V, green fraction γ, key k):

* ``lefthash``: the green list of position t is seeded by ``k * x[t-1]``;
* ``selfhash``: with a fixed permutation table ``P = randperm(1_000_003)`` seeded by ``k``,
  the green list of token ``x[t]`` is seeded by ``min_j(k * (P[x_j]+1) * (P[x[t]]+1))`` over
  the last ``context_width`` tokens x_j (int64 arithmetic, wrapping as torch does);
* the seed (mod 2**64 - 1) goes into torch's mt19937 generator and the green list is the
  first ``int(V * γ)`` entries of ``torch.randperm(V)``.

torch seeds mt19937 from the low 32 bits of the seed only, so green lists are cached per
32-bit seed as packed bit rows; scoring a token is then one table look-up, vectorised with
numpy across a whole batch of texts.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.detectors.watermark.normalize import normalize_text
from collapseguard.errors import CollapseguardError, check_choice

SEEDING_SCHEMES = ("lefthash", "selfhash")
TABLE_SIZE = 1_000_003  # transformers' WatermarkLogitsProcessor.table_size
MOD_SEED = 2**64 - 1  # transformers: rng.manual_seed(seed % (2**64 - 1))
SELFHASH_CANDIDATES = 40  # transformers' rejection sampling looks at the 40 most likely tokens


@dataclass
class KGWConfig:
    """Settings of a KGW watermark; detection must use the settings used at generation.

    greenlist_ratio: fraction γ of the vocabulary that is green at each position.
    hashing_key: the secret key (an int in [0, 2**63)); never logged or printed.
    seeding_scheme: ``lefthash`` (seed from the previous token) or ``selfhash``.
    context_width: tokens of context per seed (the n-gram is context_width + 1 for lefthash,
        context_width for selfhash, as in transformers).
    ignore_repeated_ngrams: count each distinct n-gram once (robust to repeated text).
    z_threshold: ``prediction`` is ``z_score > z_threshold``.
    normalize: NFKC + zero-width removal + homoglyph folding before tokenising.
    vocab_size: the generating model's ``config.vocab_size`` (default: ``len(tokenizer)``).
    min_tokens_scored: fewer scored tokens than this -> abstain (NaN).
    max_chars: only the first ``max_chars`` characters of a record are scored.
    cache_mb: memory for cached green lists (packed bits, least recently used evicted).
    """

    greenlist_ratio: float = 0.25
    hashing_key: int = 15485863
    seeding_scheme: str = "lefthash"
    context_width: int = 1
    ignore_repeated_ngrams: bool = True
    z_threshold: float = 4.0
    normalize: bool = True
    vocab_size: int | None = None
    min_tokens_scored: int = 1
    max_chars: int = 1_000_000
    cache_mb: int = 256

    def __post_init__(self) -> None:
        check_choice("seeding scheme", self.seeding_scheme, SEEDING_SCHEMES)
        if not 0.0 < self.greenlist_ratio < 1.0:
            raise CollapseguardError(f"greenlist_ratio={self.greenlist_ratio}: must be strictly between 0 and 1")
        if isinstance(self.hashing_key, bool) or not isinstance(self.hashing_key, int) or not 0 <= self.hashing_key < 2**63:
            raise CollapseguardError("hashing_key: must be an integer in [0, 2**63); pass the key used at generation")
        if self.context_width < 1:
            raise CollapseguardError(f"context_width={self.context_width}: must be at least 1")
        if self.vocab_size is not None and self.vocab_size < 2:
            raise CollapseguardError(f"vocab_size={self.vocab_size}: must be at least 2")
        if self.min_tokens_scored < 1:
            raise CollapseguardError(f"min_tokens_scored={self.min_tokens_scored}: must be at least 1")

    @property
    def ngram_len(self) -> int:
        """Tokens per scored n-gram (transformers: context_width + 1 - selfhash)."""
        return self.context_width + (0 if self.seeding_scheme == "selfhash" else 1)


# ---------------------------------------------------------------------------------------------
# Seeds


@lru_cache(maxsize=8)
def fixed_table(hashing_key: int) -> np.ndarray:
    """transformers' ``fixed_table``: randperm(1_000_003) from a generator seeded with the key."""
    import torch

    rng = torch.Generator().manual_seed(hashing_key)
    return torch.randperm(TABLE_SIZE, generator=rng).numpy()


@lru_cache(maxsize=8)
def lefthash_table(hashing_key: int, size: int) -> np.ndarray:
    """Seeds of tokens 0..size-1 (uint64), ``k * token mod (2**64-1)`` in exact integers."""
    return np.array([(hashing_key * t) % MOD_SEED & 0xFFFFFFFF for t in range(size)], dtype=np.uint64)


def lefthash_seeds(prev_tokens: np.ndarray, hashing_key: int) -> np.ndarray:
    """32-bit mt19937 seeds (uint64) of ``k * prev_token mod (2**64-1)``, exact for any key."""
    prev_tokens = np.asarray(prev_tokens, dtype=np.int64)
    if len(prev_tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    size = 1 << max(int(prev_tokens.max()).bit_length(), 10)  # tables of 1024, 2048, ... seeds
    if prev_tokens.min() >= 0 and size <= 1 << 22:
        return lefthash_table(hashing_key, size)[prev_tokens]
    uniq, inverse = np.unique(prev_tokens, return_inverse=True)
    seeds = np.array([(hashing_key * int(t)) % MOD_SEED & 0xFFFFFFFF for t in uniq], dtype=np.uint64)
    return seeds[inverse.reshape(-1)]


def selfhash_seeds(windows: np.ndarray, hashing_key: int) -> np.ndarray:
    """32-bit seeds (uint64) of ``min_j(k * (P[w_j]+1) * (P[w_last]+1))`` in wrapping int64.

    windows: (N, context_width) token ids, the scored token last.
    """
    table = fixed_table(hashing_key)
    a = table[windows % TABLE_SIZE].astype(np.int64) + 1  # (N, W)
    b = table[windows[:, -1] % TABLE_SIZE].astype(np.int64)[:, None] + 1  # (N, 1)
    with np.errstate(over="ignore"):
        products = (np.int64(hashing_key) * a) * b  # wraps like torch int64
    seed = products.min(axis=1)
    as_u64 = seed.view(np.uint64)
    # Python's seed % (2**64 - 1) for a negative int64 seed is seed + 2**64 - 1.
    modded = np.where(seed < 0, as_u64 - np.uint64(1), as_u64)
    return modded & np.uint64(0xFFFFFFFF)


def ngram_seeds(ngrams: np.ndarray, config: KGWConfig) -> np.ndarray:
    """Seeds of the green list that scores the last token of each n-gram (N, ngram_len)."""
    if config.seeding_scheme == "selfhash":
        return selfhash_seeds(ngrams[:, -config.context_width :], config.hashing_key)
    return lefthash_seeds(ngrams[:, -2], config.hashing_key)


# ---------------------------------------------------------------------------------------------
# Green lists


def greenlist_size(vocab_size: int, greenlist_ratio: float) -> int:
    """transformers: ``int(vocab_size * greenlist_ratio)``."""
    return int(vocab_size * greenlist_ratio)


class GreenListCache:
    """Green lists as packed bit rows, keyed by 32-bit seed, least recently used evicted."""

    def __init__(self, vocab_size: int, greenlist_ratio: float, cache_mb: int = 256):
        import torch

        self.vocab_size = vocab_size
        self.size = greenlist_size(vocab_size, greenlist_ratio)
        self.row_bytes = (vocab_size + 7) // 8
        self.capacity = max(64, cache_mb * 2**20 // self.row_bytes)
        self.bits = np.zeros((0, self.row_bytes), dtype=np.uint8)  # grows up to capacity
        self.rows: OrderedDict[int, int] = OrderedDict()
        self._rng = torch.Generator()
        self.misses = 0

    def greenlist_ids(self, seed: int):
        """The green token ids for one 32-bit seed, computed exactly as transformers does."""
        import torch

        self._rng.manual_seed(int(seed))
        return torch.randperm(self.vocab_size, generator=self._rng)[: self.size]

    def _mask_row(self, seed: int) -> np.ndarray:
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[self.greenlist_ids(seed).numpy()] = True
        return np.packbits(mask, bitorder="little")

    def _grow(self, needed: int) -> None:
        new = min(self.capacity, max(needed, 2 * len(self.bits), 256))
        if new > len(self.bits):
            grown = np.zeros((new, self.row_bytes), dtype=np.uint8)
            grown[: len(self.bits)] = self.bits
            self.bits = grown

    def rows_for(self, seeds: np.ndarray) -> np.ndarray:
        """Row index of each distinct seed (len(seeds) <= capacity), computing misses."""
        seeds = [int(s) for s in seeds]
        out = np.empty(len(seeds), dtype=np.int64)
        missing = []
        for i, s in enumerate(seeds):
            row = self.rows.get(s)
            if row is None:
                missing.append(i)
            else:
                self.rows.move_to_end(s)
                out[i] = row
        if missing:
            self._grow(len(self.rows) + len(missing))
            for i in missing:
                if len(self.rows) < len(self.bits):
                    row = len(self.rows)
                else:  # evict the least recently used (never one touched in this call)
                    _, row = self.rows.popitem(last=False)
                self.bits[row] = self._mask_row(seeds[i])
                self.rows[seeds[i]] = row
                out[i] = row
            self.misses += len(missing)
        return out

    def is_green(self, seeds: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Whether each target token is in the green list of its seed: (N,) bool."""
        green = np.zeros(len(seeds), dtype=bool)
        if len(seeds) == 0:
            return green
        uniq, inverse = np.unique(seeds, return_inverse=True)
        inverse = inverse.reshape(-1)
        in_vocab = (targets >= 0) & (targets < self.vocab_size)
        t = np.where(in_vocab, targets, 0)
        for start in range(0, len(uniq), self.capacity):
            rows = self.rows_for(uniq[start : start + self.capacity])
            sel = (inverse >= start) & (inverse < start + self.capacity) & in_vocab
            r = rows[inverse[sel] - start]
            ts = t[sel]
            green[sel] = (self.bits[r, ts >> 3] >> (ts & 7).astype(np.uint8)) & 1 == 1
        return green

    def mask(self, seed: int) -> np.ndarray:
        """The green list of one seed as a (vocab_size,) bool mask."""
        row = self.rows_for(np.array([seed]))[0]
        return np.unpackbits(self.bits[row], bitorder="little", count=self.vocab_size).astype(bool)


# ---------------------------------------------------------------------------------------------
# Scoring


def z_scores(num_green: np.ndarray, num_scored: np.ndarray, gamma: float) -> np.ndarray:
    """KGW z = (g - γT) / sqrt(T γ (1-γ)); NaN where T = 0."""
    num_green = np.asarray(num_green, dtype=float)
    num_scored = np.asarray(num_scored, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (num_green - gamma * num_scored) / np.sqrt(num_scored * gamma * (1 - gamma))
    return np.where(num_scored > 0, z, np.nan)


def _betacf(a: np.ndarray, b: np.ndarray, x: np.ndarray, eps: float = 1e-15, iters: int = 10_000) -> np.ndarray:
    """The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, iters + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            delta = d * c
            h = h * delta
        if np.all(np.abs(delta - 1.0) < eps):
            break
    return h


def regularized_beta(a: np.ndarray, b: np.ndarray, x: float) -> np.ndarray:
    """I_x(a, b) for arrays a, b > 0 and one x in (0, 1), to about 1e-13 relative."""
    lgamma = np.frompyfunc(math.lgamma, 1, 1)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    log_front = (lgamma(a + b) - lgamma(a) - lgamma(b)).astype(float) + a * math.log(x) + b * math.log1p(-x)
    direct = x < (a + 1.0) / (a + b + 2.0)  # where the fraction converges fast; else use symmetry
    aa, bb = np.where(direct, a, b), np.where(direct, b, a)
    xx = np.where(direct, x, 1.0 - x)
    frac = np.exp(log_front) * _betacf(aa, bb, xx) / aa
    return np.where(direct, frac, 1.0 - frac)


def binomial_p_values(num_green: np.ndarray, num_scored: np.ndarray, gamma: float) -> np.ndarray:
    """Exact one-sided p = P(Binomial(T, γ) >= g) for unwatermarked text; NaN where T = 0.

    P(X >= g) = I_γ(g, T - g + 1), the regularised incomplete beta function, computed here in
    numpy (no scipy import on the scoring path; equal to `scipy.stats.binom.sf`, tested).
    """
    g = np.asarray(num_green, dtype=float)
    t = np.asarray(num_scored, dtype=float)
    inside = (g >= 1) & (g <= t)
    p = np.where(g <= 0, 1.0, 0.0)
    if inside.any():
        p = p.astype(float)
        p[inside] = regularized_beta(g[inside], t[inside] - g[inside] + 1.0, gamma)
    return np.where(t > 0, np.clip(p, 0.0, 1.0), np.nan)


def normal_p_values(z: np.ndarray) -> np.ndarray:
    """One-sided normal-approximation p = 1 - Φ(z) (what transformers reports)."""
    erfc = np.frompyfunc(math.erfc, 1, 1)
    z = np.asarray(z, dtype=float)
    return (0.5 * erfc(z / math.sqrt(2.0))).astype(float)


def unique_ngrams(owner: np.ndarray, ngrams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (owner, n-gram) rows; packed into one int64 key when the bits fit, else rows."""
    n = ngrams.shape[1]
    if len(ngrams) and ngrams.min() >= 0:
        token_bits = max(int(ngrams.max()).bit_length(), 1)
        owner_bits = max(int(owner.max()).bit_length(), 1)
        if n * token_bits + owner_bits <= 63:
            key = owner.astype(np.int64)
            for j in range(n):
                key = (key << token_bits) | ngrams[:, j]
            _, first = np.unique(key, return_index=True)
            return owner[first], ngrams[first]
    keyed = np.ascontiguousarray(np.column_stack([owner, ngrams]))
    rows = np.unique(keyed.view([("", np.int64)] * (n + 1)).reshape(-1)).view(np.int64).reshape(-1, n + 1)
    return rows[:, 0], rows[:, 1:]


def count_green(sequences: list[np.ndarray], config: KGWConfig, cache: GreenListCache) -> tuple[np.ndarray, np.ndarray]:
    """(num_tokens_scored, num_green_tokens) per token sequence, vectorised over the batch."""
    n = config.ngram_len
    lengths = np.array([max(len(s) - n + 1, 0) for s in sequences], dtype=np.int64)
    scored = np.zeros(len(sequences), dtype=np.int64)
    green = np.zeros(len(sequences), dtype=np.int64)
    if lengths.sum() == 0:
        return scored, green
    ngrams = np.concatenate(
        [np.lib.stride_tricks.sliding_window_view(np.asarray(s, dtype=np.int64), n) for s, k in zip(sequences, lengths, strict=True) if k > 0]
    )  # (N, n)
    owner = np.repeat(np.arange(len(sequences)), lengths)  # (N,)
    if config.ignore_repeated_ngrams:
        owner, ngrams = unique_ngrams(owner, ngrams)
    is_green = cache.is_green(ngram_seeds(ngrams, config), ngrams[:, -1])
    scored = np.bincount(owner, minlength=len(sequences))
    green = np.bincount(owner, weights=is_green, minlength=len(sequences)).astype(np.int64)
    return scored, green


def load_tokenizer(tokenizer_dir: str | Path):
    """A tokenizer from a local directory (never the network hub)."""
    path = Path(tokenizer_dir)
    if not path.is_dir():
        raise CollapseguardError(f"{path}: tokenizer directory not found; give the folder of a saved tokenizer "
                                 "(--tokenizer or --model DIR on the command line, tokenizer_dir in a policy)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise CollapseguardError("the watermark detector needs transformers: pip install 'collapseguard[lm]'") from None
    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises OSError/ValueError subclasses for bad dirs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CollapseguardError(f"{path}: not a loadable tokenizer ({first}); pass a directory written by save_pretrained") from None


class TokenWatermarkDetector(Detector):
    """The text side shared by the watermark detectors; subclasses implement ``detect_ids``.

    Needs ``self.tokenizer`` and a config with ``normalize`` and ``max_chars``.
    """

    def _set_tokenizer(self, tokenizer: Any) -> None:
        """A tokenizer object, or one loaded from its local directory."""
        if tokenizer is None:
            raise CollapseguardError(f"{type(self).__name__}: no tokenizer; pass the generating model's tokenizer or its local directory")
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text (normalised, truncated to max_chars, no special tokens)."""
        prepared = []
        for text in texts:
            text = text[: self.config.max_chars] if isinstance(text, str) else ""
            prepared.append(normalize_text(text) if self.config.normalize else text)
        ids = self.tokenizer(prepared, add_special_tokens=False)["input_ids"] if prepared else []
        return [np.asarray(x, dtype=np.int64) for x in ids]

    def detect_ids(self, sequences) -> list[dict]:
        raise NotImplementedError

    def score_ids(self, sequences) -> np.ndarray:
        """z-scores of token-id sequences (NaN = abstain)."""
        return np.array([d["z_score"] for d in self.detect_ids(sequences)], dtype=float)

    def detect(self, texts: list[str]) -> list[dict]:
        """Per-text result dicts of ``detect_ids``, plus ``truncated`` (longer than max_chars)."""
        texts = list(texts)
        out = self.detect_ids(self.encode(texts))
        for d, text in zip(out, texts, strict=True):
            d["truncated"] = isinstance(text, str) and len(text) > self.config.max_chars
        return out

    def score(self, texts: list[str]) -> np.ndarray:
        """z-scores (higher = more likely watermarked); NaN where too few tokens to score."""
        return self.score_ids(self.encode(list(texts)))


class KGWDetector(TokenWatermarkDetector):
    """KGW green-list detection; ``score`` gives z-scores (NaN = too few tokens to score).

    ``tokenizer`` is a tokenizer object or a local directory to load one from. ``bos_token_id``
    (default: the tokenizer's) is dropped from the start of a sequence, as transformers does.
    """

    name: ClassVar[str] = "kgw_v1"

    def __init__(self, config: KGWConfig | None = None, tokenizer: Any = None, bos_token_id: int | None = None):
        self.config = config or KGWConfig()
        self._set_tokenizer(tokenizer)
        tokenizer = self.tokenizer
        self.vocab_size = self.config.vocab_size or len(tokenizer)
        if self.vocab_size < len(tokenizer):
            raise CollapseguardError(
                f"vocab_size={self.vocab_size} is smaller than the tokenizer's {len(tokenizer)} ids; pass the "
                f"generating model's config.vocab_size (--vocab-size {len(tokenizer)} or more), or leave it unset")
        self.bos_token_id = bos_token_id if bos_token_id is not None else getattr(tokenizer, "bos_token_id", None)
        self.cache = GreenListCache(self.vocab_size, self.config.greenlist_ratio, self.config.cache_mb)

    def _strip_bos(self, seq) -> np.ndarray:
        seq = np.asarray(seq, dtype=np.int64).reshape(-1)
        if self.bos_token_id is not None and len(seq) and seq[0] == self.bos_token_id:
            return seq[1:]
        return seq

    # -- scoring ---------------------------------------------------------------------------
    def detect_ids(self, sequences) -> list[dict]:
        """Per-sequence z_score, p_value (exact binomial), p_value_normal, counts and prediction."""
        seqs = [self._strip_bos(s) for s in sequences]
        scored, green = count_green(seqs, self.config, self.cache)
        gamma = self.config.greenlist_ratio
        z = z_scores(green, scored, gamma)
        p = binomial_p_values(green, scored, gamma)
        p_norm = normal_p_values(z)
        abstain = scored < self.config.min_tokens_scored
        out = []
        for i in range(len(seqs)):
            if abstain[i]:
                out.append({"z_score": float("nan"), "p_value": float("nan"), "p_value_normal": float("nan"),
                            "num_tokens_scored": int(scored[i]), "num_green_tokens": int(green[i]),
                            "prediction": None})  # fmt: skip
                continue
            out.append({"z_score": float(z[i]), "p_value": float(p[i]), "p_value_normal": float(p_norm[i]),
                        "num_tokens_scored": int(scored[i]), "num_green_tokens": int(green[i]),
                        "prediction": bool(z[i] > self.config.z_threshold)})  # fmt: skip
        return out


# ---------------------------------------------------------------------------------------------
# Embedding


class KGWLogitsProcessor:
    """Adds ``bias`` to green-token logits during ``model.generate(logits_processor=[...])``.

    Same key scheme and same output as transformers' ``WatermarkLogitsProcessor`` with the
    same settings, with green lists cached. Construct with the detector's config::

        proc = KGWLogitsProcessor(KGWConfig(hashing_key=K), vocab_size=model.config.vocab_size, bias=2.0)
        model.generate(**inputs, logits_processor=LogitsProcessorList([proc]), do_sample=True)

    vocab_size must be the model's ``config.vocab_size`` (the detector's ``vocab_size``).
    """

    def __init__(self, config: KGWConfig, vocab_size: int, bias: float = 2.0):
        self.config = config
        self.vocab_size = vocab_size
        self.bias = float(bias)
        self.cache = GreenListCache(vocab_size, config.greenlist_ratio, config.cache_mb)

    def __repr__(self) -> str:  # the key stays out of logs
        c = self.config
        return f"KGWLogitsProcessor(scheme={c.seeding_scheme}, context_width={c.context_width}, γ={c.greenlist_ratio}, bias={self.bias})"

    def __call__(self, input_ids, scores):
        import torch

        if input_ids.shape[-1] < self.config.context_width:
            return scores  # transformers skips seeding until the context is long enough
        ids = input_ids.detach().cpu().numpy().astype(np.int64)
        bonus = np.zeros(scores.shape, dtype=np.float32)
        if self.config.seeding_scheme == "lefthash":
            seeds = lefthash_seeds(ids[:, -1], self.config.hashing_key)
            for b, seed in enumerate(seeds):
                bonus[b, : self.vocab_size] = self.cache.mask(seed) * self.bias
        else:
            k = min(SELFHASH_CANDIDATES, scores.shape[-1])
            order = scores.sort(dim=-1, descending=True).indices[:, :k].cpu().numpy().astype(np.int64)  # (B, k)
            ctx = ids[:, ids.shape[1] - (self.config.context_width - 1) :] if self.config.context_width > 1 else ids[:, :0]
            windows = np.concatenate([np.repeat(ctx[:, None, :], k, axis=1), order[:, :, None]], axis=2)  # (B, k, W)
            flat = windows.reshape(-1, windows.shape[-1])
            green = self.cache.is_green(selfhash_seeds(flat, self.config.hashing_key), flat[:, -1]).reshape(order.shape)
            for b in range(order.shape[0]):
                bonus[b, order[b][green[b]]] = self.bias
        mask = torch.from_numpy(bonus != 0).to(scores.device)
        return torch.where(mask, scores + self.bias, scores)


def watermark_logits_processor(config: KGWConfig, vocab_size: int, bias: float = 2.0):
    """A ``LogitsProcessorList`` with one ``KGWLogitsProcessor``, ready for ``generate``."""
    from transformers import LogitsProcessorList

    return LogitsProcessorList([KGWLogitsProcessor(config, vocab_size, bias)])
