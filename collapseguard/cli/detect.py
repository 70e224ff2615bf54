"""`collapseguard detect score|calibrate|evaluate|combine|tokens`: run, calibrate and evaluate detectors."""

from __future__ import annotations

import json
import math

import click

from collapseguard.cli.options import overwrite_option, parse_key_values, seed_option
from collapseguard.cli.preflight import (
    check_out_file,
    check_paths,
    check_rates,
    check_same_calibration,
    previous_calibration,
    require_records,
    with_settings,
)
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


@detect.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@detector_options
@click.option("--calibration", type=click.Path(), help="Calibration JSON: adds a machine/human/abstain decision column.")
@click.option("--group-column", default=None, help=GROUP_HELP + " Needs a per-group calibration.")
@click.option("--on-drift", type=click.Choice(["warn", "abstain"]), default="warn", show_default=True,
              help="With a calibration: when the texts (or a group) look unlike its human text, warn, or make "
                   "every such record abstain (the promised FPR has nothing to stand on there).")
@click.option("--all-scores", is_flag=True, help="Also write every score the detector offers (gen0_ppl_v1: all four), one pass.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write source, index, score (and decision) to this parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON lines per record, or a summary with --out).")
@overwrite_option
def score_cmd(inputs, detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra,
              column, fmt, combined, calibration, group_column, on_drift, all_scores, out, as_json, overwrite):
    """Score each record of INPUT...; the score goes into a new column named after the detector.

    \b
    Higher = more machine-like; an empty score (NaN/null) means the detector abstained (an
    empty or too-short text); inputs holding no records at all are an error.
    With a calibration, a warning goes to stderr when the texts look unlike the human text
    it was made on (the promised FPR may not hold there).
    Example:
      collapseguard detect score a.jsonl b.parquet --model runs/gen0 --calibration cal.json --out s.parquet
      collapseguard detect score a.jsonl --model runs/gen0 --all-scores --json
    """
    import numpy as np

    from collapseguard.detectors.calibration import (
        check_matches,
        decide_with_reasons,
        load_calibration,
    )
    from collapseguard.detectors.detect_inputs import load_records
    from collapseguard.detectors.drift import warning_text

    reads = [*inputs, model_dir, observer_dir, calibration, combined]
    check_paths(INPUT=inputs, model=model_dir, observer=observer_dir, calibration=calibration, combined=combined)
    settings = {"inputs": list(inputs), "detector": detector, "model": model_dir, "observer": observer_dir,
                "score": score_kind, "min_tokens": min_tokens, "stride": stride, "options": list(extra),
                "column": column, "format": fmt, "combined": combined, "calibration": calibration,
                "group_column": group_column, "all_scores": all_scores, "on_drift": on_drift}
    check_out_file(out, overwrite=overwrite, inputs=reads, command="detect score", settings=settings)
    det = build(detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra, combined)
    cal = None
    if calibration:
        cal = load_calibration(calibration)
        check_matches(cal, det, source=str(calibration))
    records = require_records(load_records(inputs, column, fmt), inputs)
    groups = group_labels(inputs, records, group_column, fmt)
    texts = [r.text for r in records]
    if all_scores:
        scores, extra_cols = all_score_columns(det, texts)
    else:
        scores, extra_cols = score_with_progress(det, texts), {}
    decisions, reasons = decide_with_reasons(scores, cal, texts, groups) if cal is not None else (None, None)
    checks = drift_checks(cal, texts, groups) if cal is not None else []
    if on_drift == "abstain":
        abstain_on_drift(checks, decisions, reasons, groups)
    warnings = [warning_text(rep, cal.fpr_target, g) for g, rep in checks]
    emit_warnings(warnings)
    col = det.name
    if out:
        import pyarrow as pa

        from collapseguard.io.atomic import write_parquet_atomic

        table = {"source": [r.source for r in records], "index": [r.index for r in records],
                 col: pa.array(scores, type=pa.float64(), from_pandas=True)}
        for name, values in extra_cols.items():
            table[name] = pa.array(values, type=pa.float64(), from_pandas=True)
        if decisions is not None:
            table[f"{col}_decision"] = [str(d) for d in decisions]
            table[f"{col}_reason"] = reasons
        write_parquet_atomic(with_settings(pa.table(table), "detect score", settings), out)
        summary = {"records": len(records), "abstained": int(np.isnan(scores).sum()), "out": out}
        if decisions is not None:
            summary["decisions"] = {k: int((decisions == k).sum()) for k in ("machine", "human", "abstain")}
            summary["abstain_share"] = summary["decisions"]["abstain"] / len(records)
            summary["drift_warnings"] = warnings
        click.echo(json.dumps(summary) if as_json else " ".join(f"{k}={v}" for k, v in summary.items()))
        return
    for i, (r, s) in enumerate(zip(records, scores, strict=True)):
        row = {"source": r.source, "index": r.index, col: _clean(float(s))}
        row.update({name: _clean(float(v[i])) for name, v in extra_cols.items()})
        if decisions is not None:
            row["decision"] = str(decisions[i])
            if reasons[i]:
                row["reason"] = reasons[i]
        click.echo(json.dumps(row) if as_json else "\t".join(str(v) for v in row.values()))


