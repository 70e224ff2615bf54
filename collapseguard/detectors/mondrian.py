"""Group-conditional (Mondrian) thresholds: the FPR promise held per slice, or an abstain.

A pooled threshold promises its FPR only on average over the calibration mix; a domain or a
length the mix holds little of can see many times that. So the human calibration texts are cut
into slices -- domain x length bucket -- and each slice gets its own threshold:

- domain: the user's group label (--group-column), else a k-means cluster of the texts'
  standardised stylometric features (`collapseguard.detectors.style`), k chosen so every
  cluster holds at least two slices' worth of texts; smaller clusters merge into the nearest.
- length: the buckets of `evaluation.LENGTH_BUCKETS`; a bucket with too few texts merges with
  its smaller neighbour.
- threshold: the conformal order statistic, the ceil((n + 1)(1 - f))-th smallest of n human
  scores of the slice (`calibration.add_slices` takes one per source article), so a new human
  text of the slice is flagged with probability at most f. It exists only when n >= 1/f - 1
  (`min_texts`); a group with fewer texts is not calibrated, a slice with fewer sources abstains.

Slices aim at SLICE_TARGET x that many texts (texts of one source article are correlated, so a
slice of exactly 1/f - 1 of them would give a noisy threshold). A text abstains -- never
"machine" -- with its reason when it is shorter than 99% of its domain's calibration texts
(`too short`), belongs to a group that was not (or could not be) calibrated,
or lies farther from its domain's centre than a share `support` (99%) of that domain's
calibration texts (`out of support`). The model is a plain dict (JSON in calibration files).
"""

from __future__ import annotations

import math

import numpy as np

# The fewest human texts whose conformal (1 - fpr) threshold exists: ceil(1/fpr - 1).
from collapseguard.detectors.calibration import min_calibration_size as min_texts
from collapseguard.errors import CollapseguardError

VERSION = 1
CLIP = 10.0  # standardised features are clipped at this many spreads
SUPPORT = 0.99  # share of a domain's calibration texts inside its support radius
MIN_WORDS_QUANTILE = 0.01  # texts shorter than this quantile of calibration lengths abstain
MAX_CLUSTERS = 8
SLICE_TARGET = 3  # slices aim at this many times min_texts (texts of one source are correlated)
LENGTH_EDGES = (50, 100, 200)  # word-count bucket edges, as evaluation.LENGTH_BUCKETS
MODES = ("auto", "length", "none")


def conformal_threshold(scores, fpr: float) -> float | None:
    """The ceil((n + 1)(1 - fpr))-th smallest non-NaN score, or None when n is too small for it."""
    s = np.sort(np.asarray(scores, dtype=float)[~np.isnan(np.asarray(scores, dtype=float))])
    k = math.ceil((len(s) + 1) * (1.0 - fpr) - 1e-9)
    return float(s[k - 1]) if 1 <= k <= len(s) else None


def word_counts(texts) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=np.int64)


def text_features(texts) -> np.ndarray:
    """(n, k) stylometric features without length: what domains are clustered and supported on."""
    from collapseguard.detectors.style import style_features

    return domain_features(style_features(list(texts)))


def domain_features(style: np.ndarray) -> np.ndarray:
    """Style features less `log_words`: length has its own buckets (and `too short`), so the
    clusters should not split by it (a text between two length clusters would be 'too short' for one)."""
    from collapseguard.detectors.style import FEATURE_NAMES

    return np.delete(np.asarray(style), FEATURE_NAMES.index("log_words"), axis=1)


def standardise(x: np.ndarray, mean, std) -> np.ndarray:
    return np.clip((np.asarray(x, dtype=float) - np.asarray(mean)) / np.asarray(std), -CLIP, CLIP)


