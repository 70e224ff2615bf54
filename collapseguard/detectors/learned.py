"""`learned_v1`: a supervised detector trained on the user's labelled human and machine text.

Features (any subset, in this order; all computed on whitespace-normalised text):
- ``gen0``: the Gen-0 model's four signed scores (Fast-DetectGPT, log-prob, log-rank, entropy);
- ``embeddings``: mean-pooled all-MiniLM-L6-v2 sentence embeddings (the ``embeddings`` extra);
- ``static``: static embeddings distilled from that model (`collapseguard.detectors.static_embeddings`:
  one vector per vocabulary token, a Zipf-weighted mean per text), ~190x faster to score, no torch;
- ``style``: stylometric features (`collapseguard.detectors.style`).
Model classes: ``logistic`` (L2 logistic regression on standardised features), ``gbm``
(gradient-boosted depth-3 trees), ``mlp`` (one hidden ReLU layer); each class's regularisation
(and with ``auto`` the class) is chosen by cross-validation over folds that never split a source
group of the training texts (`grouped_cv`). The defaults, ``mlp`` on ``static,style``, were
chosen on detect-dev and detect-dev-gpt3to4 with folds that keep every source article on one
side -- unseen generators, unseen domains and fresh articles together, never one split
(`benchmarks/eval_detect_dev.py`, BENCHMARKS.md): there they reach AUROC ~0.82 on fresh
articles and ~0.77 on unseen generators, as good as ``embeddings,style`` (MiniLM itself) at
~190x its speed on one CPU core (`benchmarks/bench_learned.py`). Scores are the model's
log-odds of "machine"; a text abstains (NaN) when any of its features does.

A detector folder holds ``learned.json`` (features, model class and regularisation, the
grouped-CV figures, feature names, the Gen-0 and embedding models' weight digests, training
counts), ``sources.npz`` (the training texts' `SourceRecord`, checked by calibrate and
evaluate), with ``static`` the token table (``static.npz``, its sha256 in learned.json), and
``model.npz`` (standardisation and the model as plain arrays: coefficients, tree node tables,
layer weights). Nothing is pickled;
the fingerprint carries the sha256 of the model files, so a retrained folder needs a new calibration.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapseguard.detectors.base import Detector
from collapseguard.errors import CollapseguardError
from collapseguard.io.shapes import ListOf, MapOf, Optional, check_shape, is_version

FEATURE_SETS = ("gen0", "embeddings", "static", "style")
MODEL_CLASSES = ("logistic", "gbm", "mlp")
# Each class's regularisation setting, the grid grouped cross-validation chooses it from, and
# the value used without selection: logistic C (smaller = stronger), mlp L2 alpha (larger =
# stronger), gbm number of trees (fewer = stronger).
STRENGTH = {"logistic": "C", "mlp": "alpha", "gbm": "n_estimators"}
STRENGTH_GRID = {"logistic": (0.01, 0.1, 1.0), "mlp": (1e-3, 1e-2, 1e-1), "gbm": (100, 200, 400)}
DEFAULT_STRENGTH = {"logistic": 0.1, "mlp": 1e-2, "gbm": 200}
CV_FOLDS = 5
CV_FPR = 0.01
FORMAT_VERSION = 1
META_FILE, ARRAYS_FILE = "learned.json", "model.npz"
GEN0_MAX_TEXT_TOKENS = 160  # the detect-dev recipe: Gen-0 scores the first 160 tokens


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace (line breaks included) -> one space.

    Layout is not authorship, and it leaks labels: in detect-dev the human texts have their
    line breaks removed and the machine texts keep them, so line breaks alone give AUROC 0.96
    there; a detector that learned that would flag every human text with paragraphs.
    """
    return " ".join(text.split())


