"""Stylometric features against direct computations."""

import numpy as np

from collapseguard.detectors.style import (
    FEATURE_NAMES,
    english_share,
    mattr,
    style_features,
    text_features,
)


def naive_mattr(words, window=50):
    if len(words) <= window:
        return len(set(words)) / len(words)
    return float(np.mean([len(set(words[i : i + window])) / window for i in range(len(words) - window + 1)]))


def test_mattr_matches_the_sliding_window_definition():
    rng = np.random.default_rng(0)
    for n in (10, 50, 51, 300):
        words = list(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=n))
        assert abs(mattr(words) - naive_mattr(words)) < 1e-12


def test_features_of_a_known_text():
    text = "The cat sat. The cat sat again, and the dog ran!\nWhy?"
    f = dict(zip(FEATURE_NAMES, text_features(text), strict=True))
    words = ["the", "cat", "sat", "the", "cat", "sat", "again", "and", "the", "dog", "ran", "why"]
    assert f["log_words"] == np.log(len(words))
    lengths = np.array([3, 8, 1])  # "The cat sat." / "The cat sat again, and the dog ran!" / "Why?"
    assert np.isclose(f["sentence_len_mean"], lengths.mean()) and np.isclose(f["sentence_len_cv"], lengths.std() / lengths.mean())
    assert np.isclose(f["fw[the]"], 3 / 12) and np.isclose(f["punct[,]"], 1 / 12) and np.isclose(f["punct[!]"], 1 / 12)
    assert np.isclose(f["repeat_bigrams"], 2 / 11)  # "the cat", "cat sat" repeat once each
    assert np.isclose(f["repeat_trigrams"], 1 / 10)


def test_empty_text_gives_nan_and_english_share():
    x = style_features(["", "hello there"])
    assert np.isnan(x[0]).all() and np.isfinite(x[1]).all()
    assert english_share(["the cat and the dog is in the house", "xyz qqq www"]) == 0.5
