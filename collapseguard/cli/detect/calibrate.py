"""`collapseguard detect calibrate`: a threshold (per slice, per group) from held-out human text."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import (
    ALLOW_OVERLAP,
    GROUP_HELP,
    INPUT_HELP,
    build,
    detector_options,
    emit_warnings,
    group_labels,
    score_with_progress,
)
from collapseguard.cli.options import overwrite_option
from collapseguard.cli.preflight import (
    check_paths,
    check_rates,
    check_same_calibration,
    previous_calibration,
    require_records,
)
from collapseguard.errors import CollapseguardError


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
