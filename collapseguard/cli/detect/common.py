"""What the `detect` subcommands share: detector options and building, scoring with progress,
groups, drift checks."""

from __future__ import annotations

import math

import click

from collapseguard.cli.options import parse_key_values
from collapseguard.errors import CollapseguardError

INPUT_HELP = "text, jsonl, parquet, saved datasets, or detect-dev *.raw_data.json (--column original|sampled)"


def parse_options(pairs: tuple[str, ...]) -> dict:
    """Detector KEY=VALUE options -> dict."""
    return parse_key_values(pairs, "detector option", "min_tokens=32")


def _set_threads(ctx, param, value):
    """--threads N: torch's intra-op threads for this command (1 is fastest on a busy machine)."""
    if value is not None:
        if value < 1:
            raise click.BadParameter(f"must be >= 1, got {value}")
        import torch

        torch.set_num_threads(value)
    return value


threads_option = click.option("--threads", type=int, default=None, expose_value=False, callback=_set_threads,
                              help="CPU threads for torch (default: torch's; 1 is fastest on a busy machine).")


def labelled_text_options(human_help: str):
    """--human and --machine, both required and repeatable (train, evaluate)."""
    def wrap(f):
        f = click.option("--machine", multiple=True, required=True, type=click.Path(),
                         help="Machine text; raw_data.json files default to `sampled`.")(f)
        return click.option("--human", multiple=True, required=True, type=click.Path(),
                            help=f"{human_help} ({INPUT_HELP}); repeatable.")(f)
    return wrap


