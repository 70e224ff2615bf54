"""Corpora of fixed-length token blocks: the synthetic language, or real text from any shard.

Real text: records are tokenized, joined with the end-of-text token and cut into blocks of
`block` tokens (the seed paper's 64), the remainder dropped. A WikiText-2 directory (holding
``wiki.train*.tokens`` and ``wiki.test.tokens``) uses its own train and test files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError
from collapseguard.io.readers import iter_records


@dataclass
class Corpus:
    """Train and test blocks (n, block) int64, the tokenizer, and the truth when it is known."""

    train: np.ndarray
    test: np.ndarray
    tokenizer: object
    source: str
    language: object | None = None  # SyntheticLanguage for the synthetic corpus
    info: dict = field(default_factory=dict)

    @property
    def block(self) -> int:
        return int(self.train.shape[1])


def synthetic_corpus(n_train: int, n_test: int, block: int, seed: int, language=None) -> Corpus:
    """Blocks sampled from the synthetic language (train and test drawn independently)."""
    from collapseguard.simulate.lm.synthetic_language import SyntheticLanguage
    from collapseguard.simulate.lm.tokenizer import synthetic_tokenizer

    lang = language or SyntheticLanguage()
    rng = np.random.default_rng(seed)
    train, test = lang.sample(n_train, block, rng), lang.sample(n_test, block, rng)
    return Corpus(train, test, synthetic_tokenizer(lang.vocab), "synthetic", lang, {"language": lang.params()})


def _wikitext_files(path: Path) -> tuple[list[Path], list[Path]] | None:
    train = sorted(path.glob("wiki.train*.tokens"))
    test = sorted(path.glob("wiki.test*.tokens"))
    return (train, test) if path.is_dir() and train and test else None


def read_corpus_texts(paths: list[Path], column: str, max_chars: int | None = None) -> list[str]:
    """Texts of the records of `paths`, stopping after about `max_chars` characters."""
    texts, total = [], 0
    for path in paths:
        for rec in iter_records(path, column, flag="--text-column"):
            if rec.text.strip():
                texts.append(rec.text)
                total += len(rec.text)
            if max_chars is not None and total >= max_chars:
                return texts
    return texts


def to_blocks(texts: list[str], tokenizer, block: int, where: str) -> np.ndarray:
    """Tokenize, join records with end-of-text, cut into (n, block) blocks."""
    if not texts:
        raise CollapseguardError(f"{where}: no text records (empty corpus); pass a file with text")
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for chunk in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(chunk)
        ids.append(eos)
    n = len(ids) // block
    if n < 1:
        raise CollapseguardError(
            f"{where}: {len(ids)} tokens is smaller than one block of {block}; pass more text or a smaller --block-size"
        )
    return np.asarray(ids[: n * block], dtype=np.int64).reshape(n, block)


def text_corpus(path: str | Path, block: int, *, tokenizer=None, test_path: str | Path | None = None,
                column: str = "text", max_blocks: int | None = None, test_blocks: int = 256,
                vocab_size: int = 4096, seed: int = 0) -> Corpus:
    """Blocks from a text/jsonl/parquet/saved-datasets shard, or a WikiText-2 directory.

    Without `test_path` (and not WikiText) a seeded random 10% of the blocks is held out.
    A BPE tokenizer of `vocab_size` is trained on the training text when none is given.
    """
    from collapseguard.simulate.lm.tokenizer import train_bpe_tokenizer

    path = Path(path)
    if not path.exists():
        raise CollapseguardError(f"{path}: no such file or directory; pass --corpus synthetic or a text shard")
    wiki = _wikitext_files(path)
    train_paths, test_paths = wiki if wiki else ([path], [Path(test_path)] if test_path else [])
    # about 6 characters per BPE token on English text; read a margin more when capped
    max_chars = None if max_blocks is None else max_blocks * block * 8
    texts = read_corpus_texts(train_paths, column, max_chars)
    if not texts:
        raise CollapseguardError(f"{path}: no text records (empty corpus); pass a file with text")
    tokenizer = tokenizer or train_bpe_tokenizer(texts, vocab_size)
    blocks = to_blocks(texts, tokenizer, block, str(path))
    rng = np.random.default_rng(seed)
    if test_paths:
        test = to_blocks(read_corpus_texts(test_paths, column, test_blocks * block * 8), tokenizer, block, str(test_paths[0]))
        train = blocks
    else:
        if len(blocks) < 2:
            raise CollapseguardError(f"{path}: {len(blocks)} block(s) cannot be split into train and test; pass more text or --test-corpus")
        order = rng.permutation(len(blocks))
        n_test = max(1, len(blocks) // 10)
        test, train = blocks[order[:n_test]], blocks[np.sort(order[n_test:])]
    if max_blocks is not None:
        train = train[:max_blocks]
    test = test[:test_blocks]
    return Corpus(train, test, tokenizer, str(path), None, {"train_blocks": len(train), "test_blocks": len(test)})
