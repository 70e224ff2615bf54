"""The guard policy: one TOML file naming the detectors, the calibration, the text column and the
synthetic-share limit; scan, filter, curate and the pre-commit hooks all read it.

```toml
text_column = "text"
calibration = "guard-calibration.json"     # from `collapseguard policy calibrate`
max_synthetic_share = 0.05                 # the hooks' limit
on_drift = "abstain"                       # the default: text unlike the calibration's is not decided ("warn": decide, warn)
[[detectors]]
name = "minhash_v1"
threshold = 0.8                            # optional: a fixed threshold instead of a calibrated one
options = { ledger = "gens.ledger" }
[[detectors]]
name = "kgw_v1"                            # key from COLLAPSEGUARD_WATERMARK_KEY
options = { tokenizer_dir = "gen0" }
```

Paths are relative to the policy file. Secrets (watermark keys) come only from the environment.
Decision rule: a record is ``synthetic`` when any detector's score is above its threshold (the
``reason`` names every detector that fired), ``abstain`` when every detector abstained, the
record could not be read, or (with a per-slice calibration) it lies outside every calibrated
slice -- too short, or out of the support of the calibration's human text -- else ``human``.
With ``on_drift = "abstain"`` (the default), every record of a scan whose text the drift test finds
unlike the calibration's human text abstains (the FPR promise has nothing to stand on there);
``"warn"`` decides those records anyway and says the FPR may not hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.shapes import is_number
from collapseguard.io.shards import Unreadable
from collapseguard.scan.prevalence import parse_prevalence

DEFAULT_POLICY = "collapseguard.toml"
DETECTORS = ("minhash_v1", "kgw_v1", "synthid_v1", "gen0_ppl_v1", "combined_v1", "learned_v1")
PATH_OPTIONS = ("ledger", "ledger_dir", "model_dir", "tokenizer_dir", "observer_dir", "combined")
SECRET_OPTIONS = ("hashing_key", "keys", "key")
KGW_KEY_ENV = "COLLAPSEGUARD_WATERMARK_KEY"
SYNTHETIC, HUMAN, ABSTAIN = "synthetic", "human", "abstain"
TOP_KEYS = {"text_column", "calibration", "max_synthetic_share", "detectors", "batch_size", "max_chars",
            "trusted_keys", "prevalence", "on_drift"}
ON_DRIFT = ("warn", "abstain")


@dataclass
class DetectorSpec:
    """One `[[detectors]]` table: a registry name, its options, and an optional fixed threshold."""

    name: str
    options: dict = field(default_factory=dict)
    threshold: float | None = None


@dataclass
class GuardPolicy:
    """A parsed policy; `root` is the policy file's folder (paths inside it are relative to it)."""

    detectors: list[DetectorSpec]
    text_column: str = "text"
    calibration: str | None = None
    max_synthetic_share: float | None = None
    batch_size: int = 512
    max_chars: int = 1_000_000
    trusted_keys: list[str] | None = None
    prevalence: object = None  # scan.prevalence.PrevalenceSpec, from the [prevalence] table
    on_drift: str = "abstain"  # a scan the drift test flags abstains on every record; "warn": decide, with a warning
    root: Path = field(default_factory=Path.cwd)
    source: str = "<policy>"
    _built: list | None = field(default=None, repr=False, compare=False)
    _calibration: object = field(default=None, repr=False, compare=False)

    @property
    def calibration_path(self) -> Path | None:
        return None if self.calibration is None else self.root / self.calibration

    @property
    def trusted_key_paths(self) -> list[Path]:
        """The listed public keys, else every `*.pub` under `.collapseguard/keys/` beside the policy."""
        if self.trusted_keys is not None:
            return [self.root / p for p in self.trusted_keys]
        return sorted((self.root / ".collapseguard" / "keys").glob("*.pub"))

    def column_names(self) -> list[str]:
        """One score column per detector, named by its versioned name (`_2` etc. for repeats)."""
        names, seen = [], {}
        for spec in self.detectors:
            seen[spec.name] = seen.get(spec.name, 0) + 1
            names.append(spec.name if seen[spec.name] == 1 else f"{spec.name}_{seen[spec.name]}")
        return names

    def build(self) -> list:
        """The detectors, built once (models and ledgers load here)."""
        if self._built is None:
            self._built = [build_spec(spec, self.root, self.source) for spec in self.detectors]
        return self._built

    def identities(self) -> list[dict]:
        """Per detector: name, column and a machine-independent identity (paths relative to the policy)."""
        from collapseguard.detectors.calibration import detector_identity

        return [{"name": spec.name, "column": col, "identity": portable(detector_identity(det), self.root)}
                for spec, col, det in zip(self.detectors, self.column_names(), self.build())]

    def fingerprint(self) -> str:
        """sha256 of what decides a record: detectors, their identities, text column, limits."""
        blob = {"detectors": self.identities(), "text_column": self.text_column, "max_chars": self.max_chars,
                "fixed_thresholds": [s.threshold for s in self.detectors]}
        if self.on_drift != "abstain":  # absent at the default (a scan's key then holds the drift verdict)
            blob["on_drift"] = self.on_drift
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def score(self, texts: list[str]) -> np.ndarray:
        """Scores (len(texts), detectors); NaN = that detector abstained."""
        out = np.full((len(texts), len(self.detectors)), np.nan)
        if texts:
            for j, det in enumerate(self.build()):
                out[:, j] = np.asarray(det.score(list(texts)), dtype=float)
        return out

    def map_batches(self, batch: dict, calibration=None) -> dict:
        """For `datasets.Dataset.map(batched=True)`: the batch plus score, `decision`, `reason` columns."""
        from collapseguard.scan.calibrate import load_policy_calibration

        if calibration is None:
            if self._calibration is None:
                self._calibration = load_policy_calibration(self)
            calibration = self._calibration
        if self.text_column not in batch:
            raise CollapseguardError(f"batch has no column {self.text_column!r} (has: {', '.join(batch)}); "
                                     "set text_column in the policy")
        texts, unreadable = screen_texts(batch[self.text_column], self.max_chars)
        scores = self.score_screened(texts, unreadable)
        decision, reason, _ = decide_records(scores, calibration, texts, self.column_names(), unreadable)
        out = dict(batch)
        for j, col in enumerate(self.column_names()):
            out[col] = scores[:, j].tolist()
        out["decision"], out["reason"] = decision, reason
        return out

    def score_screened(self, texts: list[str | None], unreadable: list[str | None]) -> np.ndarray:
        """Scores for readable records only; unreadable ones stay NaN."""
        keep = [i for i, r in enumerate(unreadable) if r is None]
        scores = np.full((len(texts), len(self.detectors)), np.nan)
        if keep:
            scores[keep] = self.score([texts[i] for i in keep])
        return scores


