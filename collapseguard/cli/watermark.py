"""`collapseguard watermark`: detect KGW watermarks in text shards."""

from __future__ import annotations

import json
import math
import sys

import click

from collapseguard.errors import CollapseguardError

KEY_ENV = "COLLAPSEGUARD_WATERMARK_KEY"
BATCH = 256


@click.group()
def watermark() -> None:
    """KGW green-list watermarks (Kirchenbauer et al. 2023), compatible with transformers."""


def _parse_key(value: str | None) -> int:
    """The hashing key as an int; errors never echo the (secret) value."""
    if value is None:
        raise CollapseguardError(f"no hashing key; pass --hashing-key K or set {KEY_ENV}")
    try:
        return int(value.strip())
    except ValueError:
        raise CollapseguardError("--hashing-key: not an integer (value not shown: it is secret); pass the integer key used at generation") from None


def _json_value(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _table_row(rec, out: dict) -> str:
    z = "abstain" if math.isnan(out["z_score"]) else f"{out['z_score']:.3f}"
    p = "" if math.isnan(out["p_value"]) else f"{out['p_value']:.3g}"
    pred = {True: "watermarked", False: "no", None: "-"}[out["prediction"]]
    return f"{rec.source}\t{rec.index}\t{z}\t{p}\t{out['num_tokens_scored']}\t{pred}"


@watermark.command("detect")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--tokenizer", "tokenizer_dir", required=True, type=click.Path(), help="Local directory of the generating model's tokenizer.")
@click.option("--greenlist-ratio", default=0.25, show_default=True, help="Green fraction γ of the vocabulary.")
@click.option("--hashing-key", envvar=KEY_ENV, default=None, help=f"Secret integer key (or set {KEY_ENV}); never printed.")
@click.option("--seeding-scheme", default="lefthash", show_default=True, type=click.Choice(["lefthash", "selfhash"]))
@click.option("--context-width", default=1, show_default=True, help="Tokens of context per seed.")
@click.option("--vocab-size", type=int, default=None, help="The model's config.vocab_size [default: len(tokenizer)].")
@click.option("--ignore-repeated-ngrams/--count-repeated-ngrams", default=True, show_default=True, help="Score each distinct n-gram once.")
@click.option("--normalize/--no-normalize", default=True, show_default=True, help="NFKC, zero-width removal, homoglyph folding.")
@click.option("--z-threshold", default=4.0, show_default=True, help="prediction = z_score > threshold.")
@click.option("--min-tokens", default=1, show_default=True, help="Abstain below this many scored tokens.")
@click.option("--column", default="text", show_default=True, help="Text column of jsonl/parquet/datasets inputs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
def detect(inputs, tokenizer_dir, greenlist_ratio, hashing_key, seeding_scheme, context_width, vocab_size,
           ignore_repeated_ngrams, normalize, z_threshold, min_tokens, column, as_json) -> None:  # fmt: skip
    """Score each record of INPUT... for a KGW watermark: z_score, p_value, num_tokens_scored.

    p_value is the exact binomial tail P(green >= observed) for unwatermarked text. Records
    with too few tokens abstain (z_score null / "abstain"); they are never called human.

    \b
    Examples:
      collapseguard watermark detect shard.jsonl --tokenizer gen0/ --hashing-key 15485863 --json
      COLLAPSEGUARD_WATERMARK_KEY=15485863 collapseguard watermark detect a.txt b.parquet \\
          --tokenizer gen0/ --seeding-scheme selfhash --context-width 4
    """
    from collapseguard.detectors.watermark import KGWConfig, KGWDetector
    from collapseguard.io.readers import iter_records

    config = KGWConfig(greenlist_ratio=greenlist_ratio, hashing_key=_parse_key(hashing_key), seeding_scheme=seeding_scheme,
                       context_width=context_width, ignore_repeated_ngrams=ignore_repeated_ngrams, z_threshold=z_threshold,
                       normalize=normalize, vocab_size=vocab_size, min_tokens_scored=min_tokens)  # fmt: skip
    detector = KGWDetector(config, tokenizer=tokenizer_dir)
    if not as_json:
        click.echo("source\tindex\tz_score\tp_value\tnum_tokens_scored\tprediction")

    def flush(batch):
        for rec, out in zip(batch, detector.detect([r.text for r in batch]), strict=True):
            if as_json:
                row = {"source": rec.source, "index": rec.index, "detector": detector.name,
                       **{k: _json_value(v) for k, v in out.items()}}  # fmt: skip
                click.echo(json.dumps(row))
            else:
                click.echo(_table_row(rec, out))

    with click.progressbar(inputs, label="watermark detect", file=sys.stderr) as bar:
        for path in bar:
            batch = []
            for rec in iter_records(path, column=column):
                batch.append(rec)
                if len(batch) >= BATCH:
                    flush(batch)
                    batch = []
            flush(batch)
