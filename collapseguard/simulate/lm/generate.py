"""Continue every training block with `new_tokens` tokens (the seed paper's data generation).

All prompts have the same length, so batches need no padding. End-of-text is suppressed
(``min_new_tokens``) so every sample is exactly one block long.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from collapseguard.errors import CollapseguardError, check_choice

DECODINGS = ("beam", "sample")


@dataclass(frozen=True)
class DecodingConfig:
    """How samples are written: 5-way beam search (the paper) or sampling with temperature/top-p."""

    decoding: str = "beam"
    num_beams: int = 5
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        check_choice("decoding", self.decoding, DECODINGS)
        if self.num_beams < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise CollapseguardError(
                f"bad decoding settings {asdict(self)}: need --num-beams >= 1, --temperature > 0, 0 < --top-p <= 1, --repetition-penalty > 0"
            )

    def generate_kwargs(self) -> dict:
        if self.decoding == "beam":
            return dict(do_sample=False, num_beams=self.num_beams, repetition_penalty=self.repetition_penalty)
        return dict(do_sample=True, num_beams=1, temperature=self.temperature, top_p=self.top_p,
                    top_k=0, repetition_penalty=self.repetition_penalty)


def generate_continuations(model, prompts: np.ndarray, new_tokens: int, decoding: DecodingConfig,
                           *, batch_size: int = 32, seed: int = 0, device: str = "cpu",
                           logits_processor=None, suppress_tokens=None, progress=None) -> tuple[np.ndarray, float]:
    """Continuations (n, new_tokens) of each prompt row, and generated tokens per second.

    `logits_processor`: an optional transformers LogitsProcessor (or list of them), e.g. a KGW
    watermark, applied at every step. `suppress_tokens`: ids never generated (e.g. specials
    outside the synthetic language). `progress(k)` is called with the number of prompts done.
    """
    import torch
    from transformers import LogitsProcessorList

    model.to(device).eval()
    torch.manual_seed(seed)
    procs = None
    if logits_processor is not None:
        procs = LogitsProcessorList(logits_processor if isinstance(logits_processor, (list, tuple)) else [logits_processor])
    eos = model.config.eos_token_id
    out, start = [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            x = torch.as_tensor(prompts[i:i + batch_size], dtype=torch.long, device=device)
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, pad_token_id=eos, eos_token_id=eos,
                               logits_processor=procs, suppress_tokens=suppress_tokens, **decoding.generate_kwargs())
            out.append(y[:, x.shape[1]:].cpu().numpy())
            if progress:
                progress(min(i + batch_size, len(prompts)))
    seconds = time.perf_counter() - start
    result = np.concatenate(out).astype(np.int64)
    return result, result.size / max(seconds, 1e-9)
