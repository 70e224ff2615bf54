"""Unicode normalisation applied before tokenising text for watermark detection.

Cheap evasion of a token-level watermark swaps characters for look-alikes or hides
zero-width characters between letters, so the tokenizer sees other tokens. ``normalize_text``
undoes the common cases: NFKC (full-width forms, ligatures, compatibility characters),
removal of zero-width and other invisible format characters, and folding of Cyrillic and
Greek letters that look like Latin ones.
"""

from __future__ import annotations

import unicodedata

# Invisible characters: zero-width space/non-joiner/joiner, word joiner, BOM, soft hyphen,
# Mongolian vowel separator, invisible math operators, bidi marks and embeddings.
ZERO_WIDTH = (
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Cyrillic and Greek letters that render like Latin ones (Unicode confusables, the common set).
HOMOGLYPHS = {
    # Cyrillic lower case
    "а": "a", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "о": "o", "р": "p",
    "ԛ": "q", "ѕ": "s", "ԝ": "w", "х": "x", "у": "y", "ӏ": "l",
    # Cyrillic upper case
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K",
    "М": "M", "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "Ү": "Y", "Ԝ": "W",
    # Greek
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ο": "o", "ν": "v",
    "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
}  # fmt: skip

_TABLE = {ord(c): None for c in ZERO_WIDTH} | {ord(k): v for k, v in HOMOGLYPHS.items()}


def normalize_text(text: str) -> str:
    """NFKC, then drop zero-width characters and fold Cyrillic/Greek look-alikes to Latin."""
    return unicodedata.normalize("NFKC", text).translate(_TABLE)
