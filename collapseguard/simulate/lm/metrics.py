"""Sample-diversity and detection metrics of a generation's samples.

* ``repetition_rate``: per sample, the share of its 4-grams (token ids) that already occurred
  earlier in the same sample; averaged over samples. 0 = no repeated phrase.
* ``distinct_2``: distinct token bigrams / all token bigrams over the generation's samples
  (corpus-level distinct-n, Li et al. 2016). Lower = less diverse.
* ``gen0_auroc``: ROC AUC of "lower perplexity under generation 0 = machine" separating the
  generation's samples (positives) from held-out human blocks (negatives).
"""

from __future__ import annotations

import numpy as np


def repetition_rate(samples: np.ndarray, n: int = 4) -> float:
    """Mean share of each sample's n-grams seen earlier in that sample."""
    rates = []
    for row in np.asarray(samples):
        grams = [tuple(row[i:i + n]) for i in range(len(row) - n + 1)]
        if not grams:
            continue
        seen, repeats = set(), 0
        for g in grams:
            repeats += g in seen
            seen.add(g)
        rates.append(repeats / len(grams))
    return float(np.mean(rates)) if rates else 0.0


def distinct_n(samples: np.ndarray, n: int = 2) -> float:
    """Distinct n-grams / total n-grams across all samples."""
    grams = [tuple(row[i:i + n]) for row in np.asarray(samples) for i in range(len(row) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def gen0_auroc(sample_ppl: np.ndarray, human_ppl: np.ndarray) -> float:
    """AUROC of -perplexity separating samples (label 1) from human text (label 0)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(sample_ppl)), np.zeros(len(human_ppl))]
    return float(roc_auc_score(y, -np.r_[sample_ppl, human_ppl]))
