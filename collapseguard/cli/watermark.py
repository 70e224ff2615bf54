"""`collapseguard watermark`: detect KGW and SynthID-Text watermarks in text shards."""

from __future__ import annotations

import json
import math

import click

from collapseguard.errors import CollapseguardError

KEY_ENV = "COLLAPSEGUARD_WATERMARK_KEY"
SYNTHID_KEYS_ENV = "COLLAPSEGUARD_SYNTHID_KEYS"  # = synthid.KEYS_ENV (tested); that module imports numpy
BATCH = 256
KGW_COLUMNS = ("z_score", "p_value", "num_tokens_scored", "prediction")
SYNTHID_COLUMNS = ("z_score", "p_value", "mean_g", "num_tokens_scored", "prediction")


@click.group()
def watermark() -> None:
    """Watermark detection compatible with transformers: KGW green lists (Kirchenbauer et al.
    2023, `detect`) and SynthID-Text (Dathathri et al. 2024, `synthid`).

    \b
    Examples:
      COLLAPSEGUARD_WATERMARK_KEY=15485863 collapseguard watermark detect crawl.jsonl --tokenizer gen0/ --json
      COLLAPSEGUARD_SYNTHID_KEYS=654,400,836 collapseguard watermark synthid crawl.jsonl --tokenizer gen0/ --json
    """


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


def _cell(column: str, value) -> str:
    """One table cell: z to 3 decimals ('abstain' when NaN), other floats short, prediction as a word."""
    if column == "prediction":
        return {True: "watermarked", False: "no", None: "-"}[value]
    if column == "z_score":
        return "abstain" if math.isnan(value) else f"{value:.3f}"
    if isinstance(value, float) and math.isnan(value):
        return ""
    if column == "mean_g":
        return f"{value:.4f}"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _table_row(rec, out: dict, columns) -> str:
    """source, index, then ``columns`` of ``out``, tab-separated."""
    return "\t".join([rec.source, str(rec.index), *(_cell(c, out[c]) for c in columns)])


def _write_results(detector, inputs, column: str, as_json: bool, columns, label: str) -> None:
    """Score every record of ``inputs`` in batches; echo a table (header first) or JSON lines.

    Empty texts abstain; inputs holding no records at all are an error (exit code 2)."""
    from collapseguard.cli.progress import progress_bar
    from collapseguard.io.readers import iter_records

    seen = 0

    def flush(batch):
        nonlocal seen
        if batch and not seen and not as_json:
            click.echo("\t".join(["source", "index", *columns]))
        seen += len(batch)
        for rec, out in zip(batch, detector.detect([r.text for r in batch]), strict=True):
            if as_json:
                row = {"source": rec.source, "index": rec.index, "detector": detector.name,
                       **{k: _json_value(v) for k, v in out.items()}}  # fmt: skip
                click.echo(json.dumps(row))
            else:
                click.echo(_table_row(rec, out, columns))

    with progress_bar(len(inputs), label) as bar:
        for path in inputs:
            batch = []
            for rec in iter_records(path, column=column):
                batch.append(rec)
                if len(batch) >= BATCH:
                    flush(batch)
                    batch = []
            flush(batch)
            bar.update(1)
    if not seen:
        raise CollapseguardError(f"{', '.join(map(str, inputs))}: no text records (INPUT); pass files holding at least one record")


