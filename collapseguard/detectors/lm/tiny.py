"""Build small random GPT-2 models with a locally trained tokenizer, fully offline.

Used by tests and benchmarks that need a model folder quickly (trained reference models come
from `collapseguard gen0 train`); the folders load with `AutoModelForCausalLM.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def build_tiny_gpt2(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 512, n_positions: int = 128,
                    n_embd: int = 32, n_layer: int = 2, n_head: int = 2, seed: int = 0):
    """Save a randomly initialised GPT-2 and its tokenizer to `out_dir` (safetensors); return (tokenizer, model)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return tokenizer, model