def screen_texts(values, max_chars: int) -> tuple[list[str | None], list[str | None]]:
    """Texts ready to score, and per record the reason it cannot be (None = fine)."""
    texts, reasons = [], []
    for v in values:
        if isinstance(v, Unreadable):
            texts.append(None), reasons.append(str(v))
        elif v is None:
            texts.append(None), reasons.append("empty (null)")
        elif not isinstance(v, str):
            texts.append(None), reasons.append(f"not text ({type(v).__name__})")
        elif len(v) > max_chars:
            texts.append(None), reasons.append(f"too long ({len(v)} chars > max_chars {max_chars})")
        else:
            texts.append(v), reasons.append(None)
    return texts, reasons


def decide_records(scores: np.ndarray, calibration, texts: list, names: list[str],
                   unreadable: list[str | None], drift_reason: str | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """`decide` with the calibration's per-record thresholds (per slice when it has slices): the
    decisions, reasons, and the (n, detectors) thresholds used (NaN rows: outside every slice, or
    every row when `drift_reason` says the scan's text is unlike the calibration's)."""
    if drift_reason:  # no slice to look up: every record abstains
        thresholds, outside = np.full((len(texts), len(names)), np.nan), [drift_reason] * len(texts)
    else:
        thresholds, outside = calibration.record_thresholds(texts)
    reasons = [u if u is not None else (o or None) for u, o in zip(unreadable, outside, strict=True)]
    decision, reason = decide(scores, thresholds, names, reasons)
    return decision, reason, thresholds


def decide(scores: np.ndarray, thresholds, names: list[str],
           unreadable: list[str | None] | None = None) -> tuple[list[str], list[str]]:
    """The union rule: per record a decision and the reason (detectors that fired, or why it abstained).

    `thresholds`: one per detector, or one row per record; `unreadable`: per record a reason to
    abstain (unreadable, outside every calibrated slice) or None."""
    n = scores.shape[0]
    unreadable = unreadable or [None] * n
    with np.errstate(invalid="ignore"):
        fired = scores > np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape)
    scored = ~np.isnan(scores)
    decisions, reasons = [], []
    for i in range(n):
        if unreadable[i] is not None:
            decisions.append(ABSTAIN), reasons.append(unreadable[i])
        elif fired[i].any():
            decisions.append(SYNTHETIC), reasons.append(",".join(nm for nm, f in zip(names, fired[i]) if f))
        elif scored[i].any():
            decisions.append(HUMAN), reasons.append("")
        else:
            decisions.append(ABSTAIN), reasons.append("every detector abstained")
    return decisions, reasons


def portable(obj, root: Path):
    """`obj` with absolute paths under `root` made relative, so a fingerprint holds across clones."""
    prefix = str(root.resolve()) + os.sep
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str) and obj.startswith(prefix):
        return obj[len(prefix):]
    return obj