def kmeans_domains(z: np.ndarray, need: int, seed: int = 0) -> np.ndarray:
    """Cluster labels 0..k-1 with every cluster holding at least `need` rows (merging the smallest)."""
    k = max(1, min(MAX_CLUSTERS, len(z) // (2 * need)))
    if k == 1:
        return np.zeros(len(z), dtype=np.int64)
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z).labels_
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if counts.min() >= need or len(ids) == 1:
            break
        small = ids[np.argmin(counts)]
        keep = ids[ids != small]
        centres = np.stack([z[labels == c].mean(0) for c in keep])
        rows = labels == small
        labels[rows] = keep[np.argmin(((z[rows, None, :] - centres[None]) ** 2).sum(-1), axis=1)]
    return np.unique(labels, return_inverse=True)[1]


def length_slices(words: np.ndarray, need: int) -> list[list]:
    """[[lo, hi], ...] word ranges (hi None = open), each holding >= need texts (neighbours merged)."""
    edges = [0, *LENGTH_EDGES, None]
    spans = [[edges[i], edges[i + 1]] for i in range(len(edges) - 1)]
    while len(spans) > 1:
        counts = [int(((words >= lo) & ((hi is None) | (words < (hi or 0)))).sum()) for lo, hi in spans]
        i = int(np.argmin(counts))
        if counts[i] >= need:
            break
        j = i - 1 if i == len(spans) - 1 or (i > 0 and counts[i - 1] <= counts[i + 1]) else i + 1
        a, b = sorted((i, j))
        spans[a:b + 1] = [[spans[a][0], spans[b][1]]]
    return spans


def in_span(words: np.ndarray, span) -> np.ndarray:
    lo, hi = span
    return (words >= lo) & (np.ones(len(words), bool) if hi is None else words < hi)


def fit_slices(features: np.ndarray, words: np.ndarray, fpr: float, threshold_of, *, groups=None,
               mode: str = "auto", seed: int = 0, machine_features: np.ndarray | None = None) -> dict:
    """The slice model of a human calibration set.

    `threshold_of(rows)` gives a slice's threshold entry (a dict with at least `threshold`) from
    the indices of its calibration texts; `groups` (per text) replace the clusters. Labelled
    machine calibration texts (`machine_features`), when given, widen the support: a domain's
    radius also covers 99% of the machine texts nearest to it (so machine text unlike the human
    text is not abstained merely for being machine-like)."""
    if mode not in MODES[:2]:
        raise CollapseguardError(f"slice mode must be one of {', '.join(MODES)}, got {mode!r}")
    need = min_texts(fpr)
    target = SLICE_TARGET * need
    ok = ~np.isnan(features).any(axis=1)
    mean = features[ok].mean(0)
    std = features[ok].std(0)
    std = np.maximum(std, 1e-3 * np.maximum(np.abs(mean), 1e-6))
    z = standardise(np.where(ok[:, None], features, mean), mean, std)
    if groups is not None:
        labels = np.asarray([str(g) for g in groups], dtype=object)
    elif mode == "auto":
        labels = np.array([f"cluster{c}" for c in np.zeros(len(z), int)], dtype=object)
        labels[ok] = [f"cluster{c}" for c in kmeans_domains(z[ok], target, seed)]
    else:
        labels = np.full(len(z), "all", dtype=object)
    model = {"version": VERSION, "fpr": fpr, "min_texts": need, "mode": mode, "by": "group" if groups is not None
             else "cluster", "support": SUPPORT, "mean": mean.tolist(), "std": std.tolist(),
             "min_words": int(np.quantile(words, MIN_WORDS_QUANTILE, method="lower")) if len(words) else 0,
             "domains": {}}
    for name in sorted(set(labels)):
        rows = np.flatnonzero((labels == name) & ok)
        if len(rows) < need:
            model["domains"][name] = {"n": int(len(rows)), "unsupported":
                                      f"only {len(rows)} calibration texts; fpr {fpr:g} needs >= {need}"}
            continue
        centre = z[rows].mean(0)
        dist = np.sqrt(((z[rows] - centre) ** 2).mean(1))
        k = min(len(rows), math.ceil((len(rows) + 1) * SUPPORT))
        entry = {"n": int(len(rows)), "centroid": centre.tolist(), "radius": float(np.sort(dist)[k - 1]),
                 "min_words": int(np.quantile(words[rows], MIN_WORDS_QUANTILE, method="lower")), "slices": []}
        for span in length_slices(words[rows], min(target, len(rows))):
            sub = rows[in_span(words[rows], span)]
            entry["slices"].append({"words": span, "n": int(len(sub)), **threshold_of(sub)})
        model["domains"][name] = entry
    if machine_features is not None and model["by"] == "cluster":
        widen_support(model, machine_features)
    return model


def widen_support(model: dict, machine_features: np.ndarray) -> None:
    """Each domain's radius at least the SUPPORT quantile of the distances of its nearest machine texts."""
    names = [n for n, d in model["domains"].items() if "centroid" in d]
    m = machine_features[~np.isnan(machine_features).any(axis=1)]
    if not names or not len(m):
        return
    z = standardise(m, model["mean"], model["std"])
    dist = np.sqrt(((z[:, None, :] - np.array([model["domains"][n]["centroid"] for n in names])[None]) ** 2).mean(-1))
    nearest = dist.argmin(1)
    for j, name in enumerate(names):
        d = np.sort(dist[nearest == j, j])
        if len(d):
            dom = model["domains"][name]
            dom["radius"] = max(dom["radius"], float(d[min(len(d), math.ceil((len(d) + 1) * SUPPORT)) - 1]))
            dom["n_machine"] = int(len(d))


def assign(model: dict, features: np.ndarray, words: np.ndarray, groups=None) -> tuple[list, list]:
    """Per text: its slice entry (None = abstain) and the abstain reason ('' when it has a slice)."""
    z = standardise(features, model["mean"], model["std"])
    names = [n for n, d in model["domains"].items() if "centroid" in d]
    centres = np.array([model["domains"][n]["centroid"] for n in names]) if names else np.zeros((0, z.shape[1]))
    dist = np.sqrt(((z[:, None, :] - centres[None]) ** 2).mean(-1)) if names else np.zeros((len(z), 0))
    entries, reasons = [], []
    for i in range(len(z)):
        if np.isnan(features[i]).any():
            entries.append(None), reasons.append("no features (empty text)")
            continue
        if words[i] < model["min_words"]:
            entries.append(None), reasons.append(f"too short ({words[i]} words; calibrated texts have >= {model['min_words']})")
            continue
        if model["by"] == "group":
            if groups is None:
                entries.append(None), reasons.append("no group given (calibrated per group: pass --group-column)")
                continue
            g = str(groups[i])
            dom = model["domains"].get(g)
            if dom is None or "unsupported" in dom:
                why = dom["unsupported"] if dom else "not in the calibration"
                entries.append(None), reasons.append(f"group {g!r} not calibrated ({why})")
                continue
            d = float(dist[i, names.index(g)])
        else:
            if not names:
                entries.append(None), reasons.append("no calibrated slice")
                continue
            j = int(np.argmin(dist[i]))
            g, dom, d = names[j], model["domains"][names[j]], float(dist[i, j])
        if words[i] < dom["min_words"]:
            entries.append(None), reasons.append(f"too short for {g} ({words[i]} words; its calibration texts have "
                                                 f">= {dom['min_words']})")
            continue
        if d > dom["radius"]:
            entries.append(None), reasons.append(f"out of support (style distance {d:.2f} from {g}, whose "
                                                 f"{model['support']:.0%} radius is {dom['radius']:.2f})")
            continue
        entry = next(s for s in dom["slices"] if in_span(np.array([words[i]]), s["words"])[0])
        if entry.get("threshold") is None and "thresholds" not in entry:
            entries.append(None), reasons.append(f"slice {g} {entry['words']} words has {entry.get('n_sources')} sources; "
                                                 f"fpr {model['fpr']:g} needs >= {model['min_texts']}")
            continue
        entries.append(entry), reasons.append("")
    return entries, reasons


def model_shape(per_detector: int | None = None) -> dict:
    """The slice model's fields with their types (io.shapes): a slice holds `threshold` (one
    detector) or `thresholds` (`per_detector` numbers, policy calibrations)."""
    from collapseguard.io.shapes import NUMBER, ListOf, MapOf, Optional

    cut = {"words": ListOf(Optional(int), 2), "n": int, "threshold": Optional(NUMBER), "n_sources": Optional(int),
           "achieved_fpr": Optional(NUMBER), "fpr_ci95": Optional(ListOf(NUMBER, 2)), "alpha": Optional(NUMBER)}
    if per_detector is not None:
        cut["thresholds"] = ListOf(NUMBER, per_detector)
    domain = {"n": int, "unsupported": Optional(str), "centroid": Optional(ListOf(NUMBER)), "radius": Optional(NUMBER),
              "min_words": Optional(int), "slices": Optional(ListOf(cut)), "n_machine": Optional(int)}
    return {"version": int, "fpr": NUMBER, "min_texts": int, "mode": str, "by": str, "support": NUMBER,
            "mean": ListOf(NUMBER), "std": ListOf(NUMBER), "min_words": int, "domains": MapOf(domain),
            "calibration_abstain_share": Optional(NUMBER)}


def check_model(model: dict, source, fix: str, per_detector: int | None = None) -> None:
    """Raise CollapseguardError (naming `source`, the field and `fix`) unless `model` is a slice
    model `assign` can read: typed fields, one centre size, and length slices that tile [0, inf)."""
    from collapseguard.io.shapes import check_shape

    check_shape(model, model_shape(per_detector), source, fix, "slices")

    def bad(field, why):
        return CollapseguardError(f"{source}: slices.{field} {why}; {fix}")

    if model["version"] != VERSION or model["mode"] not in MODES or model["by"] not in ("group", "cluster"):
        raise bad("version", f"/mode/by must be {VERSION}, one of {'/'.join(MODES)} and group or cluster")
    if len(model["mean"]) != len(model["std"]) or any(v <= 0 for v in model["std"]):
        raise bad("std", "must be positive numbers, one per entry of mean")
    for name, dom in model["domains"].items():
        if dom.get("unsupported") is not None:
            continue
        missing = [k for k in ("centroid", "radius", "min_words", "slices") if dom.get(k) is None]
        if missing:
            raise bad(f"domains.{name}", f"has no {missing[0]} and is not marked unsupported")
        if len(dom["centroid"]) != len(model["mean"]):
            raise bad(f"domains.{name}.centroid", f"must hold {len(model['mean'])} numbers, one per feature")
        edges = [e for cut in dom["slices"] for e in cut["words"]]
        tiled = edges[:1] == [0] and edges[-1:] == [None] and all(
            edges[i] == edges[i + 1] for i in range(1, len(edges) - 1, 2)) and None not in edges[:-1]
        if not tiled or any(lo >= hi for lo, hi in zip(edges[0:-2:2], edges[1:-1:2], strict=True)):
            raise bad(f"domains.{name}.slices", "words ranges must run from 0 to null, each starting where the last ended")


def slice_rows(model: dict) -> list[dict]:
    """One summary row per slice (domain, words, n, threshold, achieved FPR) for reports."""
    rows = []
    for name, dom in model["domains"].items():
        if "unsupported" in dom:
            rows.append({"domain": name, "n": dom["n"], "unsupported": dom["unsupported"]})
        for s in dom.get("slices", []):
            rows.append({"domain": name, **s})
    return rows
