"""The machine share of a corpus from word-occurrence distributions, without per-record decisions.

Liang et al. 2024 ("Monitoring AI-Modified Content at Scale", arXiv 2403.07183) model a corpus
as a mixture (1 - a) P + a Q of a human distribution P and a machine distribution Q, each
estimated from a reference corpus, and report the maximum-likelihood a. Implemented from that
description:

- a *unit* (a sentence, or a whole document) is the set of vocabulary words it contains; a word
  t occurs in a human unit with probability p_t (the share of the human reference's units that
  contain it, smoothed (k + 1/2) / (n + 1)), in a machine unit with q_t; words are independent,
  so log P(x) = sum over the vocabulary of log p_t (t in x) or log (1 - p_t) (t not in x);
- the vocabulary is every word found in at least `min_units` units of *each* reference (a
  word seen in one reference only gets no say);
- a maximises sum over the corpus's units of log((1 - a) P(x) + a Q(x)) on [0, 1]; the
  log-likelihood is concave in a, so the root of its derivative is found by bisection;
- word independence overstates a unit's evidence (the more so the smaller the references), which
  biases the MLE; unless `calibrate` is off, the log-ratio log Q(x) - log P(x) is rescaled by a
  logistic fit on held-out reference text (`calibrate_log_ratio`, an addition to the paper);
- a corpus written unlike both references has word rates far from every mix of them: when they
  are more than `max_mismatch` times further from the fitted mix than the references are from
  each other (`mismatch`, an addition to the paper) the result is ``assumption_failed``, no share;
- the 95% interval is a percentile bootstrap that resamples the corpus's documents (all units of
  a document together), as in the paper. It carries the corpus's sampling error, not the error of
  the references or of the model: a corpus written unlike both references (another domain,
  another generator) can give a narrow interval around a wrong figure; see BENCHMARKS.md.

With ``unit = "sentence"`` a is the share of the corpus's sentences that are machine text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from collapseguard.errors import CollapseguardError

UNITS = ("sentence", "document")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
BISECTION_STEPS = 40
MAX_MISMATCH = 3.0


def split_units(text: str, unit: str) -> list[set[str]]:
    """The word sets of a text's units (sentences or the whole document); empty units dropped."""
    parts = _SENTENCE.split(text) if unit == "sentence" else [text]
    sets = [set(_WORD.findall(p.lower())) for p in parts]
    return [s for s in sets if s]


@dataclass
class Occurrences:
    """A binary unit x vocabulary matrix (scipy CSR) and the document of every unit."""

    matrix: object
    doc: np.ndarray
    n_docs: int

    @property
    def n_units(self) -> int:
        return self.matrix.shape[0]


def occurrences(texts, vocab: dict[str, int], unit: str) -> Occurrences:
    """The occurrence matrix of `texts` over `vocab` (words outside it are ignored)."""
    from scipy import sparse

    rows, cols, doc = [], [], []
    n_docs = 0
    for text in texts:
        for words in split_units(text, unit):
            idx = [vocab[w] for w in words if w in vocab]
            rows += [len(doc)] * len(idx)
            cols += idx
            doc.append(n_docs)
        n_docs += 1
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(doc), len(vocab)))
    return Occurrences(matrix, np.asarray(doc, dtype=np.int64), n_docs)


def build_vocabulary(human: list[str], machine: list[str], unit: str, min_units: int) -> dict[str, int]:
    """Words found in at least `min_units` units of each reference, in sorted order."""
    def unit_counts(texts):
        counts: dict[str, int] = {}
        for text in texts:
            for words in split_units(text, unit):
                for w in words:
                    counts[w] = counts.get(w, 0) + 1
        return counts

    h, m = unit_counts(human), unit_counts(machine)
    words = sorted(w for w, k in h.items() if k >= min_units and m.get(w, 0) >= min_units)
    return {w: i for i, w in enumerate(words)}


@dataclass
class ReferenceModel:
    """The fitted references: vocabulary, occurrence matrices, and how units are cut."""

    vocab: dict[str, int]
    human: Occurrences
    machine: Occurrences
    unit: str
    scale: float = 1.0
    shift: float = 0.0

    def weights(self, which: Occurrences, doc_counts: np.ndarray | None) -> np.ndarray:
        return np.ones(which.n_units) if doc_counts is None else doc_counts[which.doc].astype(np.float64)

    def log_ratio(self, corpus: Occurrences, human_counts=None, machine_counts=None) -> np.ndarray:
        """log Q(x) - log P(x) per corpus unit, with P, Q estimated from (resampled) references."""
        lp1, lp0 = occurrence_logs(self.human.matrix, self.weights(self.human, human_counts))
        lq1, lq0 = occurrence_logs(self.machine.matrix, self.weights(self.machine, machine_counts))
        present = (lq1 - lq0) - (lp1 - lp0)
        raw = corpus.matrix @ present + float(np.sum(lq0 - lp0))
        return self.scale * raw + self.shift


