"""`collapseguard detect tokens`: per-token scores of one record."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import threads_option
from collapseguard.errors import CollapseguardError


@detect.command("tokens")
@click.argument("input_path", type=click.Path())
@click.option("--model", "model_dir", type=click.Path(), required=True, help="Local Gen-0 model folder.")
@click.option("--record", default=0, show_default=True, help="Which record of INPUT to show.")
@click.option("--column", default=None, help="Text column/field.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines per token.")
@threads_option
def tokens_cmd(input_path, model_dir, record, column, as_json):
    """Per-token log-prob, rank and entropy under the Gen-0 model: see which part of a document is machine-like.

    \b
    Example:
      collapseguard detect tokens doc.txt --model runs/gen0 --record 3
    """
    from collapseguard.detectors.detect_inputs import load_records
    from collapseguard.detectors.registry import build_detector

    records = load_records([input_path], column)
    if not 0 <= record < len(records):
        raise CollapseguardError(f"{input_path}: no record {record} (has {len(records)}); pass --record 0..{len(records) - 1}")
    det = build_detector("gen0_ppl_v1", {"model_dir": model_dir, "min_tokens": 1})
    for t in det.token_scores(records[record].text):
        click.echo(json.dumps(t) if as_json else f"{t['start']}\t{t['end']}\t{t['log_prob']:.3f}\t{t['rank']}\t{t['entropy']:.3f}\t{t['token']!r}")