def parse_features(spec) -> tuple[str, ...]:
    """'gen0,style' or a sequence -> the feature sets in canonical order; refuses unknown names."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    unknown = sorted(set(names) - set(FEATURE_SETS))
    if unknown or not names:
        raise CollapseguardError(f"unknown feature set(s) {', '.join(unknown) or '(none)'}; choose from "
                                 f"{','.join(FEATURE_SETS)}, e.g. --features static,style")
    return tuple(f for f in FEATURE_SETS if f in names)


# --- features ----------------------------------------------------------------------------------
class FeatureExtractor:
    """Turns texts into the feature matrix of the chosen sets (models load on first use)."""

    def __init__(self, features, gen0_dir: str | None = None, embed_dir: str | None = None, device: str = "cpu"):
        self.features = parse_features(features)
        if "gen0" in self.features and not gen0_dir:
            raise CollapseguardError("the gen0 features need a Gen-0 model: pass --gen0 DIR (from `collapseguard gen0 train`)")
        self.gen0_dir, self.embed_dir, self.device = gen0_dir, embed_dir, device
        self._gen0 = self._embedder = self._static = None

    def gen0(self):
        if self._gen0 is None:
            from collapseguard.detectors.lm.perplexity import (
                Gen0PerplexityDetector,
                PerplexityConfig,
            )

            self._gen0 = Gen0PerplexityDetector(PerplexityConfig(
                model_dir=str(self.gen0_dir), min_tokens=16, max_text_tokens=GEN0_MAX_TEXT_TOKENS, device=self.device))
        return self._gen0

    def embedder(self):
        if self._embedder is None:
            from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

            self._embedder = SentenceEmbedder(self.embed_dir, device=self.device)
        return self._embedder

    def static_embedder(self):
        """The static token table: the one a trained folder holds, else distilled from the sentence model."""
        if self._static is None:
            from collapseguard.detectors.static_embeddings import StaticEmbedder

            self._static = StaticEmbedder.distil(self.embed_dir, device=self.device)
        return self._static

    def names(self) -> list[str]:
        """One name per column of `matrix`."""
        from collapseguard.detectors.style import FEATURE_NAMES

        out = []
        if "gen0" in self.features:
            out += [f"gen0.{k}" for k in ("fast_detectgpt", "log_prob", "log_rank", "entropy")]
        if "embeddings" in self.features:
            out += [f"emb.{i}" for i in range(self.embedder().dim)]
        if "static" in self.features:
            out += [f"static.{i}" for i in range(self.static_embedder().dim)]
        if "style" in self.features:
            out += [f"style.{k}" for k in FEATURE_NAMES]
        return out

    def blocks(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Feature set -> (n, k) matrix, computed once per set, on whitespace-normalised text."""
        from collapseguard.detectors.style import style_features

        texts = [normalise_whitespace(t) for t in texts]
        out = {}
        if "gen0" in self.features:
            out["gen0"] = self.gen0().features(texts)[:, :4]
        if "embeddings" in self.features:
            out["embeddings"] = self.embedder().encode(texts).astype(np.float64)
        if "static" in self.features:
            out["static"] = self.static_embedder().encode(texts).astype(np.float64)
        if "style" in self.features:
            out["style"] = style_features(texts)
        return out

    def matrix(self, texts: list[str]) -> np.ndarray:
        blocks = self.blocks(list(texts))
        return np.column_stack([blocks[f] for f in self.features])

    def digests(self) -> dict:
        """Weight digests of the models the features depend on (a retrained model changes them); the
        static table lives in the trained folder and is checked against learned.json instead."""
        from collapseguard.detectors.lm.perplexity import weights_digest

        out = {}
        if "gen0" in self.features:
            out["gen0_sha256"] = weights_digest(self.gen0_dir)
        if "embeddings" in self.features:
            out["embeddings_sha256"] = weights_digest(self.embedder().path)
        return out


# --- models as plain arrays ---------------------------------------------------------------------
def standardiser(x: np.ndarray) -> dict:
    """Per-column mean and std (std 1 where a column is constant)."""
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    return {"mean": mean, "std": std}


def fit_classifier(z: np.ndarray, y: np.ndarray, model: str, seed: int = 0, strength: float | None = None):
    """The scikit-learn classifier of class `model` fitted on standardised features z (n, k).

    `strength` is the class's regularisation setting (`STRENGTH`; default `DEFAULT_STRENGTH`)."""
    if model not in MODEL_CLASSES:
        raise CollapseguardError(f"unknown model class {model!r}; choose from {', '.join(MODEL_CLASSES)}")
    value = DEFAULT_STRENGTH[model] if strength is None else strength
    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=float(value), max_iter=3000).fit(z, y)
    if model == "mlp":
        # No early stopping: its validation rows would be drawn at random, beside their article's
        # other versions. It stops when the training loss does.
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(hidden_layer_sizes=(64,), alpha=float(value), max_iter=400, random_state=seed).fit(z, y)
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=int(value), max_depth=3, learning_rate=0.1, subsample=0.8,
                                      max_features="sqrt", random_state=seed).fit(z, y)


