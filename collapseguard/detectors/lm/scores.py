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

# Per-token columns produced by `token_stats`, in order. `gap` = log p(x_t) - mu_t, computed
# directly from the logits (the log-normaliser cancels), so it keeps float32 precision.
STAT_COLUMNS = ("log_prob", "log_rank", "entropy", "mu", "var", "gap")
ALL_COLUMNS = frozenset(STAT_COLUMNS)


def token_stats(logits, targets, columns=ALL_COLUMNS) -> np.ndarray:
    """Per-token stats (T, 6) float64: log p, log rank (1-based), entropy, mu, var, gap.

    logits: torch tensor (T, V); targets: long tensor (T,). Only `columns` are computed (the
    others are NaN). Work is float32 but written so no term subtracts the log-normaliser
    from a value of similar size: with z the logits and p = softmax(z),
    mu = E_p[z] - lse, var = E_p[(z - E_p z)^2], entropy = lse - E_p[z], gap = z_x - E_p[z].
    """
    import torch

    z = logits.float()  # (T, V)
    n = z.shape[0]
    out = torch.full((n, len(STAT_COLUMNS)), float("nan"), dtype=torch.float64)
    if n == 0:
        return out.numpy()
    z_x = z.gather(-1, targets[:, None])[:, 0]  # (T,)
    lse = torch.logsumexp(z, dim=-1)  # (T,)
    out[:, 0] = (z_x - lse).double()
    if "log_rank" in columns:
        out[:, 1] = ((z > z_x[:, None]).sum(-1) + 1).double().log()
    if columns & {"entropy", "mu", "var", "gap"}:
        p = torch.exp(z - lse[:, None])  # (T, V)
        ez = (p * z).sum(-1)  # E_p[z]
        out[:, 2] = (lse - ez).double()
        out[:, 3] = (ez - lse).double()
        out[:, 5] = (z_x - ez).double()
        if "var" in columns:
            out[:, 4] = (p * (z - ez[:, None]).square()).sum(-1).double()
    return out.cpu().numpy()


def cross_entropy_rows(observer_logits, performer_logits) -> np.ndarray:
    """Per-token cross-entropy (T,): -sum_v softmax(observer)_v * log_softmax(performer)_v."""
    import torch

    p_obs = torch.softmax(observer_logits.float(), dim=-1)
    zq = performer_logits.float()
    ce = torch.logsumexp(zq, dim=-1) - (p_obs * zq).sum(-1)  # log_softmax = z - lse, and sum p = 1
    return ce.double().cpu().numpy()


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
    """Aggregate per-token stats (T, 6) (and observer cross-entropies (T,)) into TextScores."""
    n = int(stats.shape[0])
    if n == 0:
        return TextScores(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    log_prob, log_rank, entropy, _mu, var, gap = stats.T
    var_sum = float(var.sum())
    # Fast-DetectGPT: (log p(x) - sum mu_t) / sqrt(sum var_t), the numerator summed per token as `gap`.
    fdg = float(gap.sum()) / math.sqrt(var_sum) if var_sum > 0 else math.nan
    bino = math.nan
    if cross_entropy is not None and len(cross_entropy) == n:
        x_ppl = float(cross_entropy.mean())
        bino = float(-log_prob.mean()) / x_ppl if x_ppl > 0 else math.nan
    return TextScores(n, float(log_prob.mean()), float(log_rank.mean()), float(entropy.mean()), fdg, bino)
