"""Checks a command runs before it loads a model or reads data, so a typo costs nothing and
writes nothing: inputs exist, rates lie in (0, 1), the output may be written (io.outputs)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from collapseguard.errors import CollapseguardError

SETTINGS_KEY = b"collapseguard"


def check_exists(paths: Iterable, flag: str = "INPUT") -> None:
    """Refuse the first path in `paths` (None skipped) that does not exist, naming its option."""
    for p in paths:
        if p is not None and not str(p).strip():
            raise CollapseguardError(f"an empty path {str(p)!r} ({flag}); pass a file or folder, or leave the option out")
        if p is not None and not Path(p).exists():
            kind = "not a model directory (no such path)" if flag in ("--model", "--observer") else "no such file or directory"
            raise CollapseguardError(f"{p}: {kind} ({flag}); check the path")


def check_paths(**flags) -> None:
    """check_exists for each option: check_paths(INPUT=inputs, model=model_dir, ...); a single
    path or a list per option; option names are written as --name."""
    for name, value in flags.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        check_exists(values, name if name.isupper() else "--" + name.replace("_", "-"))


def check_rates(rates: Iterable[float], flag: str = "--fpr") -> None:
    """Refuse a rate outside the open interval (0, 1) (NaN included)."""
    for r in rates:
        if not 0.0 < r < 1.0:
            raise CollapseguardError(f"{flag} {r}: must lie strictly between 0 and 1, e.g. {flag} 0.01")


def require_records(records: list, paths, flag: str = "INPUT") -> list:
    """`records`, or one line saying the inputs hold no text records (never a silent empty result)."""
    if not records:
        names = ", ".join(str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths))
        raise CollapseguardError(f"{names}: no text records ({flag}); pass files holding at least one record")
    return records


def parquet_settings(path: Path) -> dict | None:
    """The command and settings a parquet output recorded in its schema metadata, if any."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[SETTINGS_KEY])
    except Exception:  # not parquet, no metadata, not ours: not recognised
        return None


def with_settings(table, command: str, settings: dict):
    """`table` with the command and settings that wrote it in its schema metadata."""
    blob = json.dumps({"command": command, "settings": settings}, sort_keys=True, default=str)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), SETTINGS_KEY: blob.encode()})


def check_out_file(out, *, overwrite: bool, inputs: Iterable = (), command: str | None = None,
                   settings: dict | None = None):
    """io.outputs.check_output_file for `out` (None: nothing to check); a parquet file this
    command wrote with the same `settings` counts as its own (a rerun replaces it)."""
    from collapseguard.io.outputs import check_output_file

    if out is None:
        return None
    record = json.loads(json.dumps({"command": command, "settings": settings}, sort_keys=True, default=str))
    ours = (lambda p: parquet_settings(p) == record) if command is not None else None
    return check_output_file(out, overwrite=overwrite, inputs=[p for p in inputs if p is not None], ours=ours)


def previous_calibration(out, *, overwrite: bool, fpr: float, inputs: Iterable = ()):
    """For `detect calibrate --out`: None when `out` may simply be written; the calibration it
    holds when it may be replaced only by the same calibration (see `check_same_calibration`);
    else the refusal of io.outputs.check_output_file."""
    from collapseguard.detectors.calibration import load_calibration

    check_out_file(out, overwrite=True, inputs=inputs)  # inputs and folders, whatever --overwrite says
    if overwrite or not Path(out).exists():
        return None
    try:
        old = load_calibration(out)
    except CollapseguardError:
        old = None
    if old is None or old.fpr_target != fpr:
        check_out_file(out, overwrite=False)  # not a calibration, or another --fpr: refused now
    return old


def check_same_calibration(old, new, out) -> None:
    """Refuse to replace calibration `old` unless `new` was made by the same detector (fingerprint),
    on the same texts, at the same FPR, with the same groups: a rerun."""
    same = (old.fingerprint, old.texts_sha256, old.fpr_target, sorted(old.groups or {})) == \
           (new.fingerprint, new.texts_sha256, new.fpr_target, sorted(new.groups or {}))
    if not same:
        raise CollapseguardError(f"{out}: already holds a calibration made with another detector, texts or groups; "
                                 "pass --overwrite to replace it, or choose another output file")
