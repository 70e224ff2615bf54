"""`collapseguard policy calibrate|check`: calibrate and inspect a guard policy."""

from __future__ import annotations

import json

import click

from collapseguard.cli.options import seed_option

POLICY_OPTION = click.option("--policy", "policy_file", type=click.Path(dir_okay=False), default=None,
                             help="Guard policy TOML (default: collapseguard.toml here).")


@click.group()
def policy() -> None:
    """The guard policy: one TOML file that scan, filter, curate and the hooks all read.

    \b
    Examples:
      collapseguard policy check --policy collapseguard.toml
      collapseguard policy calibrate --policy collapseguard.toml --human heldout/ --machine gens.jsonl \\
          --fpr 0.01 --out guard-calibration.json
    """


@policy.command("calibrate")
@POLICY_OPTION
@click.option("--human", multiple=True, required=True, help="Held-out human text (files; repeatable).")
@click.option("--machine", multiple=True, help="Labelled machine text, to measure TPR (files; repeatable).")
@click.option("--fpr", type=float, required=True, help="The promised false-positive rate of the union rule.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Calibration JSON to write.")
@click.option("--holdout", type=float, default=0.3, show_default=True, help="Share of human text held out to measure the FPR.")
@seed_option("Seed of the fit / held-out split.")
@click.option("--column", default=None, help="Text column of the human/machine files (default: the policy's).")
@click.option("--slices", "slice_mode", type=click.Choice(["auto", "length", "none"]), default="auto", show_default=True,
              help="Per-slice thresholds so the FPR holds on every slice: auto = style clusters x length bucket; "
                   "length = length buckets only; none = pooled. Records outside every calibrated slice "
                   "(too short, out of the support of the human and --machine texts) then abstain.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--allow-overlap", is_flag=True,
              help="Proceed when human/machine texts share a source with a learned_v1 detector's training text "
                   "(recorded in the calibration's notes); refused without it.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
def calibrate(policy_file, human, machine, fpr, out, holdout, seed, column, slice_mode, overwrite, allow_overlap,
              as_json):
    """Set every detector's threshold so that the union rule's FPR on held-out human text is at
    most --fpr; report it with its Clopper-Pearson interval, and TPRs with --machine. Name the
    written file in the policy as `calibration = "FILE"`.

    \b
    Examples:
      collapseguard policy calibrate --human heldout.jsonl --fpr 0.01 --out guard-calibration.json
      collapseguard policy calibrate --policy p.toml --human h/ --machine m/ --fpr 0.005 --out cal.json --json
    """
    from dataclasses import asdict

    from collapseguard.cli.preflight import check_paths
    from collapseguard.detectors.calibration import check_fpr
    from collapseguard.detectors.learned import training_overlap
    from collapseguard.scan.calibrate import calibrate_policy, save_policy_calibration
    from collapseguard.scan.policy import load_policy

    check_fpr(fpr)
    check_paths(human=human, machine=machine)
    pol = load_policy(policy_file)
    _check_out(out, overwrite, human + machine)
    human_texts = _texts(human, column or pol.text_column, pol.max_chars)
    machine_texts = _texts(machine, column or pol.text_column, pol.max_chars) if machine else None
    overlap = training_overlap(pol.build(), human_texts + (machine_texts or []), "calibration", allow_overlap)
    cal = calibrate_policy(pol, human_texts, fpr, machine_texts, holdout, seed, slices=slice_mode)
    if overlap and overlap["overlap"]:
        cal.notes.append(f"--allow-overlap: {overlap['overlap']} of {overlap['texts']} calibration texts share a "
                         "source with a learned_v1 detector's training text; the FPR and TPR may be inflated")
    save_policy_calibration(cal, out)
    if as_json:
        click.echo(json.dumps({**asdict(cal), "overlap": overlap}, indent=1))
        return
    f = cal.fpr()
    abstain = cal.abstain or {}
    click.echo(f"union FPR on {f.n:,} held-out human texts: {f.rate:.4f} (95% CI {f.ci95[0]:.4f}-{f.ci95[1]:.4f}; target {fpr}"
               f"{', per slice' if cal.slices else ''}); abstained {abstain.get('human_heldout', 0.0):.1%}")
    for d in cal.detectors:
        tpr = f", TPR {d['tpr']['rate']:.3f}" if d.get("tpr") and d["tpr"]["rate"] is not None else ""
        click.echo(f"  {d['column']}: threshold {d['threshold']:.4g}{' (fixed)' if d['fixed'] else ''}{tpr}")
    if cal.tpr() is not None and cal.tpr().rate is not None:
        t = cal.tpr()
        click.echo(f"union TPR on {t.n:,} machine texts: {t.rate:.3f} (95% CI {t.ci95[0]:.3f}-{t.ci95[1]:.3f}); "
                   f"abstained {abstain.get('machine', 0.0):.1%}")
    for note in cal.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out}; set calibration = \"{out}\" in the policy (relative to the policy file)")


def _check_out(out, overwrite, inputs) -> None:
    from collapseguard.io.outputs import check_output_file

    check_output_file(out, overwrite=overwrite, inputs=inputs)


def _texts(paths, column: str, max_chars: int) -> list[str]:
    """Readable texts of files/folders (detect-dev *.raw_data.json too); unreadable records are skipped."""
    from collapseguard.detectors.detect_inputs import is_raw_data_json, load_records
    from collapseguard.io.shards import discover, iter_chunks
    from collapseguard.scan.policy import screen_texts

    texts = []
    for p in paths:
        if is_raw_data_json(p):
            texts += [r.text for r in load_records([p], column if column in ("original", "sampled") else None)]
            continue
        for shard in discover([p]):
            for chunk in iter_chunks(shard, column, 4096, text_only=True):
                screened, _ = screen_texts(chunk.texts, max_chars)
                texts += [t for t in screened if t is not None]
    return texts


@policy.command("check")
@POLICY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the resolved policy as JSON.")
def check(policy_file, as_json):
    """Validate a policy: parse it, build every detector, check the calibration matches them,
    and print the resolved configuration (secrets never shown).

    \b
    Examples:
      collapseguard policy check
      collapseguard policy check --policy guard/collapseguard.toml --json
    """
    from collapseguard.scan.calibrate import calibration_hash, load_policy_calibration
    from collapseguard.scan.policy import load_policy

    pol = load_policy(policy_file)
    cal = load_policy_calibration(pol)
    resolved = {
        "policy": pol.source, "fingerprint": pol.fingerprint(), "text_column": pol.text_column,
        "calibration": pol.calibration, "calibration_hash": calibration_hash(pol.calibration_path) if pol.calibration else None,
        "fpr_target": None if cal.fpr_target != cal.fpr_target else cal.fpr_target,
        "max_synthetic_share": pol.max_synthetic_share,
        "trusted_keys": [str(p) for p in pol.trusted_key_paths],
        "detectors": [{**ident, "threshold": t} for ident, t in zip(pol.identities(), cal.thresholds())],
    }
    if as_json:
        click.echo(json.dumps(resolved, indent=1, default=str))
        return
    click.echo(f"{pol.source}: ok (fingerprint {resolved['fingerprint'][:16]})")
    click.echo(f"  text column: {pol.text_column}; limit: {pol.max_synthetic_share}; calibration: {pol.calibration or 'none (fixed thresholds)'}")
    for d in resolved["detectors"]:
        click.echo(f"  {d['column']}: threshold {d['threshold']:.4g}")
