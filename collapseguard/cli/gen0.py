"""`collapseguard gen0 train`: train and save the generation-0 reference model."""

from __future__ import annotations

import json

import click

from collapseguard.cli.options import overwrite_option, seed_option


@click.group()
def gen0() -> None:
    """The generation-0 reference model (scores text for the perplexity detector).

    \b
    Examples:
      collapseguard gen0 train --corpus synthetic --out models/gen0-synth     # seconds
      collapseguard gen0 train --corpus ../shared/data/wikitext-2 --preset tiny --max-blocks 2000 \\
          --out models/gen0-wt2                                                # minutes on 2 cores
    """


@gen0.command("train")
@click.option("--corpus", default="synthetic", show_default=True,
              help="`synthetic` (the ground-truth language) or a text/jsonl/parquet file, saved dataset or WikiText-2 dir.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Model directory to write.")
@click.option("--preset", default="tiny", show_default=True, help="Model size: tiny, mini, base or small (GPT-2 small).")
@click.option("--base-model", type=click.Path(file_okay=False), default=None, help="Local HF causal-LM dir to fine-tune instead.")
@click.option("--tokenizer", type=click.Path(file_okay=False), default=None, help="Local tokenizer dir (default: train BPE).")
@click.option("--test-corpus", default=None, help="Held-out text (default: 10% of the corpus; WikiText-2 uses its test file).")
@click.option("--text-column", default="text", show_default=True, help="Text column of jsonl/parquet/datasets input.")
@click.option("--vocab-size", default=4096, show_default=True, help="BPE vocabulary when training a tokenizer.")
@click.option("--block-size", default=64, show_default=True, help="Tokens per training block.")
@click.option("--max-blocks", type=int, default=None, help="Cap on training blocks (synthetic default 512).")
@click.option("--test-blocks", default=128, show_default=True, help="Held-out blocks for test perplexity.")
@click.option("--epochs", default=5, show_default=True, help="Passes over the training blocks.")
@click.option("--batch-size", default=16, show_default=True, help="Training batch size (blocks).")
@click.option("--lr", default=3e-3, show_default=True, help="AdamW learning rate (use ~5e-5 to fine-tune a pretrained base).")
@seed_option("Random seed (initialisation, order, synthetic sample).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu or cuda.")
@click.option("--threads", default=0, show_default=True, help="CPU threads for torch (0: torch's default; 1 is fastest on a busy machine).")
@click.option("--json", "json_out", is_flag=True, help="Print a JSON summary.")
@overwrite_option
def train_command(**p) -> None:
    """Train the reference model on a corpus and save it (safetensors) with its tokenizer.

    The directory loads with AutoModelForCausalLM.from_pretrained(OUT) and
    AutoTokenizer.from_pretrained(OUT).

    \b
    Examples:
      collapseguard gen0 train --corpus synthetic --out models/gen0-synth
      collapseguard gen0 train --corpus ../shared/data/wikitext-2 --preset tiny --max-blocks 2000 --out models/gen0-wt2
      collapseguard gen0 train --corpus shard.parquet --text-column text --base-model opt-125m/ --lr 5e-5 --out models/gen0
    """
    from collapseguard.cli.progress import Heartbeat
    from collapseguard.simulate.lm.gen0 import train_gen0
    from collapseguard.simulate.lm.generate import DecodingConfig
    from collapseguard.simulate.lm.loop import LMConfig
    from collapseguard.simulate.lm.train import TrainConfig

    config = LMConfig(
        corpus=p["corpus"], test_corpus=p["test_corpus"], text_column=p["text_column"], preset=p["preset"],
        base_model=p["base_model"], tokenizer=p["tokenizer"], vocab_size=p["vocab_size"], block_size=p["block_size"],
        max_blocks=p["max_blocks"], test_blocks=p["test_blocks"], generations=0, seed=p["seed"],
        train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"]), decoding=DecodingConfig(),
        device=p["device"], threads=p["threads"])
    with Heartbeat("gen0 train") as beat:
        info = train_gen0(config, p["out"], overwrite=p["overwrite"], progress=beat.say)
    if p["json_out"]:
        click.echo(json.dumps(info))
    else:
        click.echo(f"wrote {info['out']} (test perplexity {info['test_perplexity']:.2f}, {info['seconds']:.1f} s)")