def shared_options(f):
    """The options both watermark commands take: tokenizer, normalisation, threshold, column, --json."""
    opts = [
        click.option("--tokenizer", "tokenizer_dir", required=True, type=click.Path(), help="Local directory of the generating model's tokenizer."),
        click.option("--normalize/--no-normalize", default=True, show_default=True, help="NFKC, zero-width removal, homoglyph folding."),
        click.option("--z-threshold", default=4.0, show_default=True, help="prediction = z_score > threshold."),
        click.option("--column", default="text", show_default=True, help="Text column of jsonl/parquet/datasets inputs."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per record."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@watermark.command("detect")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@shared_options
@click.option("--greenlist-ratio", default=0.25, show_default=True, help="Green fraction γ of the vocabulary.")
@click.option("--hashing-key", envvar=KEY_ENV, default=None, help=f"Secret integer key (or set {KEY_ENV}); never printed.")
@click.option("--seeding-scheme", default="lefthash", show_default=True, type=click.Choice(["lefthash", "selfhash"]))
@click.option("--context-width", default=1, show_default=True, help="Tokens of context per seed.")
@click.option("--vocab-size", type=int, default=None, help="The model's config.vocab_size [default: len(tokenizer)].")
@click.option("--ignore-repeated-ngrams/--count-repeated-ngrams", default=True, show_default=True, help="Score each distinct n-gram once.")
@click.option("--min-tokens", default=1, show_default=True, help="Abstain below this many scored tokens.")
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
    from collapseguard.cli.preflight import check_paths
    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector

    check_paths(INPUT=inputs)
    config = KGWConfig(greenlist_ratio=greenlist_ratio, hashing_key=_parse_key(hashing_key), seeding_scheme=seeding_scheme,
                       context_width=context_width, ignore_repeated_ngrams=ignore_repeated_ngrams, z_threshold=z_threshold,
                       normalize=normalize, vocab_size=vocab_size, min_tokens_scored=min_tokens)  # fmt: skip
    detector = KGWDetector(config, tokenizer=tokenizer_dir)
    _write_results(detector, inputs, column, as_json, KGW_COLUMNS, "watermark detect")


@watermark.command("synthid")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@shared_options
@click.option("--keys", envvar=SYNTHID_KEYS_ENV, default=None, help=f"Secret comma-separated integer keys, one per depth (or set {SYNTHID_KEYS_ENV}); never printed.")
@click.option("--ngram-len", default=5, show_default=True, help="Tokens per n-gram (context + scored token).")
@click.option("--sampling-table-size", default=2**16, show_default=True, help="Size of the random 0/1 g-value table.")
@click.option("--sampling-table-seed", default=0, show_default=True, help="Seed of the g-value table.")
@click.option("--sampling-table-device", default="cpu", show_default=True, help="Device of the generating model (its generator draws the table).")
@click.option("--context-history-size", default=1024, show_default=True, help="Contexts remembered when masking repeated contexts.")
@click.option("--min-tokens", default=1, show_default=True, help="Abstain below this many scored positions.")
def synthid(inputs, tokenizer_dir, keys, ngram_len, sampling_table_size, sampling_table_seed, sampling_table_device,
            context_history_size, normalize, z_threshold, min_tokens, column, as_json) -> None:  # fmt: skip
    """Score each record of INPUT... for a SynthID-Text watermark (training-free mean score).

    mean_g is the mean g-value over scored positions and depths; z_score and the exact
    binomial p_value test it against unwatermarked text, whose g-values are coin flips with
    the table's fraction of ones (about 0.5). Settings must match transformers' SynthIDTextWatermarkingConfig used at generation.
    Records with too few positions abstain (z_score null / "abstain").

    \b
    Examples:
      COLLAPSEGUARD_SYNTHID_KEYS=654,400,836,123,340 collapseguard watermark synthid shard.jsonl \\
          --tokenizer gen0/ --ngram-len 5 --json
      collapseguard watermark synthid a.txt b.parquet --tokenizer gen0/ --keys 654,400,836 --z-threshold 5
    """
    from collapseguard.cli.preflight import check_paths
    from collapseguard.detectors.watermark.synthid import SynthIDConfig, SynthIDDetector, parse_keys

    check_paths(INPUT=inputs)
    config = SynthIDConfig(keys=parse_keys(keys), ngram_len=ngram_len, sampling_table_size=sampling_table_size,
                           sampling_table_seed=sampling_table_seed, sampling_table_device=sampling_table_device,
                           context_history_size=context_history_size, z_threshold=z_threshold,
                           min_tokens_scored=min_tokens, normalize=normalize)  # fmt: skip
    detector = SynthIDDetector(config, tokenizer=tokenizer_dir)
    _write_results(detector, inputs, column, as_json, SYNTHID_COLUMNS, "watermark synthid")
