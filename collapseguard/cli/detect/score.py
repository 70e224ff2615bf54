"""`collapseguard detect score`: score records, with decisions under a calibration."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import (
    GROUP_HELP,
    _clean,
    abstain_on_drift,
    all_score_columns,
    build,
    detector_options,
    drift_checks,
    emit_warnings,
    group_labels,
    score_with_progress,
)
from collapseguard.cli.options import overwrite_option
from collapseguard.cli.preflight import (
    check_out_file,
    check_paths,
    require_records,
    with_settings,
)


@detect.command("score")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@detector_options
@click.option("--calibration", type=click.Path(), help="Calibration JSON: adds a machine/human/abstain decision column.")
@click.option("--group-column", default=None, help=GROUP_HELP + " Needs a per-group calibration.")
@click.option("--on-drift", type=click.Choice(["abstain", "warn"]), default="abstain", show_default=True,
              help="With a calibration: when the texts (or a group) look unlike its human text, make every such "
                   "record abstain (the promised FPR has nothing to stand on there), or decide them with a warning.")
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
