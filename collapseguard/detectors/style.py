"""Cheap stylometric features of a text: no model, pure Python and numpy.

Each text becomes a fixed vector (names in `FEATURE_NAMES`):
- lexical diversity: moving-average type-token ratio over 50-word windows (MATTR, Covington &
  McFall 2010, length-robust unlike plain TTR), hapax share, mean word length;
- sentence-length burstiness: mean and coefficient of variation of sentence lengths in words
  (machine text is often more uniform, GPTZero's "burstiness");
- punctuation profile: rate per word of each mark in `PUNCTUATION`;
- function-word profile: rate per word of each of `FUNCTION_WORDS` (Mosteller & Wallace 1963);
- repetition: share of word bigrams and trigrams that repeat an earlier one;
- shape: log word count, share of capitalised words, digits per word, line breaks per word.
Empty texts give NaN rows (the caller abstains).
"""

from __future__ import annotations

import math
import re

import numpy as np

FUNCTION_WORDS = (
    "the", "of", "and", "to", "a", "in", "is", "that", "it", "was", "for", "on", "with", "as", "i",
    "he", "she", "they", "we", "you", "but", "not", "this", "be", "at", "by", "have", "from", "or",
    "an", "his", "her", "had", "which", "would", "their", "there", "said", "were", "are",
)
PUNCTUATION = (",", ".", ";", ":", "!", "?", '"', "'", "(", "-")
MATTR_WINDOW = 50
_WORD = re.compile(r"[A-Za-z0-9']+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")

FEATURE_NAMES = (
    ["log_words", "mattr", "hapax_share", "mean_word_length", "sentence_len_mean", "sentence_len_cv",
     "repeat_bigrams", "repeat_trigrams", "capitalised_share", "digits_per_word", "newlines_per_word"]
    + [f"punct[{p}]" for p in PUNCTUATION]
    + [f"fw[{w}]" for w in FUNCTION_WORDS]
)
_FW_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}


def mattr(words: list[str], window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio; plain TTR when the text is shorter than the window."""
    if len(words) <= window:
        return len(set(words)) / len(words)
    counts: dict[str, int] = {}
    for w in words[:window]:
        counts[w] = counts.get(w, 0) + 1
    total = len(counts)
    for i in range(window, len(words)):
        old, new = words[i - window], words[i]
        counts[old] -= 1
        if counts[old] == 0:
            del counts[old]
        counts[new] = counts.get(new, 0) + 1
        total += len(counts)
    return total / ((len(words) - window + 1) * window)


def repeat_share(words: list[str], n: int) -> float:
    """Share of word n-grams that occurred earlier in the text."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def sentence_lengths(text: str) -> list[int]:
    """Words per sentence (split after . ! ? and at line breaks); empty pieces dropped."""
    return [n for n in (len(_WORD.findall(s)) for s in _SENTENCE_END.split(text)) if n > 0]


def text_features(text: str) -> np.ndarray:
    """The feature vector (len(FEATURE_NAMES),) of one text; NaN when it has no words."""
    raw = _WORD.findall(text)
    if not raw:
        return np.full(len(FEATURE_NAMES), np.nan)
    words = [w.lower() for w in raw]
    n = len(words)
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    sent = np.asarray(sentence_lengths(text) or [n], dtype=float)
    head = [
        math.log(n), mattr(words), sum(1 for c in counts.values() if c == 1) / n,
        sum(len(w) for w in words) / n, float(sent.mean()), float(sent.std() / sent.mean()),
        repeat_share(words, 2), repeat_share(words, 3),
        sum(1 for w in raw if w[0].isupper()) / n, sum(ch.isdigit() for ch in text) / n, text.count("\n") / n,
    ]
    punct = [text.count(p) / n for p in PUNCTUATION]
    fw = np.zeros(len(FUNCTION_WORDS))
    for w, c in counts.items():
        if w in _FW_INDEX:
            fw[_FW_INDEX[w]] = c / n
    return np.concatenate([head, punct, fw])


def style_features(texts) -> np.ndarray:
    """(len(texts), len(FEATURE_NAMES)) float64; NaN rows for texts without words."""
    texts = list(texts)
    out = np.empty((len(texts), len(FEATURE_NAMES)))
    for i, t in enumerate(texts):
        out[i] = text_features(t)
    return out


def english_share(texts) -> float:
    """Share of texts whose ten commonest English function words make >= 10% of their words.

    A crude language guess for the calibration record: English prose sits near 25-35%, other
    languages and code near 0.
    """
    top = set(FUNCTION_WORDS[:10])
    hits = 0
    texts = list(texts)
    for t in texts:
        words = [w.lower() for w in _WORD.findall(t)]
        hits += bool(words) and sum(w in top for w in words) / len(words) >= 0.10
    return hits / len(texts) if texts else float("nan")