def detector_options(f):
    """The options every detect subcommand shares; they fill the detector's config dataclass."""
    opts = [
        click.option("--detector", default="gen0_ppl_v1", show_default=True,
                     help="gen0_ppl_v1, learned_v1, kgw_v1, synthid_v1 or minhash_v1."),
        click.option("--model", "model_dir", type=click.Path(),
                     help="Local model folder (gen0_ppl_v1), trained folder (learned_v1) or tokenizer folder (kgw_v1)."),
        click.option("--observer", "observer_dir", type=click.Path(), help="gen0_ppl_v1: second model with the same tokenizer (Binoculars)."),
        click.option("--score", "score_kind", default=None, help="gen0_ppl_v1 main score: fast_detectgpt (default), log_prob, log_rank, entropy, binoculars."),
        click.option("--min-tokens", type=int, default=None, help="gen0_ppl_v1: abstain below this many scored tokens (default 16)."),
        click.option("--stride", type=int, default=None, help="gen0_ppl_v1: sliding-window stride for long texts (default: context / 2)."),
        click.option("--batch-size", type=int, default=None, help="gen0_ppl_v1: windows per batch (default 32)."),
        click.option("--device", default=None, help="gen0_ppl_v1: auto (default), cpu, cuda."),
        click.option("-o", "--option", "extra", multiple=True, metavar="KEY=VALUE", help="Any other config field, e.g. -o max_text_tokens=4096."),
        click.option("--column", default=None, help="Text column/field (default: text; original|sampled for raw_data.json)."),
        click.option("--format", "fmt", default=None, help="Force the input format: text, jsonl, parquet, datasets."),
        click.option("--combined", type=click.Path(dir_okay=False), default=None,
                     help="Apply a combined_v1 fit (from `detect combine`) on top of the detector's scores."),
        threads_option,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def build(detector: str, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra,
          combined=None):
    """The detector the options describe, wrapped in the combined_v1 fit when `combined` is given."""
    det = build_member(detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra)
    if combined is None:
        return det
    from collapseguard.detectors.combine import load_combined

    return load_combined(combined, [det])


def build_member(detector: str, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra):
    from collapseguard.detectors.registry import build_detector

    options = {"model_dir": model_dir}
    if detector == "gen0_ppl_v1":
        options.update(observer_dir=observer_dir, score=score_kind, min_tokens=min_tokens, stride=stride,
                       batch_size=batch_size, device=device)
    elif any(v is not None for v in (observer_dir, score_kind, min_tokens, stride, batch_size, device)):
        raise CollapseguardError(f"--observer/--score/--min-tokens/--stride/--batch-size/--device are gen0_ppl_v1 options; for {detector} use -o KEY=VALUE")
    options.update(parse_options(extra))
    return build_detector(detector, options)


def score_with_progress(detector, texts: list[str]):
    """detector.score(texts), with a progress bar on stderr for the perplexity detector."""
    import numpy as np

    from collapseguard.cli.progress import progress_bar

    if not texts:
        return np.empty(0, dtype=float)
    if not hasattr(detector, "count_windows"):
        return np.asarray(detector.score(texts), dtype=float)
    total = detector.count_windows(texts)
    with progress_bar(total, "scoring windows") as bar:
        return detector.score(texts, progress=bar.update)


def _clean(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def _nan_to_null(x):
    """NaN floats -> None, recursively (JSON has no NaN)."""
    if isinstance(x, dict):
        return {k: _nan_to_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_null(v) for v in x]
    return _clean(x)


ALLOW_OVERLAP = click.option(
    "--allow-overlap", is_flag=True,
    help="learned_v1: proceed even when texts share a source (opening words, passages) with the detector's "
         "training text; the overlap is recorded in the output. Without it such texts are refused.")


GROUP_HELP = ("Column/field naming each record's group (domain) for per-group thresholds; for raw_data.json "
              "files: domain or generator (from the file name); `file` = the input file.")


def group_labels(paths, records, group_column: str | None, fmt=None) -> list[str] | None:
    """One group label per record (aligned with `load_records(paths, ...)`), or None without --group-column."""
    from pathlib import Path

    from collapseguard.detectors.detect_inputs import is_raw_data_json
    from collapseguard.io.readers import read_texts

    if group_column is None:
        return None
    labels: dict[tuple[str, int], str] = {}
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        name = Path(p).name
        if group_column == "file" or is_raw_data_json(p):
            if is_raw_data_json(p) and group_column not in ("domain", "generator", "file"):
                raise CollapseguardError(f"{p}: raw_data.json files group by domain, generator or file, not {group_column!r}")
            stem = name.removesuffix(".raw_data.json").split("_", 1)
            label = name if group_column == "file" else stem[0] if group_column == "domain" else stem[-1]
            labels.update({(str(p), r.index): label for r in records if r.source == str(p)})
        else:
            labels.update({(r.source, r.index): r.text for r in read_texts([p], group_column, fmt)})
    return [labels[(r.source, r.index)] for r in records]


def all_score_columns(det, texts: list[str]):
    """(main scores, {column: scores}) with every score the detector offers, in one pass."""
    import numpy as np

    from collapseguard.detectors.combine import CombinedDetector

    if isinstance(det, CombinedDetector):
        mat = det.member_scores(texts)
        cols = {f"{det.name}.{n}": mat[:, i] for i, n in enumerate(det.feature_names())}
        return det.combine(mat), cols
    if hasattr(det, "feature_names") and hasattr(det, "features") and hasattr(det.config, "score"):
        names = det.feature_names()
        mat = det.features(texts)
        cols = {f"{det.name}.{n}": mat[:, i] for i, n in enumerate(names)}
        return cols[f"{det.name}.{det.config.score}"], cols
    main = np.asarray(det.score(texts), dtype=float)
    return main, {}


def drift_checks(cal, texts: list[str], groups: list[str] | None) -> list[tuple[str | None, dict]]:
    """(group, report) for every drift check with something to say against the calibration (per
    group when it has groups; group None = all the texts)."""
    from collapseguard.detectors.drift import check_texts, speaks

    if groups is not None and cal.groups:
        out = []
        for g in sorted(set(groups)):
            record = (cal.groups.get(g) or {}).get("domain") or cal.domain
            if record:
                rep = check_texts(record, [t for t, x in zip(texts, groups, strict=True) if x == g])
                out += [(g, rep)] if speaks(rep) else []
        return out
    if not cal.domain:
        return []
    rep = check_texts(cal.domain, texts)
    return [(None, rep)] if speaks(rep) else []


def drift_warnings(cal, texts: list[str], groups: list[str] | None) -> list[str]:
    """Out-of-domain warnings for `texts` against the calibration (per group when it has groups)."""
    from collapseguard.detectors.drift import warning_text

    return [warning_text(rep, cal.fpr_target, g) for g, rep in drift_checks(cal, texts, groups)]


def abstain_on_drift(checks, decisions, reasons, groups) -> None:
    """Every record of a text set the drift test flags (all, or its group) abstains, in place."""
    from collapseguard.detectors.calibration import ABSTAIN

    for g, rep in checks:
        if rep["warn"]:
            for i in range(len(decisions)):
                if g is None or groups[i] == g:
                    decisions[i], reasons[i] = ABSTAIN, "drift: unlike the calibration's human text; recalibrate on text like it"


def emit_warnings(warnings: list[str]) -> None:
    for w in warnings:
        click.echo(f"warning: {w}", err=True)


def slice_labels(records) -> dict:
    """Per-record groups: length bucket and input file; domain and generator for detect-dev files."""
    from pathlib import Path

    from collapseguard.detectors.detect_inputs import is_raw_data_json
    from collapseguard.detectors.evaluation import length_bucket

    names = [Path(r.source).name for r in records]
    groups = {"length": [length_bucket(r.text) for r in records], "file": names}
    if names and all(is_raw_data_json(n) and "_" in n for n in names):
        stems = [n.removesuffix(".raw_data.json").split("_", 1) for n in names]
        groups["domain"] = [d for d, _ in stems]
        groups["generator"] = [g for _, g in stems]
    return groups
