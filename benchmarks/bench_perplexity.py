"""Gen-0 perplexity scoring: our batched, length-sorted scorer vs a plain per-text transformers loop.

Same model, same texts, and the same torch thread count on both sides (set before each
timed call, for each of --threads); the repeats of ours and the baseline's alternate
(ours, loop, ours, loop, ...) so machine load hits both alike, and the best and median of
--repeats (>= 3) are reported. Warm: in this process, the model loaded. Cold: a fresh process per
run (interpreter, imports, model and tokenizer load, scoring), the same texts from a file. Model: a GPT-2 of the `mini` size (4 layers, 4 heads, 128 wide, vocab 4096,
context 256; random weights: timings do not depend on them). Texts: WikiText-2 test
paragraphs when ../shared/data is present, else synthetic.

    nice .venv/bin/python benchmarks/bench_perplexity.py [--n 200] [--threads 1,2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402

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


def ours(model_dir, texts, score: str, batch_tokens: int | None = None) -> tuple[np.ndarray, float]:
    from collapseguard.detectors.lm.perplexity import Gen0PerplexityDetector, PerplexityConfig

    det = Gen0PerplexityDetector(PerplexityConfig(model_dir=str(model_dir), score=score, min_tokens=1, device="cpu",
                                                  max_batch_tokens=batch_tokens))
    t0 = time.perf_counter()
    s = det.score(texts)
    return s, time.perf_counter() - t0


CHILD = r"""
import json, sys, time
side, model_dir, texts_file, score, threads = sys.argv[1:6]
import numpy as np
import torch
torch.set_num_threads(int(threads))
texts = json.loads(open(texts_file, encoding="utf-8").read())
if side == "ours":
    from collapseguard.detectors.lm.perplexity import Gen0PerplexityDetector, PerplexityConfig
    det = Gen0PerplexityDetector(PerplexityConfig(model_dir=model_dir, score=score, min_tokens=1, device="cpu"))
    s = det.score(texts)
else:
    sys.path.insert(0, sys.argv[6])
    from bench_perplexity import per_text_loop
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    s, _ = per_text_loop(model, tok, texts, score == "fast_detectgpt")
print(float(np.nansum(s)))
"""


def cold_run(side: str, model_dir: Path, texts_file: Path, score: str, threads: int) -> float:
    """Wall seconds of a fresh process scoring the texts (imports and model load included)."""
    return timing.python_child(CHILD, side, str(model_dir), str(texts_file), score, str(threads),
                               str(Path(__file__).parent), env=timing.child_env(threads))[0]


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="WikiText-2 test tokens file (else synthetic texts)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure, each on both sides")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats per side (best and median)")
    ap.add_argument("--batch-tokens", default="1024", help="our max_batch_tokens settings to time (1024 = CPU default)")
    args = ap.parse_args()
    DATA = args.data
    if args.repeats < 3:
        raise SystemExit("--repeats must be >= 3 (best of at least three)")
    import torch

    from collapseguard.detectors.lm.tiny import build_tiny_gpt2

    texts = load_texts(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tok, model = build_tiny_gpt2(Path(tmp) / "gen0", texts, vocab_size=4096, n_positions=256, n_embd=128, n_layer=4, n_head=4)
        n_tokens = sum(len(x) for x in tok(texts)["input_ids"])
        print(f"{len(texts)} texts, {n_tokens} tokens, source={'wikitext-2 test' if DATA.exists() else 'synthetic'}, "
              f"load average {timing.load_average()}")
        for threads in [int(t) for t in args.threads.split(",")]:
            for label, score, fdg in (("mean log-prob", "log_prob", False), ("fast-detectgpt", "fast_detectgpt", True)):
                sizes = [int(b) for b in args.batch_tokens.split(",")]
                t_ours, t_ref, got = {b: [] for b in sizes}, [], {}
                for _ in range(args.repeats):  # interleaved: ours (each size), loop, ours, loop, ...
                    for b in sizes:
                        torch.set_num_threads(threads)
                        got[b], t = ours(Path(tmp) / "gen0", texts, score, b)
                        t_ours[b].append(t)
                    torch.set_num_threads(threads)
                    ref, t = per_text_loop(model, tok, texts, fdg)
                    t_ref.append(t)
                for b in sizes:
                    diff = float(np.max(np.abs(got[b] - ref)))
                    print(f"threads={threads} {label:15s} warm, best / median: ours[{b} tok/batch] {timing.seconds(t_ours[b], 2)} | "
                          f"per-text loop {timing.seconds(t_ref, 2)} | ratio {min(t_ref) / min(t_ours[b]):5.2f}x / "
                          f"{np.median(t_ref) / np.median(t_ours[b]):5.2f}x | max |diff| {diff:.2e}", flush=True)
                texts_file = Path(tmp) / "texts.json"
                texts_file.write_text(json.dumps(texts), encoding="utf-8")
                c_ours, c_ref = [], []
                for _ in range(args.repeats):
                    c_ours.append(cold_run("ours", Path(tmp) / "gen0", texts_file, score, threads))
                    c_ref.append(cold_run("loop", Path(tmp) / "gen0", texts_file, score, threads))
                print(f"threads={threads} {label:15s} cold, best / median: ours {timing.seconds(c_ours, 2)} | per-text loop "
                      f"{timing.seconds(c_ref, 2)} | ratio {min(c_ref) / min(c_ours):5.2f}x / "
                      f"{np.median(c_ref) / np.median(c_ours):5.2f}x", flush=True)

if __name__ == "__main__":
    main()