def occurrence_logs(matrix, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log p_t and log(1 - p_t) per word, p_t = (weighted units containing t + 1/2) / (units + 1)."""
    counts = np.asarray(matrix.T @ weights).ravel()
    p = (counts + 0.5) / (weights.sum() + 1.0)
    return np.log(p), np.log1p(-p)


def fit_references(human: list[str], machine: list[str], unit: str = "sentence", min_units: int = 5,
                   calibrate: bool = True) -> ReferenceModel:
    """P and Q from a human and a machine reference corpus; `calibrate` rescales the log-ratio
    (see `calibrate_log_ratio`)."""
    if unit not in UNITS:
        raise CollapseguardError(f"unit {unit!r}: choose one of {', '.join(UNITS)}")
    model = _fit(human, machine, unit, min_units)
    if calibrate:
        model.scale, model.shift = calibrate_log_ratio(human, machine, unit, min_units)
    return model


def _fit(human: list[str], machine: list[str], unit: str, min_units: int) -> ReferenceModel:
    vocab = build_vocabulary(human, machine, unit, min_units)
    if not vocab:
        raise CollapseguardError(f"the references share no word found in {min_units}+ units of each "
                                 "(too little text, or different languages); add reference text or lower min_units")
    return ReferenceModel(vocab, occurrences(human, vocab, unit), occurrences(machine, vocab, unit), unit)


def calibrate_log_ratio(human: list[str], machine: list[str], unit: str, min_units: int,
                        folds: int = 2) -> tuple[float, float]:
    """(scale, shift) making scale * log-ratio + shift a calibrated log-odds on held-out reference text.

    Word independence overstates the evidence of a unit, the more so the smaller the references,
    and the mixture MLE then drifts towards whichever reference a new text is least unlike. The
    references are cut into `folds` source-grouped folds (`detectors.grouping.source_groups` over
    both references together: a machine text that continues a human text stays with it); each
    fold's units are scored by a model fitted on the other folds, and a logistic regression of the
    label on that score gives the rescaling. Not in Liang et al. 2024.
    """
    from collapseguard.detectors.grouping import group_folds, source_groups

    texts = list(human) + list(machine)
    fold = group_folds(source_groups(texts), folds, seed=0)
    scores, labels = [], []
    for f in range(folds):
        train_h = [t for t, k in zip(human, fold[:len(human)]) if k != f]
        train_m = [t for t, k in zip(machine, fold[len(human):]) if k != f]
        model = _fit(train_h, train_m, unit, min_units)
        for label, part, kf in ((0.0, human, fold[:len(human)]), (1.0, machine, fold[len(human):])):
            held = occurrences([t for t, k in zip(part, kf) if k == f], model.vocab, unit)
            scores.append(model.log_ratio(held))
            labels.append(np.full(held.n_units, label))
    return logistic_1d(np.concatenate(scores), np.concatenate(labels))


def logistic_1d(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of a class-balanced logistic regression of y on x (Newton's method)."""
    w = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))  # equal class weight: log-odds = log LR
    design = np.c_[x, np.ones_like(x)]
    beta = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -500, 500)))
        grad = design.T @ (w * (y - p))
        hess = (design * (w * p * (1 - p))[:, None]).T @ design + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def mixture_slope(log_ratio: np.ndarray, weights: np.ndarray):
    """a -> d/da sum w log(1 - a + a r), r = exp(log_ratio): sum w (r - 1) / (1 - a + a r), overflow-free."""
    big = log_ratio > 0
    e = np.exp(-np.abs(log_ratio))  # 1/r where r > 1, else r
    top = np.where(big, 1.0 - e, e - 1.0)

    def slope(a: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            bottom = np.where(big, (1.0 - a) * e + a, (1.0 - a) + a * e)
            return float(np.dot(weights, top / bottom))

    return slope


def mixture_mle(log_ratio: np.ndarray, weights: np.ndarray | None = None) -> float:
    """argmax over a in [0, 1] of sum w log((1 - a) + a r): the root of the (decreasing) derivative."""
    slope = mixture_slope(log_ratio, np.ones_like(log_ratio) if weights is None else weights)
    if slope(0.0) <= 0.0:
        return 0.0
    if slope(1.0) >= 0.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if slope(mid) > 0.0 else (lo, mid)
    return 0.5 * (lo + hi)


def log_likelihood(log_ratio: np.ndarray, a: float) -> float:
    """sum log((1 - a) + a r) (the corpus log-likelihood less the human-only one)."""
    return float(np.sum(np.logaddexp(np.log1p(-a) if a < 1 else -np.inf, np.log(a) + log_ratio if a > 0 else -np.inf)))


def estimate_share(model: ReferenceModel, texts: list[str], draws: int = 1000, seed: int = 0,
                   max_mismatch: float = MAX_MISMATCH) -> dict:
    """The MLE machine share of `texts` with its 95% bootstrap interval (corpus documents
    resampled), as a summary dict; ``kind = "assumption_failed"`` and no estimate when the corpus's
    word rates are more than `max_mismatch` times further from the fitted mix than the
    references are from each other (`mismatch`)."""
    corpus = occurrences(texts, model.vocab, model.unit)
    base = {"kind": "distributional", "unit": model.unit, "documents": corpus.n_docs, "units": corpus.n_units,
            "vocabulary": len(model.vocab), "calibration": {"scale": model.scale, "shift": model.shift},
            "reference_documents": {"human": model.human.n_docs, "machine": model.machine.n_docs}}
    if corpus.n_units == 0:
        return {**base, "estimate": None, "low": None, "high": None, "kind": "none",
                "note": "no readable text in the corpus; nothing to estimate"}
    log_ratio = model.log_ratio(corpus)
    est = mixture_mle(log_ratio)
    base["mismatch"], base["max_mismatch"] = mismatch(model, corpus, est), max_mismatch
    if base["mismatch"] > max_mismatch:
        return {**base, "estimate": None, "low": None, "high": None, "kind": "assumption_failed", "mle": est,
                "note": f"assumption failed: this corpus's word use is {base['mismatch']:.1f} times further from any "
                        f"mix of the references than the references are from each other (limit {max_mismatch:g}); "
                        "they do not describe it (another domain?), so no share is estimated; give references "
                        "written like this corpus"}
    low, high = bootstrap_interval(log_ratio, corpus, draws, seed)
    what = "sentences" if model.unit == "sentence" else "documents"
    return {**base, "estimate": est, "low": low, "high": high, "draws": draws,
            "note": f"distributional MLE (Liang et al. 2024): share of {what} that are machine text, from word "
                    "occurrences in the human and machine references; the 95% bootstrap interval resamples this "
                    "corpus's documents and holds only if the references write like its human and machine text"}


def bootstrap_interval(log_ratio: np.ndarray, corpus: Occurrences, draws: int, seed: int) -> tuple[float, float]:
    """The 2.5% and 97.5% quantiles of the MLE over `draws` resamples of the corpus's documents."""
    rng = np.random.default_rng(seed)
    boot = np.empty(draws)
    for b in range(draws):
        counts = np.bincount(rng.integers(0, corpus.n_docs, corpus.n_docs), minlength=corpus.n_docs)
        boot[b] = mixture_mle(log_ratio, counts[corpus.doc].astype(np.float64))
    low, high = np.quantile(boot, [0.025, 0.975])
    return float(low), float(high)


def word_rates(occ: Occurrences) -> np.ndarray:
    """The share of units that contain each vocabulary word."""
    return np.asarray(occ.matrix.sum(axis=0)).ravel() / max(occ.n_units, 1)


def mismatch(model: ReferenceModel, corpus: Occurrences, a: float) -> float:
    """How far the corpus's word rates lie from the fitted mix (1 - a) p + a q, relative to how far
    the two references lie from each other: mean_t (c_t - r_t)^2 / r_t(1 - r_t), less its
    sampling expectation 1 / units, over mean_t (p_t - q_t)^2 / m_t(1 - m_t) with m = (p + q) / 2.
    Near or below 1 when the corpus is written like the references; several times that when it
    is another domain (BENCHMARKS.md: 0.4-2.7 in domain, 5.5-10.9 across domains)."""
    c, p, q = word_rates(corpus), word_rates(model.human), word_rates(model.machine)
    r, mid = (1 - a) * p + a * q, (p + q) / 2
    residual = np.mean((c - r) ** 2 / np.maximum(r * (1 - r), 1e-9)) - 1.0 / max(corpus.n_units, 1)
    signal = np.mean((p - q) ** 2 / np.maximum(mid * (1 - mid), 1e-9))
    return float(residual / signal) if signal > 0 else float("inf")


def read_reference(policy, key: str) -> list[str]:
    """The texts of the policy's `[prevalence]` reference `key` (paths relative to the policy)."""
    from collapseguard.io.readers import read_texts

    spec = policy.prevalence
    column = spec.reference_column or policy.text_column
    texts = []
    for rel in getattr(spec, key):
        path = policy.root / rel
        if not path.exists():
            raise CollapseguardError(f"{policy.source}: [prevalence] {key} {rel!r}: no such file ({path}); fix the path")
        texts += [r.text for r in read_texts([path], column)]
    if not texts:
        raise CollapseguardError(f"{policy.source}: [prevalence] {key} holds no text; point it at jsonl/parquet/txt records")
    return texts


def fit_policy_references(policy) -> ReferenceModel | None:
    """The reference model of the policy's `[prevalence]` table; None unless it asks for the
    distributional estimate."""
    spec = policy.prevalence
    if spec is None or not spec.distributional:
        return None
    return fit_references(read_reference(policy, "human_reference"), read_reference(policy, "machine_reference"),
                          spec.unit, spec.min_units, spec.calibrate)


def corpus_share(model: ReferenceModel, policy, shards) -> dict:
    """`estimate_share` over every readable record of `shards` (streamed; unreadable or too-long
    records left out, as the scan leaves them undecided)."""
    from collapseguard.io.shards import iter_chunks
    from collapseguard.scan.policy import screen_texts

    def texts():
        for shard in shards:
            for chunk in iter_chunks(shard, policy.text_column, policy.batch_size, text_only=True):
                yield from (t for t in screen_texts(chunk.texts, policy.max_chars)[0] if t)

    return estimate_share(model, texts(), policy.prevalence.draws, max_mismatch=policy.prevalence.max_mismatch)
