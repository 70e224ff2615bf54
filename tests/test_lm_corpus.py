"""Corpora of token blocks from real text and from WikiText-2."""

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

from collapseguard.simulate.lm.corpus import synthetic_corpus, text_corpus  # noqa: E402

WIKITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"


def test_text_corpus_blocks_are_the_tokenized_records_joined_with_eos(tmp_path):
    f = tmp_path / "t.txt"
    lines = [f"line {i} says hello to line {i + 1}" for i in range(30)]
    f.write_text("\n".join(lines) + "\n")
    c = text_corpus(f, 8, vocab_size=300, seed=0)
    tok = c.tokenizer
    ids = []
    for line in lines:
        ids += tok(line, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    n = len(ids) // 8
    expected = np.array(ids[: n * 8]).reshape(n, 8)
    both = np.concatenate([c.train, c.test])
    assert len(both) == n and len(c.test) == max(1, n // 10)
    assert sorted(map(tuple, both)) == sorted(map(tuple, expected))


def test_synthetic_corpus_is_seeded():
    a, b = synthetic_corpus(4, 2, 16, seed=5), synthetic_corpus(4, 2, 16, seed=5)
    np.testing.assert_array_equal(a.train, b.train)
    assert a.train.shape == (4, 16) and a.train.max() < a.language.vocab


def test_wikitext_uses_its_train_and_test_files():
    if not WIKITEXT.exists():
        pytest.skip("../shared/data/wikitext-2 is not present (reference data beside the project)")
    c = text_corpus(WIKITEXT, 64, max_blocks=20, test_blocks=5, vocab_size=500)
    assert c.train.shape == (20, 64) and c.test.shape == (5, 64)
    first_test_line = next(line for line in (WIKITEXT / "wiki.test.tokens").read_text().splitlines() if line.strip())
    assert c.tokenizer.decode(c.test[0]).startswith(first_test_line[:20])