def export_classifier(clf, model: str) -> dict:
    """A fitted classifier's parameters as plain arrays (what `decision` needs)."""
    if model == "logistic":
        return {"coef": clf.coef_[0].astype(np.float64), "intercept": np.float64(clf.intercept_[0])}
    if model == "mlp":
        return {"w0": clf.coefs_[0], "b0": clf.intercepts_[0], "w1": clf.coefs_[1][:, 0],
                "b1": np.float64(clf.intercepts_[1][0])}
    return trees_to_arrays(clf)


def fit_model(x: np.ndarray, y: np.ndarray, model: str, seed: int = 0, strength: float | None = None) -> dict:
    """Standardise x (n, k), fit `model` on y in {0, 1}; return every parameter as arrays."""
    params = standardiser(x)
    clf = fit_classifier((x - params["mean"]) / params["std"], y, model, seed, strength)
    return {**params, **export_classifier(clf, model)}


def trees_to_arrays(clf) -> dict:
    """A fitted binary GradientBoostingClassifier as node tables (all trees concatenated)."""
    trees = [est[0].tree_ for est in clf.estimators_]
    offsets = np.cumsum([0] + [t.node_count for t in trees])
    left = np.concatenate([np.where(t.children_left >= 0, t.children_left + o, -1) for t, o in zip(trees, offsets)])
    right = np.concatenate([np.where(t.children_right >= 0, t.children_right + o, -1) for t, o in zip(trees, offsets)])
    prior = clf.init_.class_prior_[1]
    return {
        "tree_roots": offsets[:-1].astype(np.int64), "tree_left": left.astype(np.int64),
        "tree_right": right.astype(np.int64),
        "tree_feature": np.concatenate([t.feature for t in trees]).astype(np.int64),
        "tree_threshold": np.concatenate([t.threshold for t in trees]),
        "tree_value": np.concatenate([t.value[:, 0, 0] for t in trees]),
        "learning_rate": np.float64(clf.learning_rate), "init_log_odds": np.float64(np.log(prior / (1 - prior))),
    }