@detect.command("calibrate")
@click.option("--human", "human", multiple=True, required=True, type=click.Path(), help="Held-out human text (" + INPUT_HELP + "); repeatable.")
@detector_options
@click.option("--fpr", type=float, default=0.01, show_default=True, help="Target false-positive rate on human text.")
@click.option("--group-column", default=None, help=GROUP_HELP)
@click.option("--slices", "slice_mode", type=click.Choice(["auto", "length", "none"]), default="auto", show_default=True,
              help="Per-slice thresholds so the FPR holds on every slice: auto = domain (--group-column, else "
                   "style clusters) x length bucket; length = length buckets only; none = one pooled threshold. "
                   "Texts outside every calibrated slice (too short, unseen group, out of support) then abstain.")
@click.option("--machine", multiple=True, type=click.Path(),
              help="Labelled machine text (repeatable; not scored): widens each style cluster's support so machine "
                   "text unlike the human text is not abstained merely for being machine-like.")
@click.option("--domain-embeddings/--no-domain-embeddings", default=False, show_default=True,
              help="Also record the MiniLM centroid of the human texts (needs the embeddings extra): every drift "
                   "check then reports their cosine to it, at the cost of a MiniLM pass over up to 1,000 texts "
                   "(about a minute on one CPU core); the verdict does not use it.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the calibration JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration summary as JSON.")
@ALLOW_OVERLAP
@overwrite_option
def calibrate_cmd(human, detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra,
                  column, fmt, combined, fpr, group_column, slice_mode, machine, domain_embeddings, out, as_json,
                  allow_overlap, overwrite):
    """Set the detector's threshold at the (1 - FPR) quantile of held-out human scores.

    \b
    Use human text the detector will never be evaluated on (for learned_v1, nor trained on: text
    sharing a source with its training text is refused unless --allow-overlap). The calibration records what the
    text looked like (style, length, language, embedding centroid), so `score` and `evaluate`
    can warn when they meet text it does not cover. With --group-column each group (domain)
    gets its own threshold. With --slices auto (the default) every slice -- domain x length
    bucket -- gets its own threshold (a slice needs >= 1/FPR - 1 texts; smaller ones merge), and
    text outside every calibrated slice abstains with its reason.

    \b
    Examples:
      collapseguard detect calibrate --human wiki.valid.txt --model runs/gen0 --fpr 0.01 --out cal.json
      collapseguard detect calibrate --human cal.jsonl --detector learned_v1 --model runs/learned \\
          --group-column domain --out cal.json
      collapseguard detect calibrate --human cal_h.jsonl --machine cal_m.jsonl --detector learned_v1 \\
          --model runs/learned --fpr 0.05 --out cal.json
    """
    import numpy as np

    from collapseguard.detectors.calibration import (
        add_slices,
        calibrate_scores,
        detector_identity,
        save_calibration,
        texts_sha256,
    )
    from collapseguard.detectors.detect_inputs import load_records
    from collapseguard.detectors.drift import domain_record
    from collapseguard.detectors.learned import training_overlap

    reads = [*human, *machine, model_dir, observer_dir, combined]
    check_paths(human=human, machine=machine, model=model_dir, observer=observer_dir, combined=combined)
    check_rates([fpr])
    previous = previous_calibration(out, overwrite=overwrite, fpr=fpr, inputs=reads)
    det = build(detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra, combined)
    records = require_records(load_records(human, column, fmt, raw_default="original"), human, "--human")
    groups = group_labels(human, records, group_column, fmt)
    texts = [r.text for r in records]
    overlap = training_overlap([det], texts, "calibration", allow_overlap)
    scores = score_with_progress(det, texts)
    ident = {"detector": det.name, "fingerprint": det.fingerprint(), "identity": detector_identity(det)}
    cal = calibrate_scores(scores, fpr, **ident, sha256=texts_sha256(texts))
    cal.domain = domain_record(texts, domain_embeddings)
    cal.training_overlap = overlap
    if groups is not None:
        cal.groups = {}
        for g in sorted(set(groups)):
            sel = np.array([x == g for x in groups])
            sub = [t for t, k in zip(texts, sel, strict=True) if k]
            try:
                c = calibrate_scores(scores[sel], fpr, **ident, sha256=texts_sha256(sub))
            except CollapseguardError as exc:
                raise CollapseguardError(f"group {g!r} (--group-column {group_column}): {exc}") from None
            cal.groups[g] = {"threshold": c.threshold, "achieved_fpr": c.achieved_fpr, "fpr_ci95": c.fpr_ci95,
                             "n": c.n, "domain": domain_record(sub, domain_embeddings)}
    machine_texts = None
    if machine:
        m_records = require_records(load_records(machine, column, fmt, raw_default="sampled"), machine, "--machine")
        machine_texts = [r.text for r in m_records]
        training_overlap([det], machine_texts, "calibration", allow_overlap)
    slice_notes = add_slices(cal, scores, texts, groups, slice_mode, machine_texts=machine_texts)
    emit_warnings(slice_notes)
    if previous is not None:
        check_same_calibration(previous, cal, out)
    save_calibration(cal, out)
    summary = {"detector": cal.detector, "threshold": cal.threshold, "fpr_target": cal.fpr_target,
               "achieved_fpr": cal.achieved_fpr, "fpr_ci95": cal.fpr_ci95, "n": cal.n,
               "n_abstained": cal.n_abstained, "texts_sha256": cal.texts_sha256, "overlap": overlap, "out": out}
    if cal.groups:
        summary["groups"] = {g: {k: v for k, v in c.items() if k != "domain"} for g, c in cal.groups.items()}
    if cal.slices:
        from collapseguard.detectors.mondrian import slice_rows

        summary["abstain_share"] = cal.slices["calibration_abstain_share"]
        summary["slices"] = slice_rows(cal.slices)
    summary["slice_notes"] = slice_notes
    click.echo(json.dumps(summary) if as_json else " ".join(f"{k}={v}" for k, v in summary.items()))


