"""Train and save the generation-0 reference model (the perplexity detector's scorer)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from collapseguard.io.atomic import write_text_atomic
from collapseguard.simulate.lm.loop import (
    LMConfig,
    base_model,
    check_inputs,
    input_paths,
    load_corpus,
    set_threads,
)

INFO_FILE = "collapseguard_gen0.json"


def train_gen0(config: LMConfig, out: str | Path, overwrite: bool = False, progress=None) -> dict:
    """Train the base (preset or --base-model) on the corpus; save model + tokenizer to `out`.

    `out` then loads with AutoModelForCausalLM/AutoTokenizer.from_pretrained(out); it also
    holds collapseguard_gen0.json (settings, test perplexity, throughput). `out` follows the
    output rule of io.outputs: a folder holding anything else needs `overwrite`, and nothing in
    it is deleted (the model files are replaced one by one). `progress(message)` hears each stage.
    """
    from collapseguard.io.outputs import claimed_output_dir

    check_inputs(config)
    with claimed_output_dir(out, command="gen0 train", settings=config.record(), overwrite=overwrite,
                            inputs=input_paths(config), ours=lambda p: (p / INFO_FILE).exists()):
        return _train_and_save(config, Path(out), progress or (lambda message: None))


def _train_and_save(config: LMConfig, out: Path, say) -> dict:
    from collapseguard.simulate.lm.models import save_model
    from collapseguard.simulate.lm.train import corpus_perplexity, pick_device, train_model

    set_threads(config.threads)
    start = time.perf_counter()
    device = pick_device(config.device)
    corpus = load_corpus(config, config.seed)
    model = base_model(config, corpus.tokenizer, config.seed)
    say(f"training generation 0 on {config.corpus} ({len(corpus.train)} blocks of {corpus.block} tokens) ...")
    tps = train_model(model, corpus.train, config.train, config.seed, device, all_positions=not config.base_model)
    info = {
        "out": str(out), "corpus": config.corpus, "preset": None if config.base_model else config.preset,
        "base_model": config.base_model, "train_blocks": int(len(corpus.train)), "test_blocks": int(len(corpus.test)),
        "block_size": corpus.block, "vocab": len(corpus.tokenizer), "seed": config.seed,
        "train": asdict(config.train), "train_tokens_per_s": tps,
        "test_perplexity": corpus_perplexity(model, corpus.test, 64, device),
    }
    save_model(model.cpu(), corpus.tokenizer, out)
    info["seconds"] = time.perf_counter() - start
    write_text_atomic(out / INFO_FILE, json.dumps(info, indent=2))
    return info