def build_spec(spec: DetectorSpec, root: Path, source: str):
    """A detector from its spec: paths resolved against `root`, keys from the environment."""
    from collapseguard.detectors.registry import build_detector

    options = resolve_paths(spec.options, root)
    if "ledger" in options:
        options["ledger_dir"] = options.pop("ledger")
    if spec.name == "kgw_v1" and os.environ.get(KGW_KEY_ENV):
        try:
            options["hashing_key"] = int(os.environ[KGW_KEY_ENV].strip())
        except ValueError:
            raise CollapseguardError(f"{KGW_KEY_ENV}: not an integer (value not shown: it is secret)") from None
    if spec.name == "combined_v1":
        return build_combined(options, source)
    return build_detector(spec.name, options)


def build_combined(options: dict, source: str):
    """combined_v1: `combined` (the fit from `detect combine`) over the member `detector` with the rest."""
    from collapseguard.detectors.combine import load_combined
    from collapseguard.detectors.registry import build_detector

    fit = options.pop("combined", None)
    member = options.pop("detector", "gen0_ppl_v1")
    if fit is None:
        raise CollapseguardError(f"{source}: combined_v1 needs options.combined = \"FIT.json\" (from `collapseguard detect combine`)")
    return load_combined(fit, [build_detector(member, options)])


def resolve_paths(options: dict, root: Path) -> dict:
    out = dict(options)
    for key in PATH_OPTIONS:
        if isinstance(out.get(key), str):
            out[key] = str((root / out[key]).resolve())
    return out


def load_policy(path: str | Path | None = None) -> GuardPolicy:
    """Read and check a policy file (default `collapseguard.toml` in the current folder)."""
    path = Path(path or DEFAULT_POLICY)
    if not path.is_file():
        raise CollapseguardError(f"{path}: no such policy file; write one (see `collapseguard policy check --help`) or pass --policy FILE")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CollapseguardError(f"{path}: not valid TOML ({exc}); fix the file") from None
    return parse_policy(raw, path.resolve().parent, str(path))


def parse_policy(raw: dict, root: Path, source: str) -> GuardPolicy:
    """A GuardPolicy from a parsed TOML document, every field checked with its name."""
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise CollapseguardError(f"{source}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_KEYS))}")
    tables = raw.get("detectors")
    if not isinstance(tables, list) or not tables:
        raise CollapseguardError(f"{source}: no detectors; add at least one [[detectors]] table with a name")
    policy = GuardPolicy(
        detectors=[parse_spec(t, i, source) for i, t in enumerate(tables)],
        text_column=_typed(raw, "text_column", str, "text", source),
        calibration=_typed(raw, "calibration", str, None, source),
        max_synthetic_share=_share(raw.get("max_synthetic_share"), source),
        batch_size=_positive(raw, "batch_size", 512, source),
        max_chars=_positive(raw, "max_chars", 1_000_000, source),
        trusted_keys=_key_list(raw, source),
        prevalence=parse_prevalence(raw.get("prevalence"), source),
        on_drift=_typed(raw, "on_drift", str, "abstain", source),
        root=root, source=source,
    )
    check_choice(f"{source}: on_drift", policy.on_drift, ON_DRIFT)
    return policy


def parse_spec(table, i: int, source: str) -> DetectorSpec:
    where = f"{source}: detectors[{i}]"
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise CollapseguardError(f"{where}: needs name = \"minhash_v1\" (or {', '.join(DETECTORS[1:])})")
    extra = sorted(set(table) - {"name", "options", "threshold"})
    if extra:
        raise CollapseguardError(f"{where}: unknown key(s) {', '.join(extra)}; valid: name, options, threshold")
    try:
        check_choice("detector", table["name"], DETECTORS)
    except CollapseguardError as exc:
        raise CollapseguardError(f"{where}: {exc}") from None
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise CollapseguardError(f"{where}: options must be a table, e.g. options = {{ ledger = \"gens.ledger\" }}")
    secret = sorted(set(options) & set(SECRET_OPTIONS))
    if secret:
        raise CollapseguardError(f"{where}: {', '.join(secret)} must not be in the policy file; secrets come from the "
                                 f"environment ({KGW_KEY_ENV} for kgw_v1, COLLAPSEGUARD_SYNTHID_KEYS for synthid_v1)")
    threshold = table.get("threshold")
    if threshold is not None and not is_number(threshold):
        raise CollapseguardError(f"{where}: threshold must be a number (not NaN), got {threshold!r}")
    return DetectorSpec(table["name"], dict(options), None if threshold is None else float(threshold))


def _typed(raw: dict, key: str, kind, default, source: str):
    value = raw.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise CollapseguardError(f"{source}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _key_list(raw: dict, source: str) -> list[str] | None:
    keys = _typed(raw, "trusted_keys", list, None, source)
    if keys is not None and not all(isinstance(k, str) and k for k in keys):
        raise CollapseguardError(f"{source}: trusted_keys must list public key files as strings, got {keys!r}; "
                                 "e.g. trusted_keys = [\".collapseguard/keys/ci.pub\"]")
    return keys


def _positive(raw: dict, key: str, default: int, source: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CollapseguardError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def _share(value, source: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise CollapseguardError(f"{source}: max_synthetic_share must be a number in [0, 1], got {value!r}")
    return float(value)
