"""Gen-0 perplexity scoring: our batched, length-sorted scorer vs a plain per-text transformers loop.

Same model, same texts, same CPU threads, one run. Model: a GPT-2 of the `mini` size
(4 layers, 4 heads, 128 wide, vocab 4096, context 256; random weights: timings do not depend
on them). Texts: WikiText-2 test paragraphs when ../shared/data is present, else synthetic.

    nice .venv/bin/python benchmarks/bench_perplexity.py [--n 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2" / "wiki.test.tokens"


def load_texts(n: int) -> list[str]:
    if DATA.exists():
        lines = [ln.strip() for ln in DATA.read_text(encoding="utf-8").splitlines()]
        paras = [ln for ln in lines if len(ln.split()) >= 20 and not ln.startswith("=")]
        return [" ".join(p.split()[:120]) for p in paras[:n]]
    rng = np.random.default_rng(0)
    words = "the of and in to a was is for on as with by he at from his an were are which".split()
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 120)))) for _ in range(n)]


def per_text_loop(model, tok, texts, fast_detectgpt: bool) -> tuple[np.ndarray, float]:
    """What a user would write: one forward per text (mean log-prob, or Fast-DetectGPT's discrepancy)."""
    import torch

    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok(text)["input_ids"]])
            if not fast_detectgpt:
                out.append(-model(ids, labels=ids).loss.item())
                continue
            lp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
            p = lp.exp()
            ll = lp.gather(-1, ids[0, 1:, None]).sum()
            mu = (p * lp).sum(-1)
            var = (p * (lp - mu[:, None]).square()).sum(-1)
            out.append(((ll - mu.sum()) / var.sum().sqrt()).item())
    return np.array(out), time.perf_counter() - t0


def ours(model_dir, texts, score: str) -> tuple[np.ndarray, float]:
    from collapseguard.detectors.lm.perplexity import Gen0PerplexityDetector, PerplexityConfig

    det = Gen0PerplexityDetector(PerplexityConfig(model_dir=str(model_dir), score=score, min_tokens=1, device="cpu"))
    t0 = time.perf_counter()
    s = det.score(texts)
    return s, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    import torch

    from collapseguard.detectors.lm.tiny import build_tiny_gpt2

    texts = load_texts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tok, model = build_tiny_gpt2(Path(tmp) / "gen0", texts, vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4)
        n_tokens = sum(len(x) for x in tok(texts)["input_ids"])
        print(f"{len(texts)} texts, {n_tokens} tokens, torch threads={torch.get_num_threads()}, source={'wikitext-2 test' if DATA.exists() else 'synthetic'}")
        for label, score, fdg in (("mean log-prob", "log_prob", False), ("fast-detectgpt", "fast_detectgpt", True)):
            ref, t_ref = per_text_loop(model, tok, texts, fdg)
            got, t_ours = ours(Path(tmp) / "gen0", texts, score)
            diff = float(np.max(np.abs(got - ref)))
            print(f"{label:15s} ours {t_ours:6.2f} s ({n_tokens / t_ours:8.0f} tok/s) | per-text loop {t_ref:6.2f} s "
                  f"({n_tokens / t_ref:8.0f} tok/s) | ratio {t_ref / t_ours:5.2f}x | max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
