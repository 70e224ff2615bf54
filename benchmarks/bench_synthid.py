"""SynthID-Text mean score: collapseguard's numpy pipeline vs the same score from transformers'
``SynthIDTextWatermarkLogitsProcessor`` (``compute_g_values`` + repetition and EOS masks).

Random token sequences (a quarter of them EOS-padded at the end), the synthid-text example
settings (30 keys, n-gram 5, table 2**16). transformers is timed per text (how a corpus of
varying lengths is scored) and as one equal-length batch; scores are asserted equal. Then, if
WikiText-2 is present, the null on human text: z-scores of its test lines under random keys
(tokenizer: byte-level BPE trained here on the validation file).

    nice .venv/bin/python benchmarks/bench_synthid.py
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"
KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990, 966, 226, 324, 585, 118, 504,
        402, 578, 512, 541, 624, 455, 327, 112]  # fmt: skip
EOS = 1


class IdsOnly:
    """Token ids are scored directly; only the EOS id of a tokenizer is needed."""

    eos_token_id = EOS
    pad_token_id = None


def make_sequences(n: int, length: int, vocab: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, vocab, size=(n, length))
    for row in range(0, n, 4):
        ids[row, length - int(rng.integers(1, length // 4)) :] = EOS
    return ids


def reference_counts(proc, ids, ngram_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(scored positions, Σg) the way transformers' SynthIDTextWatermarkDetector masks them."""
    import torch

    t = torch.as_tensor(ids)
    mask = proc.compute_context_repetition_mask(t) * proc.compute_eos_token_mask(t, EOS)[:, ngram_len - 1 :]
    g = proc.compute_g_values(t)
    return mask.sum(dim=1).numpy(), (g * mask[:, :, None]).sum(dim=(1, 2)).numpy()


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def human_null(n_keysets: int, ngram_len: int) -> None:
    """z-scores of WikiText-2 test lines under random 30-key sets: should look like N(0, 1)."""
    from collapseguard.detectors.lm.tiny import train_tokenizer
    from collapseguard.detectors.watermark.synthid import SynthIDConfig, SynthIDDetector

    def lines(name):
        return [t.strip() for t in (DATA / name).read_text(encoding="utf-8").splitlines() if t.strip()]

    tok = train_tokenizer(lines("wiki.valid.tokens"), vocab_size=8192)
    test = lines("wiki.test.tokens")
    rng = np.random.default_rng(1)
    z, p, secs = [], [], 0.0
    for _ in range(n_keysets):
        keys = [int(k) for k in rng.choice(2**62, size=len(KEYS), replace=False)]
        detector = SynthIDDetector(SynthIDConfig(keys=keys, ngram_len=ngram_len, min_tokens_scored=10), tokenizer=tok)
        start = time.perf_counter()
        out = detector.detect(test)
        secs += time.perf_counter() - start
        z += [d["z_score"] for d in out]
        p += [d["p_value"] for d in out]
    z, p = np.array(z), np.array(p)
    scored = ~np.isnan(z)
    z, p = z[scored], p[scored]
    print(f"WikiText-2 test: {len(test)} lines x {n_keysets} key sets, {scored.sum()} records with >= 10 positions; "
          f"scoring incl. tokenising {secs / n_keysets:.2f} s per pass")  # fmt: skip
    print(f"  z mean {z.mean():+.3f}, std {z.std():.3f}; FPR(z > 4) {np.mean(z > 4):.4f}; "
          f"p < 0.01: {np.mean(p < 0.01):.4f}; p < 0.05: {np.mean(p < 0.05):.4f}")  # fmt: skip


def main() -> None:
    import torch
    from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

    from collapseguard.detectors.watermark.synthid import SynthIDConfig, SynthIDDetector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=200)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--vocab", type=int, default=50_000)
    ap.add_argument("--ngram-len", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--human-keysets", type=int, default=3, help="0 skips the WikiText-2 null check")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ids = make_sequences(args.texts, args.length, args.vocab)
    config = SynthIDConfig(keys=KEYS, ngram_len=args.ngram_len)
    detector = SynthIDDetector(config, tokenizer=IdsOnly())
    proc = SynthIDTextWatermarkLogitsProcessor(args.ngram_len, KEYS, config.sampling_table_size, config.sampling_table_seed,
                                               config.context_history_size, device="cpu")  # fmt: skip
    detector.detect_ids(ids[:2])  # table built once, outside the timing

    t_ours, ours = best_of(lambda: detector.detect_ids(list(ids)), args.repeat)
    t_ref, per_text = best_of(lambda: [reference_counts(proc, row[None], args.ngram_len) for row in ids], args.repeat)
    t_batch, batched = best_of(lambda: reference_counts(proc, ids, args.ngram_len), args.repeat)

    ref_pos = np.concatenate([p for p, _ in per_text])
    ref_sum = np.concatenate([s for _, s in per_text])
    assert np.array_equal([d["num_tokens_scored"] for d in ours], ref_pos)
    assert np.array_equal(batched[0], ref_pos) and np.array_equal(batched[1], ref_sum)
    assert np.array_equal([d["mean_g"] for d in ours], ref_sum / (ref_pos * len(KEYS)))

    print(f"{args.texts} sequences x {args.length} tokens, depth {len(KEYS)}, n-gram {args.ngram_len}, "
          f"{int(ref_pos.sum())} scored positions; torch threads 1; best of {args.repeat}")  # fmt: skip
    print(f"collapseguard synthid_v1 (numpy, whole batch, with z/p): {t_ours * 1e3:9.1f} ms")
    print(f"transformers processor, per text:                         {t_ref * 1e3:9.1f} ms  ({t_ref / t_ours:.0f}x)")
    print(f"transformers processor, one equal-length batch:           {t_batch * 1e3:9.1f} ms  ({t_batch / t_ours:.0f}x)")
    print("scored positions and mean g-values: identical")
    if args.human_keysets and DATA.is_dir():
        human_null(args.human_keysets, args.ngram_len)


if __name__ == "__main__":
    main()
