"""`collapseguard detect score|calibrate|evaluate|combine|tokens|train`: run, calibrate and evaluate detectors."""

from __future__ import annotations

import click


@click.group()
def detect() -> None:
    """Score texts with a detector, calibrate its threshold, and evaluate it.

    \b
    Examples:
      collapseguard detect score shard.parquet --model runs/gen0 --out scored.parquet
      collapseguard detect calibrate --human heldout.jsonl --model runs/gen0 --fpr 0.01 --out cal.json
      collapseguard detect score shard.jsonl --model runs/gen0 --calibration cal.json --json
      collapseguard detect evaluate --human h.txt --machine m.txt --model runs/gen0 --json
      collapseguard detect combine --human h.txt --machine m.txt --model runs/gen0 --out comb.json
      collapseguard detect train --human h.jsonl --machine m.jsonl --features static,style --out runs/learned
      collapseguard detect score shard.jsonl --detector learned_v1 --model runs/learned --json
    """


# the subcommands register themselves on `detect`
from collapseguard.cli.detect import calibrate, combine, evaluate, score, tokens, train  # noqa: E402,F401
