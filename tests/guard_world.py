"""A small world for guard-policy tests: human text, and three kinds of planted machine text that
each detector of the policy should catch: KGW-watermarked text, ledger entries pasted into longer
documents, and samples of a tiny Gen-0 model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "fe", "gu", "ho", "ji", "be", "vo"]
WORDS = [a + b for a in SYLLABLES for b in SYLLABLES]
KEY = 15485863
LENGTH = 60


def human_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=LENGTH)) for _ in range(n)]


def make_tokenizer(path: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "[BOS]", "[EOS]", "[PAD]"])
    tok.train_from_iterator([" ".join(WORDS)] * 2, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
                                   pad_token="[PAD]")
    fast.save_pretrained(str(path))
    return fast


def make_gen0(path: Path, tok):
    """A random GPT-2 with large weights, so its samples have far lower perplexity than random words."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32, n_head=2, n_positions=128, initializer_range=0.5,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return model


def gen0_samples(model, tok, n: int, seed: int) -> list[str]:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    prompts = torch.tensor([tok.convert_tokens_to_ids(list(rng.choice(WORDS, size=2))) for _ in range(n)])
    with torch.no_grad():
        out = model.generate(prompts, do_sample=True, max_new_tokens=LENGTH, min_new_tokens=LENGTH,
                             suppress_tokens=tok.all_special_ids, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out, skip_special_tokens=True)


def watermarked(tok, n: int, seed: int) -> list[str]:
    """Uniform logits tilted by our KGW processor (bias 4): green tokens dominate each step."""
    import torch

    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWLogitsProcessor

    proc = KGWLogitsProcessor(KGWConfig(hashing_key=KEY), vocab_size=len(tok), bias=4.0)
    g = torch.Generator().manual_seed(seed)
    word_ids = torch.tensor(tok.convert_tokens_to_ids(WORDS))
    allowed = torch.full((len(tok),), float("-inf"))
    allowed[word_ids] = 0.0
    ids = word_ids[torch.randint(len(WORDS), (n, 1), generator=g)]
    for _ in range(LENGTH - 1):
        logits = proc(ids, allowed.repeat(n, 1).clone())
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)
        ids = torch.cat([ids, nxt], 1)
    return tok.batch_decode(ids, skip_special_tokens=True)


def pasted(entries: list[str], n: int, seed: int) -> list[str]:
    """A ledger entry pasted into the middle of a longer human document."""
    hosts = human_texts(n, seed)
    return [f"{h[: len(h) // 2]} {entries[i % len(entries)]} {h[len(h) // 2:]}" for i, h in enumerate(hosts)]


def build(root: Path) -> dict:
    """Model, ledger, policy, calibration inputs and the planted texts, under `root`."""
    from collapseguard.detectors.dedup.ledger import Ledger

    tok = make_tokenizer(root / "gen0")
    model = make_gen0(root / "gen0", tok)
    entries = human_texts(40, seed=99)
    Ledger.create(root / "gens.ledger").add(entries, [f"gen-{i}" for i in range(len(entries))])
    policy = root / "collapseguard.toml"
    policy.write_text(
        'text_column = "text"\ncalibration = "cal.json"\nmax_synthetic_share = 0.05\nbatch_size = 64\n'
        '[[detectors]]\nname = "minhash_v1"\nthreshold = 0.5\noptions = { ledger = "gens.ledger" }\n'
        '[[detectors]]\nname = "kgw_v1"\noptions = { tokenizer_dir = "gen0" }\n'
        '[[detectors]]\nname = "gen0_ppl_v1"\noptions = { model_dir = "gen0", device = "cpu" }\n')
    write_jsonl(root / "human.jsonl", human_texts(300, seed=1))
    machine = watermarked(tok, 40, 2) + pasted(entries, 40, 3) + gen0_samples(model, tok, 40, 4)
    write_jsonl(root / "machine.jsonl", machine)
    return {"tok": tok, "model": model, "entries": entries, "policy": policy}


def planted_shards(world: dict, folder: Path, n_human: int = 150, n_each: int = 12, seed: int = 10) -> dict:
    """Three shards (parquet, jsonl.gz, txt) mixing human text and the three planted kinds."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for k, (name, fmt) in enumerate([("a.parquet", "parquet"), ("sub/b.jsonl.gz", "jsonl"), ("c.txt", "text")]):
        s = seed + 10 * k
        kinds = (["human"] * n_human + ["kgw_v1"] * n_each + ["minhash_v1"] * n_each + ["gen0_ppl_v1"] * n_each)
        texts = (human_texts(n_human, s) + watermarked(world["tok"], n_each, s + 1)
                 + pasted(world["entries"], n_each, s + 2) + gen0_samples(world["model"], world["tok"], n_each, s + 3))
        order = np.random.default_rng(s).permutation(len(texts))
        texts, kinds = [texts[i] for i in order], [kinds[i] for i in order]
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), path)
        elif fmt == "jsonl":
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts))
        else:
            path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        truth[name] = kinds
    return truth


def write_jsonl(path: Path, texts: list[str]) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