def trees_decision(z: np.ndarray, p: dict) -> np.ndarray:
    """Log-odds of the stored trees (sklearn compares float32 features with `<=` thresholds)."""
    z32 = z.astype(np.float32)
    rows = np.arange(len(z))
    total = np.full(len(z), float(p["init_log_odds"]))
    left, right, feat, thr = p["tree_left"], p["tree_right"], p["tree_feature"], p["tree_threshold"]
    for root in p["tree_roots"]:
        node = np.full(len(z), root)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = z32[rows, np.where(inner, feat[node], 0)] <= thr[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += float(p["learning_rate"]) * p["tree_value"][node]
    return total


def decision(x: np.ndarray, p: dict, model: str) -> np.ndarray:
    """Log-odds of "machine" (n,) for features x (n, k); NaN rows give NaN."""
    x = np.asarray(x, dtype=np.float64)
    bad = np.isnan(x).any(axis=1)
    z = (np.where(np.isnan(x), 0.0, x) - p["mean"]) / p["std"]
    if model == "logistic":
        out = z @ p["coef"] + float(p["intercept"])
    elif model == "mlp":
        out = np.maximum(z @ p["w0"] + p["b0"], 0.0) @ p["w1"] + float(p["b1"])
    else:
        out = trees_decision(z, p)
    return np.where(bad, np.nan, out)


# --- the detector --------------------------------------------------------------------------------
@dataclass
class LearnedConfig:
    """model_dir: a folder `collapseguard detect train` wrote; gen0_dir: override the Gen-0 path
    it recorded (the weights must match); device: cpu | cuda for the feature models."""

    model_dir: str
    gen0_dir: str | None = None
    device: str = "cpu"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_arrays(path: Path) -> dict:
    """The arrays of a model.npz (no pickles); a corrupt file is one line naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError, OSError ... for a corrupt file
        raise CollapseguardError(f"{path}: not a readable model.npz ({type(exc).__name__}: {str(exc)[:100]}); "
                                 "retrain with `collapseguard detect train`") from None


class LearnedDetector(Detector):
    """Scores texts with a trained `learned_v1` folder (higher = more machine; NaN = abstain)."""

    name = "learned_v1"

    def __init__(self, config: LearnedConfig):
        self.config = config
        folder = Path(config.model_dir)
        meta_path, arrays_path = folder / META_FILE, folder / ARRAYS_FILE
        if not meta_path.is_file() or not arrays_path.is_file():
            raise CollapseguardError(f"{folder}: not a learned_v1 folder (needs {META_FILE} and {ARRAYS_FILE}); "
                                     "make one with `collapseguard detect train`")
        from collapseguard.io.readers import read_json_file

        self.meta = read_json_file(meta_path, "learned_v1 metadata", "retrain with `collapseguard detect train`")
        if not isinstance(self.meta, dict) or not is_version(self.meta.get("collapseguard_learned"), FORMAT_VERSION):
            raise CollapseguardError(f"{meta_path}: not a learned_v1 file (format {FORMAT_VERSION}); retrain")
        self.params = load_arrays(arrays_path)
        fix = "retrain with `collapseguard detect train`"
        check_shape(self.meta, {"features": ListOf(str), "model": str, "feature_names": ListOf(str),
                                "digests": MapOf(str), "gen0_dir": Optional(str)}, meta_path, fix)
        try:  # the arrays must fit the model class and the number of features
            if self.meta["model"] not in MODEL_CLASSES:
                raise ValueError(f"not one of {', '.join(MODEL_CLASSES)}")
            probe = decision(np.zeros((1, len(self.meta["feature_names"]))), self.params, self.meta["model"])
            if np.shape(probe) != (1,):
                raise ValueError(f"one text gives scores of shape {np.shape(probe)}")
        except Exception as exc:
            raise CollapseguardError(f"{arrays_path}: does not fit {meta_path.name} (model {self.meta['model']!r}, "
                                     f"{len(self.meta['feature_names'])} features: {type(exc).__name__} {exc}); {fix}") from None
        shas = file_sha256(meta_path) + file_sha256(arrays_path)
        gen0_dir = config.gen0_dir or self.meta.get("gen0_dir")
        self.extractor = FeatureExtractor(self.meta["features"], gen0_dir, None, config.device)
        if "static" in self.extractor.features:
            self.extractor._static, static_sha = load_static(folder, self.meta, meta_path)
            shas += static_sha
        self.digest = hashlib.sha256(shas.encode()).hexdigest()
        self._checked = False

    def identity(self) -> dict:
        return {"name": self.name, "config": {"digest": self.digest, "features": self.meta["features"],
                                              "model": self.meta["model"]}}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()

    def check_feature_models(self) -> None:
        """Refuse Gen-0 or embedding weights other than those the model was trained with."""
        if self._checked:
            return
        now = self.extractor.digests()
        for key, value in now.items():
            if self.meta["digests"].get(key) != value:
                raise CollapseguardError(
                    f"{self.config.model_dir}: trained with other {key.removesuffix('_sha256')} weights than "
                    f"{self.extractor.gen0_dir if key.startswith('gen0') else self.extractor.embedder().path}; "
                    "pass the original model (-o gen0_dir=DIR) or retrain")
        self._checked = True

    def features(self, texts: list[str]) -> np.ndarray:
        self.check_feature_models()
        return self.extractor.matrix(list(texts))

    def score(self, texts: list[str], progress=None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros(0)
        return decision(self.features(texts), self.params, self.meta["model"])


def load_static(folder: Path, meta: dict, meta_path: Path):
    """(StaticEmbedder, sha256) of a folder's static.npz, refused unless learned.json names that sha256."""
    from collapseguard.detectors.static_embeddings import STATIC_FILE, StaticEmbedder

    path = folder / STATIC_FILE
    check_shape(meta, {"static": {"file": str, "sha256": str}}, meta_path, "retrain with `collapseguard detect train`")
    if not path.is_file():
        raise CollapseguardError(f"{folder}: no {STATIC_FILE} (the static features' token table); "
                                 "retrain with `collapseguard detect train`")
    sha = file_sha256(path)
    if sha != meta["static"]["sha256"]:
        raise CollapseguardError(f"{path}: sha256 {sha[:12]}... is not the {meta['static']['sha256'][:12]}... "
                                 f"{meta_path.name} was trained with; restore the file or retrain")
    return StaticEmbedder.load(path), sha


def save_learned(out_dir: str | Path, meta: dict, params: dict) -> Path:
    """Write learned.json and model.npz into `out_dir` (each atomically)."""
    from collapseguard.io.atomic import atomic_path, write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in params.items()})
    with atomic_path(out / ARRAYS_FILE) as tmp:
        tmp.write_bytes(buf.getvalue())
    write_text_atomic(out / META_FILE, json.dumps({"collapseguard_learned": FORMAT_VERSION, **meta}, indent=1) + "\n")
    return out


