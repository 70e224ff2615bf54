"""Per-token statistics of a causal LM and the per-text scores built from them.

Everything here works on one model's logits at the positions that predict each scored token:
``logits`` (T, V) and ``targets`` (T,). Formulas follow the papers they come from:

- GLTR (Gehrmann et al. 2019): the rank of the observed token among the model's predictions.
- Fast-DetectGPT, analytic form (Bao et al. 2024, eq. 5 with sampler = scorer):
  ``(log p(x) - sum_t mu_t) / sqrt(sum_t var_t)`` with ``mu_t = E_{x~p_t}[log p_t(x)]`` and
  ``var_t = Var_{x~p_t}[log p_t(x)]``.
- Binoculars (Hans et al. 2024, eq. 3-4): ``log PPL_performer(s) / log X-PPL(s)`` with
  ``log X-PPL = -(1/L) sum_t softmax(observer_t) . log_softmax(performer_t)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Per-token columns produced by `token_stats`, in order.
STAT_COLUMNS = ("log_prob", "log_rank", "entropy", "mu", "var")


def token_stats(logits, targets):
    """Per-token stats (T, 5) as float64 numpy: log p, log rank (1-based), entropy, mu, var.

    logits: torch tensor (T, V); targets: long tensor (T,).
    """
    import torch

    logp = torch.log_softmax(logits.double(), dim=-1)  # (T, V); float64: the discrepancy is a small difference of large sums
    target_logp = logp.gather(-1, targets[:, None])[:, 0]  # (T,)
    rank = (logp > target_logp[:, None]).sum(-1) + 1  # (T,), 1 = the model's top choice
    p = logp.exp()
    mu = (p * logp).sum(-1)  # E[log p] = -entropy
    var = (p * (logp - mu[:, None]).square()).sum(-1)  # centred form: no float32 cancellation
    out = torch.stack([target_logp, rank.float().log(), -mu, mu, var], dim=-1)
    return out.double().cpu().numpy()


def cross_entropy_rows(observer_logits, performer_logits):
    """Per-token cross-entropy (T,) of the observer's distribution against the performer's log-probs."""
    import torch

    p_obs = torch.softmax(observer_logits.double(), dim=-1)
    logq = torch.log_softmax(performer_logits.double(), dim=-1)
    return (-(p_obs * logq).sum(-1)).double().cpu().numpy()


@dataclass
class TextScores:
    """Per-text aggregates of the per-token stats; all NaN when the text abstains."""

    n_tokens: int
    mean_log_prob: float
    mean_log_rank: float
    mean_entropy: float
    fast_detectgpt: float
    binoculars: float = math.nan


def aggregate(stats: np.ndarray, cross_entropy: np.ndarray | None = None) -> TextScores:
    """Aggregate per-token stats (T, 5) (and observer cross-entropies (T,)) into TextScores."""
    n = int(stats.shape[0])
    if n == 0:
        return TextScores(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    log_prob, log_rank, entropy, mu, var = stats.T
    var_sum = float(var.sum())
    fdg = (float(log_prob.sum()) - float(mu.sum())) / math.sqrt(var_sum) if var_sum > 0 else math.nan
    bino = math.nan
    if cross_entropy is not None and len(cross_entropy) == n:
        x_ppl = float(cross_entropy.mean())
        bino = float(-log_prob.mean()) / x_ppl if x_ppl > 0 else math.nan
    return TextScores(n, float(log_prob.mean()), float(log_rank.mean()), float(entropy.mean()), fdg, bino)
