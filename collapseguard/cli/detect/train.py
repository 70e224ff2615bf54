"""`collapseguard detect train`: fit `learned_v1` on labelled text, with grouped cross-validation."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import (
    labelled_text_options,
    threads_option,
)
from collapseguard.cli.options import overwrite_option, seed_option
from collapseguard.cli.preflight import (
    check_paths,
    require_records,
)


@detect.command("train")
@labelled_text_options("Human text to train on")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder to write (learned.json + model.npz).")
@click.option("--features", default="static,style", show_default=True,
              help="Comma list of gen0, embeddings (MiniLM, ~17 texts/s per core), static (a token table distilled "
                   "from MiniLM, saved in the folder: thousands of texts/s, as accurate on detect-dev), style.")
@click.option("--gen0", "gen0_dir", type=click.Path(file_okay=False), default=None, help="Gen-0 model folder (for the gen0 features).")
@click.option("--model", "model_class", default="mlp", show_default=True,
              help="mlp, gbm, logistic, or auto (grouped cross-validation picks the class too). mlp on "
                   "static,style: best over detect-dev's article-grouped folds (BENCHMARKS.md).")
@click.option("--cv-folds", default=5, show_default=True,
              help="Grouped cross-validation folds that choose the model's regularisation (folds never split a "
                   "source group); 0 = no selection, the class's default setting.")
@click.option("--select-by", "criterion", type=click.Choice(["auroc", "tpr_at_1pct"]), default="auroc",
              show_default=True, help="What the grouped cross-validation maximises (mean over folds).")
@seed_option("Random seed (gbm, mlp, fold assignment).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda for the feature models.")
@click.option("--column", default=None, help="Text column/field (default: text).")
@click.option("--format", "fmt", default=None, help="Force the input format: text, jsonl, parquet, datasets.")
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@overwrite_option
def train_cmd(human, machine, out, features, gen0_dir, model_class, cv_folds, criterion, seed, device, column, fmt,
              as_json, overwrite):
    """Train learned_v1, a supervised detector, on labelled human and machine text.

    \b
    The training texts are grouped by source (shared opening words, overlapping passages): the
    regularisation (and with --model auto the class) is chosen by cross-validation over folds
    that keep each group whole, and the folder records the groups (sources.npz) so that
    calibrate and evaluate refuse text from the same sources. Train, calibrate and evaluate on
    texts from different sources; the folder then loads with --detector learned_v1 --model OUT
    in score, calibrate and evaluate. Example:
      collapseguard detect train --human h.jsonl --machine m.jsonl --features static,style --out runs/learned
      collapseguard detect calibrate --detector learned_v1 --model runs/learned --human cal.jsonl --out cal.json
    """
    from collapseguard.detectors.detect_inputs import load_records
    from collapseguard.detectors.learned import train_learned
    from collapseguard.io.outputs import check_not_input, claimed_output_dir

    check_paths(human=human, machine=machine, gen0=gen0_dir)
    reads = [*human, *machine, gen0_dir]
    check_not_input(out, reads)
    settings = {"human": list(human), "machine": list(machine), "features": features, "gen0": gen0_dir,
                "model": model_class, "cv_folds": cv_folds, "select_by": criterion, "seed": seed, "column": column,
                "format": fmt}
    h = [r.text for r in require_records(load_records(human, column, fmt, raw_default="original"), human, "--human")]
    m = [r.text for r in require_records(load_records(machine, column, fmt, raw_default="sampled"), machine, "--machine")]
    with claimed_output_dir(out, command="detect train", settings=settings, overwrite=overwrite, inputs=reads):
        meta = train_learned(h, m, out, features, model_class, gen0_dir, seed, device, cv_folds, criterion)
    cv = meta["cv"]
    summary = {"detector": "learned_v1", "features": meta["features"], "model": meta["model"],
               "strength": meta["strength"], "n_human": meta["n_human"], "n_machine": meta["n_machine"],
               "n_dropped": meta["n_dropped"], "source_groups": meta["sources"]["groups"],
               "cv": {k: cv[k] for k in ("folds", "criterion", "chosen", "note") if k in cv}, "out": out}
    if as_json:
        click.echo(json.dumps({**summary, "cv_candidates": cv["candidates"]}))
        return
    strength = ", ".join(f"{k}={v}" for k, v in meta["strength"].items())
    click.echo(f"learned_v1 {meta['model']} ({strength}) on {','.join(meta['features'])}: {meta['n_human']} human, "
               f"{meta['n_machine']} machine texts in {meta['sources']['groups']} source groups -> {out}")
    if cv.get("note"):
        click.echo(f"model selection: {cv['note']}")
    for row in cv["candidates"]:
        mark = " <- chosen" if row == cv.get("chosen") else ""
        click.echo(f"  grouped {cv['folds']}-fold CV {row['model']} {row['param']}={row['value']}: "
                   f"AUROC {row['auroc']:.3f}, TPR@1% {row['tpr_at_1pct']:.3f}{mark}")
