"""LM-world throughput: training and generation tokens/s, batched vs one-sequence-at-a-time generation.

    nice python benchmarks/bench_lm.py [--preset tiny] [--prompts 64] [--decoding beam] [--repeats 3] [--cold-repeats 3]

Baseline for generation: the same model.generate call made once per prompt (what a plain
per-text loop does); ours batches `--batch-size` prompts per call (equal-length prompts, no padding).
Both sides run with the same torch and native thread count (--threads). Warm: in this process,
the trained model in memory; each round trains a fresh model for one epoch (training tok/s),
then runs ours and the baseline in turn, --repeats rounds. Cold: a fresh process per run
(interpreter, torch and transformers imports, the trained model loaded from safetensors, the
prompts' whole generation), ours and the baseline in turn, --cold-repeats rounds. Best and
median of each; ratios are baseline time / ours.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

COLD = """
import sys
import numpy as np, torch
from transformers import GPT2LMHeadModel
from collapseguard.simulate.lm.generate import DecodingConfig, generate_continuations
model_dir, prompts_file, new_tokens, decoding, batch_size, threads, vocab = sys.argv[1:8]
torch.set_num_threads(int(threads))
model = GPT2LMHeadModel.from_pretrained(model_dir)
prompts = np.load(prompts_file)
suppress = list(range(int(vocab), model.config.vocab_size))
out, _ = generate_continuations(model, prompts, int(new_tokens), DecodingConfig(decoding), batch_size=int(batch_size),
                                device="cpu", suppress_tokens=suppress)
np.save(prompts_file + f".{batch_size}.npy", out)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", help="model size preset (tiny, mini, ...)")
    ap.add_argument("--blocks", type=int, default=256, help="training blocks")
    ap.add_argument("--block-size", type=int, default=64, help="tokens per block (prompt length and new tokens)")
    ap.add_argument("--prompts", type=int, default=64, help="prompts for the generation comparison")
    ap.add_argument("--batch-size", type=int, default=64, help="prompts per generate call on our side")
    ap.add_argument("--decoding", default="beam", help="beam (5 beams) or sample")
    ap.add_argument("--threads", type=int, default=1, help="torch and native threads, both sides (1 is fastest on a shared machine)")
    ap.add_argument("--repeats", type=int, default=3, help="warm rounds, interleaved (>= 3)")
    ap.add_argument("--cold-repeats", type=int, default=3, help="fresh-process rounds per side, interleaved (0: none)")
    args = ap.parse_args()
    if args.repeats < 3 or args.cold_repeats < 0 or min(args.blocks, args.block_size, args.prompts, args.batch_size) < 1:
        sys.exit("error: --repeats must be >= 3, --cold-repeats >= 0, the sizes >= 1")
    timing.pin_threads(args.threads)
    import numpy as np
    import torch

    from collapseguard.simulate.lm.corpus import synthetic_corpus
    from collapseguard.simulate.lm.generate import DecodingConfig, generate_continuations
    from collapseguard.simulate.lm.models import build_model
    from collapseguard.simulate.lm.train import TrainConfig, train_model

    torch.set_num_threads(args.threads)
    corpus = synthetic_corpus(args.blocks, 8, args.block_size, seed=0)
    dec = DecodingConfig(args.decoding)
    prompts = corpus.train[: args.prompts]
    suppress = list(range(corpus.language.vocab, len(corpus.tokenizer)))
    load_before = timing.load_average()
    train_tps, same, state = [], [], {}

    def train():
        model = build_model(args.preset, corpus.tokenizer, 2 * args.block_size, seed=0)
        train_tps.append(train_model(model, corpus.train, TrainConfig(epochs=1), seed=0, device="cpu"))
        state["model"] = model

    def generate(batch_size: int):
        def run() -> float:
            out, tps = generate_continuations(state["model"], prompts, args.block_size, dec, batch_size=batch_size,
                                              device="cpu", suppress_tokens=suppress)
            state[batch_size] = out
            return out.size / tps
        return run

    def warm_round(side: str):
        def run() -> float:
            if side == "ours":
                train()
            t = generate(args.batch_size if side == "ours" else 1)()
            if side == "baseline":
                same.append(float(np.mean(state[args.batch_size] == state[1])))
            return t
        return run

    warm = timing.interleaved(args.repeats, {"ours": warm_round("ours"), "baseline": warm_round("baseline")})
    cold = {"ours": [], "baseline": []}
    if args.cold_repeats:
        with tempfile.TemporaryDirectory(prefix="bench_lm.") as tmp:
            state["model"].save_pretrained(tmp)  # safetensors
            prompts_file = str(Path(tmp) / "prompts.npy")
            np.save(prompts_file, prompts)
            env = timing.child_env(args.threads)

            def cold_run(batch_size: int):
                return lambda: timing.python_child(COLD, tmp, prompts_file, str(args.block_size), args.decoding,
                                                   str(batch_size), str(args.threads), str(corpus.language.vocab),
                                                   env=env)[0]

            cold = timing.interleaved(args.cold_repeats, {"ours": cold_run(args.batch_size), "baseline": cold_run(1)})
            cold_same = float(np.mean(np.load(prompts_file + f".{args.batch_size}.npy") == np.load(prompts_file + ".1.npy")))
    n_tokens = args.prompts * args.block_size

    def rates(times):
        return {"best": round(n_tokens / min(times)), "median": round(n_tokens / float(np.median(times)))}

    result = {
        "torch_threads": torch.get_num_threads(), "preset": args.preset,
        "params": sum(p.numel() for p in state["model"].parameters()), "block_size": args.block_size,
        "decoding": args.decoding, "prompts": args.prompts, "batch_size": args.batch_size, "repeats": args.repeats,
        "load_average_before": load_before, "load_average_after": timing.load_average(),
        "train_tokens_per_s": {"best": round(max(train_tps)), "median": round(float(np.median(train_tps)))},
        "warm": {"ours_seconds": timing.seconds(warm["ours"], 2), "baseline_seconds": timing.seconds(warm["baseline"], 2),
                 "ours_tokens_per_s": rates(warm["ours"]), "baseline_tokens_per_s": rates(warm["baseline"]),
                 "ratio_best_median": timing.ratio(warm["baseline"], warm["ours"])},
        "same_output_share_warm": min(same),
    }
    if args.cold_repeats:
        result["cold"] = {"repeats": args.cold_repeats, "ours_seconds": timing.seconds(cold["ours"], 2),
                          "baseline_seconds": timing.seconds(cold["baseline"], 2),
                          "ratio_best_median": timing.ratio(cold["baseline"], cold["ours"]),
                          "same_output_share_cold": cold_same}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