@detect.command("evaluate")
@click.option("--human", multiple=True, required=True, type=click.Path(), help="Human text (" + INPUT_HELP + "); repeatable.")
@click.option("--machine", multiple=True, required=True, type=click.Path(), help="Machine text; raw_data.json files default to `sampled`.")
@detector_options
@click.option("--calibration", type=click.Path(), help="Take thresholds from this calibration's human scores (a disjoint split).")
@click.option("--fpr", "fprs", type=float, multiple=True, default=(0.05, 0.01, 0.001), show_default=True, help="FPRs for TPR@FPR.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@ALLOW_OVERLAP
def evaluate_cmd(human, machine, detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device,
                 extra, column, fmt, combined, calibration, fprs, as_json, allow_overlap):
    """AUROC and TPR at fixed FPRs on labelled human and machine text, also per slice.

    \b
    Slices: length bucket and input file, plus domain and generator for detect-dev
    <domain>_<generator>.raw_data.json files.

    \b
    Example (detect-dev):
      collapseguard detect evaluate --human xsum_gpt2-xl.raw_data.json --machine xsum_gpt2-xl.raw_data.json \\
          --model runs/gen0 --json
    """
    import numpy as np

    from collapseguard.detectors.calibration import (
        check_matches,
        decide_with_reasons,
        decision_rates,
        load_calibration,
    )
    from collapseguard.detectors.detect_inputs import load_records
    from collapseguard.detectors.evaluation import evaluate_by
    from collapseguard.detectors.learned import training_overlap

    check_paths(human=human, machine=machine, model=model_dir, observer=observer_dir, combined=combined,
                calibration=calibration)
    check_rates(fprs)
    det = build(detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device, extra, combined)
    reference = None
    if calibration:
        cal = load_calibration(calibration)
        check_matches(cal, det, source=str(calibration))
        reference = cal.human_scores
    h_rec = require_records(load_records(human, column, fmt, raw_default="original"), human, "--human")
    m_rec = require_records(load_records(machine, column, fmt, raw_default="sampled"), machine, "--machine")
    h, m = [r.text for r in h_rec], [r.text for r in m_rec]
    overlap = training_overlap([det], h + m, "evaluation", allow_overlap)
    scores = score_with_progress(det, h + m)
    for name, part in (("human", scores[: len(h)]), ("machine", scores[len(h):])):
        if not np.isfinite(part).any():
            raise CollapseguardError(f"no {name} text was scored (all {len(part)} abstained); "
                                     "pass longer texts or lower --min-tokens")
    y = np.r_[np.zeros(len(h), bool), np.ones(len(m), bool)]
    rows = evaluate_by(scores, y, slice_labels(h_rec + m_rec), tuple(fprs), reference)
    warnings = drift_warnings(cal, h, None) if calibration else []  # the FPR promise is about the human texts
    emit_warnings(warnings)
    overall = rows[0]
    result = {"detector": det.name, "auroc": overall["auroc"], "tpr_at_fpr": overall["tpr_at_fpr"],
              "fpr_achieved": overall["fpr_achieved"], "thresholds": overall["thresholds"],
              "n_human": overall["n_human"], "n_machine": overall["n_machine"],
              "abstained_human": overall["abstained_human"], "abstained_machine": overall["abstained_machine"],
              "thresholds_from": "calibration" if reference is not None else "evaluated human scores",
              "drift_warnings": warnings, "overlap": overlap, "slices": rows[1:]}
    if calibration:  # the calibration's own decisions: per-slice thresholds and abstains when it has them
        decisions, _ = decide_with_reasons(scores, cal, h + m)
        result["calibrated"] = {"fpr_target": cal.fpr_target, "per_slice": bool(cal.slices),
                                **decision_rates(decisions, y)}
    if as_json:
        click.echo(json.dumps(_nan_to_null(result)))
        return
    click.echo(f"auroc={result['auroc']:.4f} n_human={len(h)} n_machine={len(m)}")
    if overlap and overlap["overlap"]:
        click.echo(f"overlap: {overlap['overlap']} of {overlap['texts']} texts share a source with the training text (allowed)")
    for f, tpr in result["tpr_at_fpr"].items():
        click.echo(f"tpr@fpr={f}: {tpr:.4f} (fpr achieved {result['fpr_achieved'][f]:.4f})")
    if "calibrated" in result:
        c = result["calibrated"]
        click.echo(f"calibration (fpr {c['fpr_target']:g}{', per slice' if c['per_slice'] else ''}): "
                   f"fpr {c['human']['fpr']} (abstain {c['human']['abstain_share']:.1%}), "
                   f"tpr {c['machine']['tpr']} (abstain {c['machine']['abstain_share']:.1%})")


@detect.command("combine")
@click.option("--human", multiple=True, required=True, type=click.Path(), help="Human text to fit on (" + INPUT_HELP + "); repeatable.")
@click.option("--machine", multiple=True, type=click.Path(), help="Machine text to fit on (needed by --method logistic).")
@detector_options
@click.option("--method", default="logistic", show_default=True, help="logistic (fit on labelled text) or fisher (human text only).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the fitted combined_v1 JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print the fit summary as JSON.")
@overwrite_option
def combine_cmd(human, machine, detector, model_dir, observer_dir, score_kind, min_tokens, stride, batch_size, device,
                extra, column, fmt, combined, method, out, as_json, overwrite):
    """Fit combined_v1: one score from all of a detector's signed scores (Gen-0: five or four).

    \b
    Fit, calibrate and evaluate on three disjoint splits; then pass --combined FILE to
    score, calibrate and evaluate with the same detector options. Example:
      collapseguard detect combine --human fit_h.jsonl --machine fit_m.jsonl --model runs/gen0 --out comb.json
      collapseguard detect calibrate --human cal_h.jsonl --model runs/gen0 --combined comb.json --fpr 0.01 --out cal.json
      collapseguard detect evaluate --human h.jsonl --machine m.jsonl --model runs/gen0 --combined comb.json --calibration cal.json
    """
    from collapseguard.detectors.combine import CombinedDetector, save_combined
    from collapseguard.detectors.detect_inputs import load_records

    if combined is not None:
        raise CollapseguardError("--combined applies a fit; `detect combine` makes one: drop --combined")
    if method == "logistic" and not machine:
        raise CollapseguardError("--method logistic needs labelled machine text: pass --machine FILE, or use --method fisher")
    reads = [*human, *machine, model_dir, observer_dir]
    check_paths(human=human, machine=machine, model=model_dir, observer=observer_dir)
    check_out_file(out, overwrite=overwrite, inputs=reads)
    det = CombinedDetector([build_member(detector, model_dir, observer_dir, score_kind, min_tokens, stride,
                                         batch_size, device, extra)], method)
    h = [r.text for r in require_records(load_records(human, column, fmt, raw_default="original"), human, "--human")]
    m = [r.text for r in require_records(load_records(machine, column, fmt, raw_default="sampled"), machine, "--machine")] if machine else []
    det.fit(h, m or None)
    save_combined(det, out)
    summary = {"detector": det.name, "method": method, "features": det.feature_names(), "n_human": len(h),
               "n_machine": len(m), "out": out}
    if method == "logistic":
        summary["coef"] = det.params["coef"]
    click.echo(json.dumps(summary) if as_json else " ".join(f"{k}={v}" for k, v in summary.items()))


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


@detect.command("train")
@click.option("--human", multiple=True, required=True, type=click.Path(), help="Human text to train on (" + INPUT_HELP + "); repeatable.")
@click.option("--machine", multiple=True, required=True, type=click.Path(), help="Machine text; raw_data.json files default to `sampled`.")
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
