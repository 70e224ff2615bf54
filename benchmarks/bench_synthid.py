"""SynthID-Text mean score: collapseguard's numpy pipeline vs the same score from transformers'
``SynthIDTextWatermarkLogitsProcessor`` (``compute_g_values`` + repetition and EOS masks).

Random token sequences (a quarter of them EOS-padded at the end), the synthid-text example
settings (30 keys, n-gram 5, table 2**16). transformers is timed per text (how a corpus of
varying lengths is scored) and as one equal-length batch; scores are asserted equal. One torch
and native thread on every side. Warm: in this process (our g-value table built once first),
the three pipelines in turn, --repeat rounds. Cold: a fresh process per run (interpreter, numpy
or torch + transformers imports, set-up, the one scoring call), the three in turn,
--cold-repeat rounds. Best and median of each. Then, if WikiText-2 is present, the null on
human text: z-scores of its test lines under random keys (tokenizer: byte-level BPE trained
here on the validation file).

    nice .venv/bin/python benchmarks/bench_synthid.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

timing.pin_threads(1)
import numpy as np  # noqa: E402

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


COLD = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from bench_synthid import KEYS, IdsOnly
side, ids, ngram = sys.argv[1], np.load(sys.argv[2]), int(sys.argv[4])
if side == "ours":
    from collapseguard.detectors.watermark.synthid import SynthIDConfig, SynthIDDetector
    out = SynthIDDetector(SynthIDConfig(keys=KEYS, ngram_len=ngram), tokenizer=IdsOnly()).detect_ids(list(ids))
    print(sum(d["mean_g"] * d["num_tokens_scored"] for d in out) * len(KEYS))
else:
    import torch
    torch.set_num_threads(1)
    from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor
    from collapseguard.detectors.watermark.synthid import SynthIDConfig
    from bench_synthid import reference_counts
    c = SynthIDConfig(keys=KEYS, ngram_len=ngram)
    proc = SynthIDTextWatermarkLogitsProcessor(ngram, KEYS, c.sampling_table_size, c.sampling_table_seed,
                                               c.context_history_size, device="cpu")
    if side == "per text":
        print(sum(float(reference_counts(proc, row[None], ngram)[1].sum()) for row in ids))
    else:
        print(float(reference_counts(proc, ids, ngram)[1].sum()))
"""


def cold_times(ids: np.ndarray, ngram_len: int, repeat: int) -> dict[str, list[float]]:
    """Fresh-process seconds of the three pipelines, interleaved; their g-value totals must agree."""
    import tempfile

    totals: dict[str, float] = {}
    env = timing.child_env(1)
    with tempfile.TemporaryDirectory(prefix="bench_synthid.") as tmp:
        path = Path(tmp) / "ids.npy"
        np.save(path, ids)

        def side(name: str):
            def run() -> float:
                wall, out = timing.python_child(COLD, name, str(path), str(Path(__file__).resolve().parent),
                                                str(ngram_len), env=env)
                totals[name] = float(out.split()[-1])
                return wall
            return run

        times = timing.interleaved(repeat, {k: side(k) for k in ("ours", "per text", "batch")})
    assert len({round(v, 6) for v in totals.values()}) == 1, f"cold runs disagree: {totals}"
    return times


def human_null(data: Path, n_keysets: int, ngram_len: int) -> None:
    """z-scores of WikiText-2 test lines under random 30-key sets: should look like N(0, 1)."""
    from collapseguard.detectors.lm.tiny import train_tokenizer
    from collapseguard.detectors.watermark.synthid import SynthIDConfig, SynthIDDetector

    def lines(name):
        return [t.strip() for t in (data / name).read_text(encoding="utf-8").splitlines() if t.strip()]

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
    ap.add_argument("--repeat", type=int, default=3, help="warm rounds, interleaved (>= 3)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="fresh-process rounds, interleaved (0: none)")
    ap.add_argument("--data", type=Path, default=DATA, help="the WikiText-2 folder (wiki.*.tokens)")
    ap.add_argument("--human-keysets", type=int, default=3, help="0 skips the WikiText-2 null check")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ids = make_sequences(args.texts, args.length, args.vocab)
    config = SynthIDConfig(keys=KEYS, ngram_len=args.ngram_len)
    detector = SynthIDDetector(config, tokenizer=IdsOnly())
    proc = SynthIDTextWatermarkLogitsProcessor(args.ngram_len, KEYS, config.sampling_table_size, config.sampling_table_seed,
                                               config.context_history_size, device="cpu")  # fmt: skip
    detector.detect_ids(ids[:2])  # table built once, outside the timing

    if args.repeat < 3 or args.cold_repeat < 0:
        sys.exit("error: --repeat must be >= 3 and --cold-repeat >= 0")
    load_before = timing.load_average()
    warm, res = timing.interleaved_calls(args.repeat, {
        "ours": lambda: detector.detect_ids(list(ids)),
        "per text": lambda: [reference_counts(proc, row[None], args.ngram_len) for row in ids],
        "batch": lambda: reference_counts(proc, ids, args.ngram_len),
    })
    ours, per_text, batched = res["ours"], res["per text"], res["batch"]
    cold = cold_times(ids, args.ngram_len, args.cold_repeat) if args.cold_repeat else None

    ref_pos = np.concatenate([p for p, _ in per_text])
    ref_sum = np.concatenate([s for _, s in per_text])
    assert np.array_equal([d["num_tokens_scored"] for d in ours], ref_pos)
    assert np.array_equal(batched[0], ref_pos) and np.array_equal(batched[1], ref_sum)
    assert np.array_equal([d["mean_g"] for d in ours], ref_sum / (ref_pos * len(KEYS)))

    print(f"{args.texts} sequences x {args.length} tokens, depth {len(KEYS)}, n-gram {args.ngram_len}, "
          f"{int(ref_pos.sum())} scored positions; one thread each side; best / median, interleaved; "
          f"load average {load_before} before, {timing.load_average()} after")  # fmt: skip
    names = {"ours": "collapseguard synthid_v1 (numpy, whole batch, with z/p)",
             "per text": "transformers processor, per text", "batch": "transformers processor, one equal-length batch"}
    for case, times, n in (("warm", warm, args.repeat), ("cold (fresh process)", cold, args.cold_repeat)):
        for key, name in names.items() if times else ():
            print(f"{case} of {n}: {name:<56} {timing.seconds(times[key])}  ({timing.ratio(times[key], times['ours'])})")
    print("scored positions and mean g-values: identical" + (" (cold runs: same g-value totals)" if cold else ""))
    if args.human_keysets and args.data.is_dir():
        human_null(args.data, args.human_keysets, args.ngram_len)


if __name__ == "__main__":
    main()
