"""Options and runner for `collapseguard simulate run --world lm` (the language-model loop)."""

from __future__ import annotations

import json
import sys

import click

# LM defaults used when `simulate run` leaves its statistical-world defaults untouched
LM_GENERATIONS, LM_SEEDS = 5, 1

_OPTIONS = [
    click.option("--corpus", default="synthetic", show_default=True,
                 help="lm: `synthetic` (ground-truth language) or a text/jsonl/parquet file, saved dataset or WikiText-2 dir."),
    click.option("--test-corpus", default=None, help="lm: held-out text (default: 10% of the corpus; WikiText-2: its test file)."),
    click.option("--text-column", default="text", show_default=True, help="lm: text column of jsonl/parquet/datasets input."),
    click.option("--preset", default="tiny", show_default=True, help="lm: model size tiny, mini, base or small."),
    click.option("--base-model", default=None, help="lm: local HF causal-LM dir fine-tuned each generation instead of a preset."),
    click.option("--tokenizer", default=None, help="lm: local tokenizer dir (default: the base model's, or BPE trained here)."),
    click.option("--vocab-size", default=4096, show_default=True, help="lm: BPE vocabulary when training a tokenizer."),
    click.option("--block-size", default=64, show_default=True, help="lm: tokens per block (prompt and continuation)."),
    click.option("--max-blocks", type=int, default=None, help="lm: cap on training blocks (synthetic default 512; else --samples if given)."),
    click.option("--test-blocks", default=128, show_default=True, help="lm: held-out blocks for test perplexity and AUROC."),
    click.option("--epochs", default=5, show_default=True, help="lm: training passes per generation."),
    click.option("--batch-size", default=16, show_default=True, help="lm: training batch size (blocks)."),
    click.option("--lr", default=3e-3, show_default=True, help="lm: AdamW learning rate (~5e-5 to fine-tune a pretrained base)."),
    click.option("--decoding", default="beam", show_default=True, help="lm: beam (the paper's 5-way beam search) or sample."),
    click.option("--num-beams", default=5, show_default=True, help="lm: beams for --decoding beam."),
    click.option("--temperature", default=1.0, show_default=True, help="lm: sampling temperature."),
    click.option("--top-p", default=1.0, show_default=True, help="lm: nucleus sampling mass."),
    click.option("--repetition-penalty", default=1.0, show_default=True, help="lm: repetition penalty (the paper also ran 2.0)."),
    click.option("--gen-batch-size", default=32, show_default=True, help="lm: prompts per generate() call."),
    click.option("--device", default="auto", show_default=True, help="lm: auto (CUDA when present), cpu or cuda."),
    click.option("--threads", default=0, show_default=True, help="lm: CPU threads for torch (0: torch's default; 1 is fastest on a busy machine)."),
    click.option("--watermark-key", type=int, default=None, help="lm: KGW-watermark generated text with this secret key."),
    click.option("--guard", default=None, metavar="POLICY",
                 help="lm: run the real guard between each generation's crawl and training: `default` (watermark + "
                      "ledger + Gen-0 perplexity, calibrated on the loop's held-out human text) or a policy TOML."),
    click.option("--watermark-share", type=float, default=0.0, show_default=True,
                 help="lm --guard: share of the generator's documents that carry the KGW watermark."),
    click.option("--ledger-share", type=float, default=0.0, show_default=True,
                 help="lm --guard: share of the generator's documents a provider logs in the ledger."),
    click.option("--restore-human", type=float, default=None,
                 help="lm --guard: curate the filtered crawl with verified human blocks at this human fraction."),
    click.option("--guard-fpr", type=float, default=0.05, show_default=True,
                 help="lm --guard default: the false-positive rate the built-in policy is calibrated to."),
]


def lm_options(command):
    """Add the LM-only options to `simulate run` (all defaults are inert for other worlds)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def _explicit(name: str) -> bool:
    """Whether `--name` was passed (True outside click, where every given parameter counts)."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)


def config_from_params(p: dict):
    """The LMConfig for `simulate run` parameters.

    `--generations` and `--seeds` keep their LM defaults (5 and 1) unless passed; `--samples`,
    when passed, caps the training blocks like `--max-blocks`.
    """
    from collapseguard.errors import CollapseguardError
    from collapseguard.simulate.lm.generate import DecodingConfig
    from collapseguard.simulate.lm.guard import GuardConfig
    from collapseguard.simulate.lm.loop import LMConfig
    from collapseguard.simulate.lm.train import TrainConfig

    guard = None
    if p.get("guard"):
        guard = GuardConfig(p["guard"], p.get("watermark_share", 0.0), p.get("ledger_share", 0.0),
                            p.get("restore_human"), p.get("guard_fpr", 0.05))
    elif p.get("watermark_share") or p.get("ledger_share") or p.get("restore_human") is not None:
        raise CollapseguardError("--watermark-share, --ledger-share and --restore-human need --guard (e.g. --guard default)")
    max_blocks = p.get("max_blocks")
    if max_blocks is None and "samples" in p and _explicit("samples"):
        max_blocks = p["samples"]
    return LMConfig(
        corpus=p["corpus"], test_corpus=p.get("test_corpus"), text_column=p.get("text_column", "text"),
        preset=p["preset"], base_model=p.get("base_model"), tokenizer=p.get("tokenizer"),
        vocab_size=p.get("vocab_size", 4096), block_size=p["block_size"], max_blocks=max_blocks,
        test_blocks=p.get("test_blocks", 128),
        generations=p["generations"] if "generations" in p and _explicit("generations") else LM_GENERATIONS,
        seeds=p["seeds"] if "seeds" in p and _explicit("seeds") else LM_SEEDS, seed=p.get("seed", 0),
        workflow=p.get("workflow") or p.get("policy") or "replace", human_fraction=p.get("human_fraction", 0.0),
        train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"]),
        decoding=DecodingConfig(p["decoding"], p["num_beams"], p["temperature"], p["top_p"], p["repetition_penalty"]),
        gen_batch_size=p.get("gen_batch_size", 32), device=p.get("device", "auto"), threads=p.get("threads", 0), watermark_key=p.get("watermark_key"),
        guard=guard)


def run_lm(params: dict) -> None:
    """Run the LM loop from the parsed `simulate run` parameters."""
    from collapseguard.cli.progress import Heartbeat
    from collapseguard.errors import CollapseguardError
    from collapseguard.simulate.lm.loop import run_lm_loop

    if params.get("prev_fraction") or params.get("filter_tpr") or params.get("filter_fpr") or params.get("model_fraction") is not None \
            or params.get("schedule", "constant") != "constant":
        raise CollapseguardError("--world lm takes --policy and --human-fraction only (no --prev-fraction, "
                                 "--model-fraction, --schedule or --filter-*); drop those options")
    if params.get("world_options"):
        raise CollapseguardError("--world lm takes no -o world options; set the LM with its own options (see --help)")
    config = config_from_params(params)
    with Heartbeat("simulate run --world lm") as beat:
        summary = run_lm_loop(config, params["out"], progress=beat.say, overwrite=params.get("overwrite", False))
    if params.get("json_out"):
        click.echo(json.dumps(summary))
    else:
        click.echo(f"wrote {summary['results']} and {summary['report']} ({summary['seconds']:.1f} s)")
    sys.stderr.flush()
