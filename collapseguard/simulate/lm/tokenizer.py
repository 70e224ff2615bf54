"""Tokenizers for the LM world: a fixed word-level one for the synthetic language, a byte-level
BPE trained locally with `tokenizers`, or one loaded from a local directory."""

from __future__ import annotations

from pathlib import Path

from collapseguard.errors import CollapseguardError

EOS = "<|endoftext|>"
UNK = "<unk>"


def _wrap(tok, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


def synthetic_tokenizer(vocab: int):
    """Word-level tokenizer whose id v is word ``t<v>`` of the synthetic language (ids v < vocab)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    words = {f"t{i}": i for i in range(vocab)} | {UNK: vocab, EOS: vocab + 1}
    tok = Tokenizer(models.WordLevel(words, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    return _wrap(tok, unk_token=UNK, eos_token=EOS, pad_token=EOS, bos_token=EOS)


def train_bpe_tokenizer(texts, vocab_size: int = 4096):
    """Byte-level BPE (GPT-2 style) trained on `texts` (an iterable of strings)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok, eos_token=EOS, pad_token=EOS, bos_token=EOS, unk_token=EOS)


def load_tokenizer(path: str | Path):
    """A tokenizer saved with save_pretrained in a local directory (never the hub)."""
    path = Path(path)
    if not path.is_dir() or not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        raise CollapseguardError(f"{path}: no tokenizer files (tokenizer.json); pass a directory saved with save_pretrained")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # transformers raises many types for broken dirs
        raise CollapseguardError(f"{path}: cannot load the tokenizer ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); check the directory") from None
    if tok.eos_token is None:
        tok.eos_token = EOS if EOS in tok.get_vocab() else tok.convert_ids_to_tokens(len(tok) - 1)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
