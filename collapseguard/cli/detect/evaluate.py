"""`collapseguard detect evaluate`: AUROC, TPR at FPR and calibration figures on labelled text."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import (
    ALLOW_OVERLAP,
    _nan_to_null,
    build,
    detector_options,
    drift_warnings,
    emit_warnings,
    labelled_text_options,
    score_with_progress,
    slice_labels,
)
from collapseguard.cli.preflight import (
    check_paths,
    check_rates,
    require_records,
)
from collapseguard.errors import CollapseguardError


@detect.command("evaluate")
@labelled_text_options("Human text")
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
