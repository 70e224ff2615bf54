"""`collapseguard detect combine`: fit combined_v1, one score from all of a detector's signed scores."""

from __future__ import annotations

import json

import click

from collapseguard.cli.detect import detect
from collapseguard.cli.detect.common import (
    INPUT_HELP,
    build_member,
    detector_options,
)
from collapseguard.cli.options import overwrite_option
from collapseguard.cli.preflight import (
    check_out_file,
    check_paths,
    require_records,
)
from collapseguard.errors import CollapseguardError


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