def candidates_for(model: str) -> list[tuple[str, float]]:
    """(class, strength) pairs grouped CV chooses from: one class's grid, or every class's for 'auto'."""
    if model != "auto" and model not in MODEL_CLASSES:
        raise CollapseguardError(f"unknown model class {model!r}; choose from {', '.join(MODEL_CLASSES)} or auto")
    return [(m, v) for m in (MODEL_CLASSES if model == "auto" else (model,)) for v in STRENGTH_GRID[m]]


def fold_figures(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(AUROC, TPR at CV_FPR) of one held-out fold; the threshold is that fold's own human quantile,
    so the TPR is a point of the fold's ROC curve, not a calibrated promise."""
    from collapseguard.detectors.calibration import threshold_for_fpr
    from collapseguard.detectors.evaluation import auroc

    h, m = scores[y == 0], scores[y == 1]
    t = threshold_for_fpr(h[~np.isnan(h)], CV_FPR)
    return auroc(h, m), float(np.mean(np.nan_to_num(m, nan=-np.inf) > t))


def grouped_cv(x: np.ndarray, y: np.ndarray, groups: np.ndarray, candidates, k: int = CV_FOLDS,
               seed: int = 0) -> list[dict]:
    """Per candidate (class, strength): AUROC and TPR at CV_FPR on each of k folds that never split
    a source group (`collapseguard.detectors.grouping.group_folds`), and their means."""
    from collapseguard.detectors.grouping import group_folds

    folds = group_folds(groups, k, seed)
    rows = []
    for model, strength in candidates:
        per = []
        for f in range(k):
            test = folds == f
            if len(np.unique(y[test])) < 2 or len(np.unique(y[~test])) < 2:
                continue
            params = fit_model(x[~test], y[~test], model, seed, strength)
            per.append(fold_figures(decision(x[test], params, model), y[test]))
        if not per:
            continue
        rows.append({"model": model, "param": STRENGTH[model], "value": strength,
                     "auroc": round(float(np.mean([a for a, _ in per])), 4),
                     "tpr_at_1pct": round(float(np.mean([t for _, t in per])), 4),
                     "auroc_folds": [round(float(a), 4) for a, _ in per]})
    return rows


def select_model(x, y, groups, model: str, k: int, criterion: str, seed: int) -> tuple[str, float, dict]:
    """(class, strength, CV record): the candidate with the best mean grouped-CV `criterion`.

    Without enough source groups for k folds (or k < 2) nothing is chosen: the class's default
    strength is used and the record says why."""
    if criterion not in ("auroc", "tpr_at_1pct"):
        raise CollapseguardError(f"unknown selection criterion {criterion!r}; choose auroc or tpr_at_1pct")
    n_groups = len(np.unique(groups))
    fallback = MODEL_CLASSES[-1] if model == "auto" else model
    record = {"folds": k, "criterion": criterion, "n_groups": n_groups, "grouped_by": "source"}
    if k < 2 or n_groups < k:
        note = "selection off (--cv-folds < 2)" if k < 2 else f"only {n_groups} source groups for {k} folds"
        return fallback, DEFAULT_STRENGTH[fallback], {**record, "note": note + "; default setting used",
                                                       "candidates": []}
    rows = grouped_cv(x, y, groups, candidates_for(model), k, seed)
    if not rows:
        return fallback, DEFAULT_STRENGTH[fallback], {**record, "note": "no fold held both classes", "candidates": []}
    best = max(rows, key=lambda r: (r[criterion], r["auroc"]))
    return best["model"], best["value"], {**record, "candidates": rows, "chosen": best}


def train_learned(human_texts, machine_texts, out_dir, features="static,style", model: str = "mlp",
                  gen0_dir: str | None = None, seed: int = 0, device: str = "cpu", cv_folds: int = CV_FOLDS,
                  criterion: str = "auroc") -> dict:
    """Fit `learned_v1` on labelled texts and save it; returns the summary written to learned.json.

    The training texts are grouped by source (`collapseguard.detectors.grouping`): the model's
    regularisation (and with model='auto' its class) is chosen by grouped cross-validation, and
    the folder keeps a `SourceRecord` (sources.npz) so calibrate and evaluate can refuse text
    that shares a source with the training text."""
    from collapseguard.detectors.grouping import (
        RECORD_FILE,
        SourceRecord,
        source_groups,
        source_parts,
    )

    human, machine = list(human_texts), list(machine_texts)
    if len(human) < 10 or len(machine) < 10:
        raise CollapseguardError(f"training needs >= 10 texts of each class (got {len(human)} human, "
                                 f"{len(machine)} machine); pass more --human/--machine files")
    candidates_for(model)
    t0 = time.perf_counter()
    ext = FeatureExtractor(features, gen0_dir, None, device)
    x = ext.matrix(human + machine)
    y = np.r_[np.zeros(len(human)), np.ones(len(machine))]
    keep = ~np.isnan(x).any(axis=1)
    if keep.sum() < 20:
        raise CollapseguardError(f"only {int(keep.sum())} texts have every feature (the rest are too short); pass longer texts")
    parts = source_parts(human + machine)  # read once: for the CV groups and for the folder's source record
    groups = source_groups(human + machine, parts=parts)
    chosen, strength, cv = select_model(x[keep], y[keep], groups[keep], model, cv_folds, criterion, seed)
    params = fit_model(x[keep], y[keep], chosen, seed, strength)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record_path = SourceRecord.of(human + machine, parts=parts).save(out)
    meta = {"features": list(ext.features), "model": chosen, "strength": {STRENGTH[chosen]: strength},
            "feature_names": ext.names(), "seed": seed,
            "gen0_dir": str(Path(gen0_dir).resolve()) if gen0_dir else None, "digests": ext.digests(),
            "n_human": len(human), "n_machine": len(machine), "n_dropped": int((~keep).sum()),
            "sources": {"file": RECORD_FILE, "sha256": file_sha256(record_path), "texts": len(human) + len(machine),
                        "groups": int(len(np.unique(groups)))},
            "cv": cv, "train_seconds": round(time.perf_counter() - t0, 1)}
    if "static" in ext.features:
        from collapseguard.detectors.lm.perplexity import weights_digest

        static = ext.static_embedder()
        path = static.save(out)
        meta["static"] = {"file": path.name, "sha256": file_sha256(path), "distilled_from": static.source,
                          "distilled_from_sha256": weights_digest(static.source_dir)}
    save_learned(out_dir, meta, params)
    return meta


def learned_members(detector) -> list:
    """The LearnedDetectors inside `detector` (itself, or a combined detector's members)."""
    found = detector.members if hasattr(detector, "members") else [detector]
    return [d for d in found if isinstance(d, LearnedDetector)]


def training_overlap(detectors, texts, what: str, allow: bool) -> dict | None:
    """Check `texts` against the training sources of every learned_v1 folder among `detectors`.

    Raises (with the numbers and the --allow-overlap fix) when texts share a source group with a
    folder's training text, unless `allow`; returns what the output records, or None when no
    learned_v1 detector is involved. A folder trained before source records cannot be checked;
    the record says so."""
    from collapseguard.detectors.grouping import SourceRecord, check_overlap

    texts = list(texts)
    rows = []
    for det in [m for d in detectors for m in learned_members(d)]:
        folder = det.config.model_dir
        counts = check_overlap(SourceRecord.load(folder), texts, what, f"learned_v1 {folder}", allow)
        if not counts["checked"]:
            counts["note"] = "no sources.npz (trained before source records): retrain to check"
        rows.append({"model_dir": str(folder), **counts})
    if not rows:
        return None
    return {"what": what, "texts": len(texts), "overlap": max((r["overlap"] or 0) for r in rows),
            "allowed": bool(allow), "detectors": rows}
