"""The ground-truth synthetic language: exact likelihoods against brute-force enumeration."""

import itertools

import numpy as np
import pytest

from collapseguard.simulate.lm.synthetic_language import (
    LanguageConfig,
    SyntheticLanguage,
    kl_and_tail,
)


def tiny_hmm(seed=0, states=2, vocab=3):
    return SyntheticLanguage(LanguageConfig(vocab=vocab, states=states, seed=seed, tail_share=0.3))


def brute_force_prob(lang, x):
    """P(x) = sum over hidden paths z of pi(z0) E[z0,x0] prod T[z_{t-1},z_t] E[z_t,x_t]."""
    K = lang.T.shape[0]
    total = 0.0
    for z in itertools.product(range(K), repeat=len(x)):
        p = lang.pi0[z[0]] * lang.E[z[0], x[0]]
        for t in range(1, len(x)):
            p *= lang.T[z[t - 1], z[t]] * lang.E[z[t], x[t]]
        total += p
    return total


def all_sequences(vocab, length):
    return np.array(list(itertools.product(range(vocab), repeat=length)))


def test_exact_likelihood_equals_brute_force_enumeration():
    lang = tiny_hmm()
    seqs = all_sequences(3, 4)
    brute = np.array([brute_force_prob(lang, x) for x in seqs])
    np.testing.assert_allclose(np.exp(lang.log_likelihood(seqs)), brute, rtol=1e-10)
    assert brute.sum() == pytest.approx(1.0)


def test_next_word_probs_are_conditionals_of_brute_force():
    lang = tiny_hmm(seed=3)
    seqs = all_sequences(3, 3)
    probs = lang.next_word_probs(seqs)
    for x, p in zip(seqs, probs, strict=True):
        for t in range(1, 3):
            joint = brute_force_prob(lang, x[: t + 1])
            prefix = brute_force_prob(lang, x[:t])
            assert p[t, x[t]] == pytest.approx(joint / prefix, rel=1e-10)
    # conditional log-likelihood from position 2 = log P(x) - log P(x_<2)
    full, prefix = lang.log_likelihood(seqs), lang.log_likelihood(seqs[:, :2])
    np.testing.assert_allclose(lang.log_likelihood(seqs, start=2), full - prefix, rtol=1e-10)


def test_kl_is_zero_for_the_truth_and_matches_sequence_kl():
    truth, model = tiny_hmm(seed=1), tiny_hmm(seed=2)
    seqs = all_sequences(3, 3)
    p_seq = np.exp(truth.log_likelihood(seqs))
    q_seq = np.exp(model.log_likelihood(seqs))
    P, Q = truth.next_word_probs(seqs), model.next_word_probs(seqs)
    assert kl_and_tail(P, P, truth.tail)[0] == pytest.approx(0.0, abs=1e-12)
    # the per-token estimator, weighted exactly over truth contexts, is KL(P^L || Q^L) / L
    per_token = sum(w * kl_and_tail(P[i:i + 1], Q[i:i + 1], truth.tail)[0] for i, w in enumerate(p_seq))
    assert per_token == pytest.approx(np.sum(p_seq * np.log(p_seq / q_seq)) / 3, rel=1e-9)


def test_sampler_frequencies_match_exact_probabilities():
    lang = tiny_hmm(seed=4)
    rng = np.random.default_rng(0)
    sample = lang.sample(200_000, 2, rng)
    counts = np.bincount(sample[:, 0] * 3 + sample[:, 1], minlength=9) / len(sample)
    exact = np.exp(lang.log_likelihood(all_sequences(3, 2)))
    np.testing.assert_allclose(counts, exact, atol=0.005)


def test_tail_is_the_rarest_words_within_the_share():
    lang = SyntheticLanguage()
    assert lang.unigram[lang.tail].sum() <= lang.config.tail_share
    assert lang.tail.size > 0
    assert lang.unigram[lang.tail].max() <= np.delete(lang.unigram, lang.tail).min()
    assert lang.unigram.sum() == pytest.approx(1.0)


def test_model_mass_on_specials_counts_as_lost():
    lang = tiny_hmm()
    P = lang.next_word_probs(all_sequences(3, 2))
    Q = np.concatenate([P * 0.5, np.full(P.shape[:-1] + (1,), 0.5)], axis=-1)  # half the mass on a special token
    kl, _ = kl_and_tail(P, Q, lang.tail)
    assert kl == pytest.approx(np.log(2.0))
