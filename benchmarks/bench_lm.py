"""LM-world throughput: training and generation tokens/s, batched vs one-sequence-at-a-time generation.

Run: HF_HUB_OFFLINE=1 python benchmarks/bench_lm.py [--preset tiny] [--prompts 64] [--decoding beam]

Baseline for generation: the same model.generate call made once per prompt (what a plain
per-text loop does); ours batches `--batch-size` prompts per call (equal-length prompts, no padding).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--blocks", type=int, default=256, help="training blocks")
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=64, help="prompts for the generation comparison")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--decoding", default="beam")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from collapseguard.simulate.lm.corpus import synthetic_corpus
    from collapseguard.simulate.lm.generate import DecodingConfig, generate_continuations
    from collapseguard.simulate.lm.models import build_model
    from collapseguard.simulate.lm.train import TrainConfig, pick_device, train_model

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    corpus = synthetic_corpus(args.blocks, 8, args.block_size, seed=0)
    model = build_model(args.preset, corpus.tokenizer, 2 * args.block_size, seed=0)
    train_tps = train_model(model, corpus.train, TrainConfig(epochs=1), seed=0, device=device)
    dec = DecodingConfig(args.decoding)
    prompts = corpus.train[: args.prompts]
    suppress = list(range(corpus.language.vocab, len(corpus.tokenizer)))
    batched, batched_tps = generate_continuations(model, prompts, args.block_size, dec, batch_size=args.batch_size,
                                                  device=device, suppress_tokens=suppress)
    single, single_tps = generate_continuations(model, prompts, args.block_size, dec, batch_size=1,
                                                device=device, suppress_tokens=suppress)
    result = {
        "device": device, "torch_threads": torch.get_num_threads(), "preset": args.preset,
        "params": sum(p.numel() for p in model.parameters()), "block_size": args.block_size,
        "train_tokens_per_s": round(train_tps), "decoding": args.decoding, "prompts": args.prompts,
        "batch_size": args.batch_size,
        "ours_batched_generation_tokens_per_s": round(batched_tps),
        "baseline_one_at_a_time_generation_tokens_per_s": round(single_tps),
        "ratio_batched_over_single": round(batched_tps / single_tps, 2),
        "same_output_share": float(np.mean(batched == single)),
        "ours_seconds": round(batched.size / batched_tps, 2), "baseline_seconds": round(single.size / single_tps, 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
