"""KGW watermark benchmark: scoring speed vs transformers' WatermarkDetector, detection rate
against text length, and the false-positive rate at z = 4 on WikiText-2 test text.

Everything is built offline here: a byte-level BPE tokenizer trained on the WikiText-2 train
file with `tokenizers`, and a small GPT-2 trained for --train-seconds on the same file (the
generator of the watermarked text; a weak model, stated as such in the output).

    nice .venv/bin/python benchmarks/bench_watermark.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"
KEY = 15485863


def train_tokenizer(out: Path, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train([str(DATA / "wiki.train.chunk-shuffled.tokens")], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    fast.save_pretrained(str(out))
    return fast


def lines(name: str, min_chars: int = 1) -> list[str]:
    text = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [t.strip() for t in text if len(t.strip()) >= min_chars]


def train_model(tok, seconds: float, block: int = 64):
    """A 2-layer GPT-2 trained for `seconds` on WikiText-2 train blocks (CPU)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    ids = np.concatenate([tok(t)["input_ids"] for t in lines("wiki.train.chunk-shuffled.tokens", 20)[:8000]])
    blocks = torch.from_numpy(ids[: len(ids) // block * block].reshape(-1, block))
    cfg = GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=128, n_head=4, n_positions=256,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start, steps, loss = time.perf_counter(), 0, float("nan")
    while time.perf_counter() - start < seconds:
        batch = blocks[torch.randint(0, len(blocks), (32,))]
        loss = model(batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    print(f"generator: GPT-2 2x128 trained {steps} steps ({seconds:.0f} s CPU), final train loss {loss.item():.2f} "
          f"(ppl {np.exp(loss.item()):.0f})")  # fmt: skip
    return model.eval()


def generate(model, tok, prompts, new_tokens, processor=None, seed=0):
    import torch
    from transformers import LogitsProcessorList

    torch.manual_seed(seed)
    enc = [tok(p)["input_ids"][:8] for p in prompts]
    enc = torch.tensor([e + [tok.eos_token_id] * (8 - len(e)) for e in enc])
    kwargs = {"logits_processor": LogitsProcessorList([processor])} if processor else {}
    with torch.no_grad():
        out = model.generate(enc, do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=tok.eos_token_id, **kwargs)  # fmt: skip
    return out[:, enc.shape[1] :].numpy()


CHILD = r"""
import sys, numpy as np
side, seq_file, tok_dir, scheme, width, key = sys.argv[1:7]
import torch
torch.set_num_threads(1)
with np.load(seq_file, allow_pickle=False) as z:
    flat, cuts = z["flat"], z["cuts"]
seqs = np.split(flat, cuts)
if side == "ours":
    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector
    det = KGWDetector(KGWConfig(hashing_key=int(key), seeding_scheme=scheme, context_width=int(width)),
                      tokenizer=tok_dir, bos_token_id=-1)
    z = det.score_ids(seqs)
else:
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig
    from transformers import PreTrainedTokenizerFast
    vocab = len(PreTrainedTokenizerFast.from_pretrained(tok_dir))
    cfg = WatermarkingConfig(greenlist_ratio=0.25, hashing_key=int(key), seeding_scheme=scheme, context_width=int(width))
    det = WatermarkDetector(GPT2Config(vocab_size=vocab, bos_token_id=-1), "cpu", cfg, ignore_repeated_ngrams=True)
    z = np.array([det(torch.tensor(s)[None], return_dict=True).z_score[0] for s in seqs])
print(float(np.nansum(z)))
"""


def bench_speed(tok, tok_dir: Path, sequences, others, scheme: str, width: int, repeats: int):
    """Ours vs transformers' WatermarkDetector (one sequence per call), one thread each, repeats
    interleaved. Cold: a fresh process per run, imports and set-up included. Warm: in one process,
    each side first scores *other* text (imports done, caches hold other text's green lists)."""
    import torch
    from transformers import GPT2Config, WatermarkDetector, WatermarkingConfig

    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector

    torch.set_num_threads(1)
    seq_file = tok_dir.parent / f"seqs_{scheme}.npz"
    np.savez(seq_file, flat=np.concatenate(sequences), cuts=np.cumsum([len(s) for s in sequences])[:-1])
    sums = {}

    def cold_run(side: str):
        """Wall seconds of a fresh process (interpreter, imports, detector, scoring); keeps its z-score sum."""
        def run() -> float:
            wall, out = timing.python_child(CHILD, side, seq_file, tok_dir, scheme, width, KEY, env=timing.child_env(1))
            sums[side] = float(out.split()[-1])
            return wall
        return run

    cold = timing.interleaved(repeats, {side: cold_run(side) for side in ("ours", "transformers")})
    wcfg = WatermarkingConfig(greenlist_ratio=0.25, hashing_key=KEY, seeding_scheme=scheme, context_width=width)
    ref = WatermarkDetector(GPT2Config(vocab_size=len(tok), bos_token_id=-1), "cpu", wcfg, ignore_repeated_ngrams=True)

    def theirs(seqs):
        return np.array([ref(torch.tensor(s)[None], return_dict=True).z_score[0] for s in seqs])

    theirs(others)
    res = {}

    def ours_warm() -> float:
        """Seconds of a fresh detector scoring `sequences` after `others`; keeps the scores and green lists built."""
        ours = KGWDetector(KGWConfig(hashing_key=KEY, seeding_scheme=scheme, context_width=width), tokenizer=tok,
                           bos_token_id=-1)
        ours.score_ids(others)
        before = ours.cache.misses
        seconds = timing.timed(lambda: res.__setitem__("ours", ours.score_ids(sequences)))()
        res["built"] = ours.cache.misses - before
        return seconds

    warm = timing.interleaved(repeats, {"ours": ours_warm,
                                        "transformers": timing.timed(lambda: res.__setitem__("ref", theirs(sequences)))})
    z_ours, z_ref, built = res["ours"], res["ref"], res["built"]
    n_tok = sum(len(s) for s in sequences)
    diff = np.nanmax(np.abs(z_ours - z_ref))
    print(f"[speed {scheme} w={width}] {len(sequences)} sequences, {n_tok} tokens, V={len(tok)}; one thread; "
          f"max |z_ours - z_ref| = {diff:.2e}; cold z sums equal: {abs(sums['ours'] - sums['transformers']) < 1e-6}")
    for name, t in ((f"cold (fresh process), best / median of {repeats}", cold),
                    (f"warm (other text scored first; {built} green lists still built), best / median", warm)):
        print(f"  {name}: ours {timing.seconds(t['ours'])}   transformers {timing.seconds(t['transformers'])}   "
              f"ratio {timing.ratio(t['transformers'], t['ours'])}")


def bench_detection(model, tok, n_texts: int, new_tokens: int):
    """Detection rate (z > 4) of watermarked generations, truncated to increasing lengths."""
    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector, KGWLogitsProcessor

    prompts = lines("wiki.valid.tokens", 40)[:n_texts]
    print(f"[detection] {n_texts} texts x {new_tokens} new tokens, gamma=0.25, bias 2.0, multinomial sampling")
    for scheme, width in [("lefthash", 1), ("selfhash", 4)]:
        cfg = KGWConfig(hashing_key=KEY, seeding_scheme=scheme, context_width=width)
        marked = generate(model, tok, prompts, new_tokens, KGWLogitsProcessor(cfg, len(tok), bias=2.0), seed=1)
        plain = generate(model, tok, prompts, new_tokens, seed=2)
        det = KGWDetector(cfg, tokenizer=tok)
        print(f"  {scheme} w={width}:  length  TPR(z>4)  FPR(z>4) on unwatermarked generations  median z")
        for length in sorted({16, 32, 64, 128, new_tokens}):
            texts_m = tok.batch_decode(marked[:, :length], skip_special_tokens=True)
            texts_p = tok.batch_decode(plain[:, :length], skip_special_tokens=True)
            zm, zp = det.score(texts_m), det.score(texts_p)
            print(f"     {length:6d}   {np.mean(zm > 4):7.3f}   {np.mean(zp > 4):7.3f}   {np.nanmedian(zm):6.2f}")


def bench_fpr(tok, n_keys: int):
    """False-positive rate at z = 4 on WikiText-2 test lines (human text), over several keys."""
    from scipy.stats import beta

    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector

    texts = lines("wiki.test.tokens")
    rng = np.random.default_rng(0)
    keys = [int(k) for k in rng.integers(1, 2**31, size=n_keys)]
    for scheme, width, ignore in [("lefthash", 1, True), ("lefthash", 1, False), ("selfhash", 4, True)]:
        z_all, p_all, n_all = [], [], []
        for key in keys:
            det = KGWDetector(KGWConfig(hashing_key=key, seeding_scheme=scheme, context_width=width,
                                        ignore_repeated_ngrams=ignore), tokenizer=tok)  # fmt: skip
            recs = det.detect(texts)
            z_all += [r["z_score"] for r in recs]
            p_all += [r["p_value"] for r in recs]
            n_all += [r["num_tokens_scored"] for r in recs]
        z, p, n = np.array(z_all), np.array(p_all), np.array(n_all)
        ok = np.isfinite(z)
        fp = int(np.sum(z[ok] > 4))
        hi = beta.ppf(0.975, fp + 1, ok.sum() - fp)
        long = ok & (n >= 50)
        print(f"[FPR {scheme} w={width} ignore_repeats={ignore}] {len(texts)} lines x {n_keys} keys, scored {ok.sum()}: "
              f"FPR(z>4) = {fp}/{ok.sum()} = {fp / ok.sum():.2e} (95% upper {hi:.1e}); "
              f"exact p<3.17e-5: {np.mean(p[ok] < 3.17e-5):.2e}; >=50 tokens: {np.mean(z[long] > 4):.2e} of {long.sum()}")  # fmt: skip


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--train-seconds", type=float, default=20)
    ap.add_argument("--texts", type=int, default=40)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--speed-records", type=int, default=100)
    ap.add_argument("--keys", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the speed rows (best and median)")
    ap.add_argument("--speed-only", action="store_true", help="only the speed rows (no FPR, no model training)")
    ap.add_argument("--data", type=Path, default=DATA, help="the WikiText-2 folder")
    args = ap.parse_args()
    DATA = args.data
    if not DATA.exists():
        raise SystemExit(f"{DATA}: WikiText-2 not found")
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        tok = train_tokenizer(Path(tmp) / "tok", args.vocab_size)
        print(f"tokenizer: byte-level BPE, vocab {len(tok)}, trained on wiki.train in {time.perf_counter() - t0:.1f} s")
        texts = lines("wiki.test.tokens", 400)
        test_ids = [np.array(tok(t)["input_ids"][:200]) for t in texts[: args.speed_records]]
        other_ids = [np.array(tok(t)["input_ids"][:200]) for t in texts[args.speed_records: 2 * args.speed_records]]
        tok_dir = Path(tmp) / "tok"
        bench_speed(tok, tok_dir, test_ids, other_ids, "lefthash", 1, args.repeats)
        third = args.speed_records // 3
        bench_speed(tok, tok_dir, test_ids[:third], other_ids[:third], "selfhash", 4, args.repeats)
        if args.speed_only:
            return
        torch.set_num_threads(2)
        bench_fpr(tok, args.keys)
        model = train_model(tok, args.train_seconds)
        bench_detection(model, tok, args.texts, args.new_tokens)


if __name__ == "__main__":
    main()
