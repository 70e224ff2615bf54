"""A ground-truth language: a seeded hidden-Markov source with Zipfian emissions and a long rare tail.

Source (all parameters recorded by :meth:`SyntheticLanguage.params`):

* ``states`` hidden states; transitions ``T[k, :] ~ Dirichlet(alpha_transition)`` plus
  ``stickiness`` on the diagonal (topic-like persistence), renormalised;
* emissions ``E[k, v] ∝ zipf(v) * exp(sigma * G[k, v])`` with ``zipf(v) = 1 / (v + 1) ** zipf_s``
  and ``G`` standard normal: every state prefers its own words but globally rare words stay
  rare, giving a long tail;
* the first hidden state is drawn from the stationary distribution of ``T``.

Because the source is an HMM, everything is exact by the forward algorithm:
``P(x_t | x_<t) = sum_k alpha_t(k) E[k, x_t]`` with ``alpha_t`` the filtered state posterior.
Token ``v`` of the language is token id ``v`` of its tokenizer (text form ``t<v>``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from collapseguard.errors import CollapseguardError


@dataclass(frozen=True)
class LanguageConfig:
    """Parameters of the synthetic language (defaults: 512 words, 16 states, Zipf exponent 1.1)."""

    vocab: int = 512
    states: int = 16
    zipf_s: float = 1.1
    sigma: float = 1.5
    alpha_transition: float = 0.2
    stickiness: float = 2.0
    tail_share: float = 0.1  # the tail: rarest words holding this share of the unigram mass
    seed: int = 1234

    def __post_init__(self):
        if self.vocab < 2 or self.states < 1:
            raise CollapseguardError(f"synthetic language needs vocab >= 2 and states >= 1, got {self.vocab}, {self.states}")
        if not 0 < self.tail_share < 1:
            raise CollapseguardError(f"tail_share must lie in (0, 1), got {self.tail_share}")


def _stationary(T: np.ndarray) -> np.ndarray:
    """Stationary distribution of a row-stochastic matrix (left eigenvector for eigenvalue 1)."""
    w, v = np.linalg.eig(T.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1.0))])
    pi = np.abs(pi)
    return pi / pi.sum()


class SyntheticLanguage:
    """The hidden-Markov truth: sample text, exact log-likelihoods, exact next-word distributions."""

    def __init__(self, config: LanguageConfig | None = None, *, transition=None, emission=None, initial=None):
        self.config = config or LanguageConfig()
        c = self.config
        rng = np.random.default_rng(c.seed)
        if transition is None:
            T = rng.dirichlet(np.full(c.states, c.alpha_transition), size=c.states) + c.stickiness * np.eye(c.states)
            transition = T / T.sum(axis=1, keepdims=True)
        if emission is None:
            zipf = 1.0 / np.arange(1, c.vocab + 1) ** c.zipf_s
            E = zipf[None, :] * np.exp(c.sigma * rng.standard_normal((c.states, c.vocab)))
            emission = E / E.sum(axis=1, keepdims=True)
        self.T = np.asarray(transition, dtype=np.float64)  # (K, K)
        self.E = np.asarray(emission, dtype=np.float64)  # (K, V)
        self.pi0 = _stationary(self.T) if initial is None else np.asarray(initial, dtype=np.float64)  # (K,)
        self.vocab = self.E.shape[1]
        self.unigram = self.pi0 @ self.E  # (V,) stationary word frequencies
        self.tail = self._tail_tokens(c.tail_share)

    def _tail_tokens(self, share: float) -> np.ndarray:
        """Ids of the rarest words that together hold at most `share` of the unigram mass."""
        order = np.argsort(self.unigram)  # rarest first
        cum = np.cumsum(self.unigram[order])
        return np.sort(order[cum <= share])

    def params(self) -> dict:
        return asdict(self.config) | {"tail_words": int(self.tail.size), "tail_unigram_mass": float(self.unigram[self.tail].sum())}

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """`n` independent sequences of `length` words, (n, length) int64."""
        K = self.T.shape[0]
        cumT, cumE = np.cumsum(self.T, axis=1), np.cumsum(self.E, axis=1)
        state = np.minimum(np.searchsorted(np.cumsum(self.pi0), rng.random(n)), K - 1)
        out = np.empty((n, length), dtype=np.int64)
        for t in range(length):
            u = rng.random(n)[:, None]
            out[:, t] = np.minimum((u > cumE[state]).sum(axis=1), self.vocab - 1)
            u = rng.random(n)[:, None]
            state = np.minimum((u > cumT[state]).sum(axis=1), K - 1)
        return out

    def next_word_probs(self, seqs: np.ndarray) -> np.ndarray:
        """Exact P(x_t = . | x_<t) for every position: (n, length, V). Position 0 is the unigram."""
        seqs = np.asarray(seqs)
        n, length = seqs.shape
        alpha = np.broadcast_to(self.pi0, (n, self.pi0.size)).copy()  # (n, K) P(z_t | x_<t)
        out = np.empty((n, length, self.vocab))
        for t in range(length):
            out[:, t] = alpha @ self.E
            post = alpha * self.E[:, seqs[:, t]].T  # (n, K) ∝ P(z_t | x_<=t)
            post /= post.sum(axis=1, keepdims=True)
            alpha = post @ self.T
        return out

    def log_likelihood(self, seqs: np.ndarray, start: int = 0) -> np.ndarray:
        """Exact log P(x_start.. | x_<start) in nats of each sequence (forward algorithm), (n,)."""
        seqs = np.asarray(seqs)
        n, length = seqs.shape
        alpha = np.broadcast_to(self.pi0, (n, self.pi0.size)).copy()  # (n, K) P(z_t | x_<t)
        total = np.zeros(n)
        for t in range(length):
            emit = self.E[:, seqs[:, t]].T  # (n, K) P(x_t | z_t)
            p = (alpha * emit).sum(axis=1)  # (n,) P(x_t | x_<t)
            if t >= start:
                total += np.log(p)
            alpha = ((alpha * emit) / p[:, None]) @ self.T
        return total

    def entropy_rate(self, rng: np.random.Generator, n: int = 256, length: int = 64) -> float:
        """Monte-Carlo per-word cross-entropy of the truth with itself (nats), a floor for test loss."""
        seqs = self.sample(n, length, rng)
        return float(-self.log_likelihood(seqs).sum() / seqs.size)


def kl_and_tail(truth_probs: np.ndarray, model_probs: np.ndarray, tail: np.ndarray) -> tuple[float, float]:
    """Per-word KL(truth || model) in nats and the model's mass on the tail, on shared contexts.

    Both arrays are next-word distributions (n, length, V) on the same contexts drawn from the
    truth; the model's array may have extra (special-token) columns, whose mass counts as lost.
    KL = mean over contexts of sum_v p(v) log(p(v) / q(v)) (exact over the next word, Monte
    Carlo over contexts; its expectation over truth contexts is KL(P^L || Q^L) / L).
    """
    V = truth_probs.shape[-1]
    p, q = truth_probs, np.clip(model_probs[..., :V], 1e-30, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    kl = terms.sum(axis=-1).mean()
    tail_mass = model_probs[..., tail].sum(axis=-1).mean()
    return float(kl), float(tail_mass)
