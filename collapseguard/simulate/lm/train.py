"""Train a causal LM on token blocks, and score blocks with it (per-block perplexity)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from collapseguard.errors import CollapseguardError


@dataclass(frozen=True)
class TrainConfig:
    """Plain AdamW causal-LM training: `epochs` passes over the blocks in seeded random order."""

    epochs: int = 5
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.0
    warmup_steps: int = 20

    def __post_init__(self):
        from collapseguard.errors import CollapseguardError

        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise CollapseguardError(
                f"need --epochs >= 1, --batch-size >= 1 and --lr > 0, got {self.epochs}, {self.batch_size}, {self.lr}")


def pick_device(name: str = "auto") -> str:
    """`auto` picks CUDA when present, else the CPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CollapseguardError(f"--device {name}: CUDA is not available here; pass --device cpu or auto")
    return name


def train_model(model, blocks: np.ndarray, config: TrainConfig, seed: int, device: str = "cpu",
                all_positions: bool = False) -> float:
    """Train `model` in place on (n, block) token ids; returns training tokens per second.

    all_positions: place each batch at a random offset within the model's context, so a model
    trained from scratch on blocks shorter than its context has trained position embeddings
    everywhere it will later generate or score (a prompt block plus its continuation).
    """
    import torch

    torch.manual_seed(seed)  # dropout
    model.to(device).train()
    gen = torch.Generator().manual_seed(seed)
    offsets = position_offsets(model, blocks.shape[1], seed) if all_positions else None
    data = torch.as_tensor(blocks, dtype=torch.long)
    steps = config.epochs * ((len(data) + config.batch_size - 1) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps)) * max(0.0, 1 - s / max(1, steps)))
    start, tokens = time.perf_counter(), 0
    for _ in range(config.epochs):
        for idx in torch.randperm(len(data), generator=gen).split(config.batch_size):
            batch = data[idx].to(device)
            position_ids = None if offsets is None else (next(offsets) + torch.arange(batch.shape[1], device=device)).expand_as(batch)
            loss = model(input_ids=batch, position_ids=position_ids, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tokens += batch.numel()
    model.eval()
    return tokens / max(time.perf_counter() - start, 1e-9)


def position_offsets(model, length: int, seed: int):
    """Endless seeded offsets in [0, context - length] (only 0 when the context is one block)."""
    import torch

    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", length)
    gen = torch.Generator().manual_seed(seed + 1)
    while True:
        yield int(torch.randint(0, max(context - length, 0) + 1, (1,), generator=gen))


def _batched_logits(model, blocks: np.ndarray, batch_size: int, device: str):
    """(tokens, logits of positions 0..L-2) per batch of blocks, under no_grad."""
    import torch

    model.to(device).eval()
    with torch.no_grad():
        for i in range(0, len(blocks), batch_size):
            x = torch.as_tensor(blocks[i:i + batch_size], dtype=torch.long, device=device)
            yield x, model(input_ids=x).logits[:, :-1]


def block_nll(model, blocks: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Summed negative log-likelihood (nats) of tokens 1..L-1 of each block given its prefix, (n,)."""
    import torch

    out = []
    for x, logits in _batched_logits(model, blocks, batch_size, device):
        nll = -torch.log_softmax(logits.float(), dim=-1).gather(-1, x[:, 1:, None])[..., 0]
        out.append(nll.sum(dim=1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def block_perplexity(model, blocks: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Per-block perplexity exp(mean NLL over tokens 1..L-1), (n,)."""
    return np.exp(block_nll(model, blocks, batch_size, device) / (blocks.shape[1] - 1))


def corpus_perplexity(model, blocks: np.ndarray, batch_size: int = 64, device: str = "cpu") -> float:
    """Token-weighted perplexity of all blocks: exp(total NLL / predicted tokens)."""
    nll = block_nll(model, blocks, batch_size, device)
    return float(np.exp(nll.sum() / (blocks.shape[0] * (blocks.shape[1] - 1))))


def next_token_probs(model, blocks: np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """The model's P(x_{t+1} | x_<=t) for t = 0..L-2 of each block: (n, L-1, vocab) float64."""
    import torch

    return np.concatenate([torch.softmax(logits.double(), dim=-1).cpu().numpy()
                           for _, logits in _batched_logits(model, blocks, batch_size, device)])
