"""Build (and briefly train) small GPT-2 models with a locally trained tokenizer, fully offline.

Used by tests (a random tiny model from a config) and by benchmarks (a small reference model
trained on WikiText-2); the folders it writes load with `AutoModelForCausalLM.from_pretrained`.
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


def train_causal_lm(model, tokenizer, texts: list[str], block: int = 128, steps: int = 300, batch_size: int = 16,
                    lr: float = 1e-3, seed: int = 0, log_every: int = 50) -> list[float]:
    """Train `model` for `steps` on random `block`-token blocks of the concatenated texts; returns losses."""
    import torch

    ids = torch.tensor([t for x in tokenizer(texts)["input_ids"] for t in x + [tokenizer.eos_token_id]])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    for step in range(steps):
        starts = torch.randint(0, len(ids) - block - 1, (batch_size,), generator=gen)
        x = torch.stack([ids[s : s + block] for s in starts.tolist()])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and step % log_every == 0:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    model.eval()
    return losses
