"""The distribution a calibration was made on, and a two-sample test of scored text against it.

A threshold set on one kind of human text promises its FPR only on text like it. So a
calibration keeps a `domain record` of its human texts: the per-feature mean and spread of
their stylometric features and a seeded sample of those features (at most SAMPLE_ROWS rows),
length in words (median, 5th and 95th percentile), the share of English-looking texts, and,
opt-in (`detect calibrate --domain-embeddings`), the MiniLM centroid: reported beside a check as
`cos_median`, never part of the verdict, and a MiniLM pass over up to MAX_TEXTS texts per check.

`drift_report` runs a classifier two-sample test: half of the calibration sample and half of
the new texts fit a logistic regression on the standardised features; its AUC on the other
halves is, when both come from one distribution, the Mann-Whitney statistic of exchangeable
scores, so its p-value is exact up to the normal approximation (the halves are split by source
group, `detectors.grouping`, so versions of one article do not sit on both sides). The effect
size is one-sided: the share of new texts the classifier scores beyond the 95th percentile of
the calibration texts (5% with no shift). Text drawn from a part of the calibration mix (news
only, of a news+wiki calibration) stays low; text the calibration does not cover goes high.
The warning fires when that share is at least OUTSIDE_MIN and p < ALPHA, or when the
median length or the English share moved far. Below MIN_TEXTS texts on either side there is
no verdict, and the report says so (`verdict: "too few texts"`). `drift_warning(calibration,
texts)` is the one call the CLI and the scan layer make.
"""

from __future__ import annotations

import numpy as np

from collapseguard.io.shapes import NUMBER, ListOf, Optional

RECORD_VERSION = 2
MAX_TEXTS = 1000  # texts sampled for a record or a check (seeded, so reruns agree)
SAMPLE_ROWS = 500  # calibration feature rows kept in the record for the two-sample test
MIN_TEXTS = 100  # fewest texts on each side for a verdict
CLIP = 10.0
ALPHA = 1e-3
OUTSIDE_MIN = 0.3  # share of new texts beyond the calibration's 95th percentile (5% with no shift)


def record_shape() -> dict:
    """The shape of a domain record (io.shapes), checked when a calibration file is read."""
    from collapseguard.detectors.style import FEATURE_NAMES

    k = len(FEATURE_NAMES)
    return {"version": int, "n": int,
            "style": {"mean": ListOf(NUMBER, k), "std": ListOf(NUMBER, k), "distance_median": NUMBER,
                      "sample": Optional(ListOf(ListOf(NUMBER, k))), "sample_sources": Optional(ListOf(int))},
            "words": {"median": NUMBER, "p05": NUMBER, "p95": NUMBER}, "english_share": NUMBER,
            "embeddings": Optional({"centroid": ListOf(NUMBER), "cos_median": NUMBER})}


def sample(texts: list[str], k: int = MAX_TEXTS, seed: int = 0) -> list[str]:
    """At most k texts, a seeded random subset (in their original order)."""
    if len(texts) <= k:
        return list(texts)
    idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=k, replace=False))
    return [texts[i] for i in idx]


def style_distance(style: np.ndarray, mean, std) -> np.ndarray:
    """(n,) RMS of the clipped standardised differences from the record's centre; NaN rows stay NaN."""
    z = np.clip((style - np.asarray(mean)) / np.asarray(std), -CLIP, CLIP)
    return np.sqrt(np.mean(z * z, axis=1))


def embed(texts: list[str]):
    """MiniLM embeddings, or None when the embeddings extra is missing."""
    from collapseguard.errors import CollapseguardError

    try:
        from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

        return SentenceEmbedder().encode(texts)
    except (CollapseguardError, ImportError):  # the extra is missing: the record keeps style and length
        return None


def domain_record_from_features(style: np.ndarray, emb: np.ndarray | None, texts: list[str]) -> dict:
    """The record of a calibration set from its (n, k) style and (n, d) embedding features."""
    from collapseguard.detectors.style import english_share

    ok = ~np.isnan(style).any(axis=1)
    s = style[ok]
    mean, std = s.mean(0), s.std(0)
    std = np.maximum(std, 1e-3 * np.maximum(np.abs(mean), 1e-6))
    dist = style_distance(s, mean, std)
    words = np.array([len(t.split()) for t in texts])
    keep = np.sort(np.random.default_rng(0).permutation(len(s))[:SAMPLE_ROWS])
    kept_texts = [t for t, k in zip(texts, ok, strict=True) if k]
    rec = {"version": RECORD_VERSION, "n": int(len(texts)),
           "style": {"mean": mean.tolist(), "std": std.tolist(), "distance_median": float(np.median(dist)),
                     "sample": np.round(s[keep], 5).tolist(),
                     "sample_sources": source_labels([kept_texts[i] for i in keep])},
           "words": {"median": float(np.median(words)), "p05": float(np.quantile(words, 0.05)),
                     "p95": float(np.quantile(words, 0.95))},
           "english_share": english_share(texts), "embeddings": None}
    if emb is not None:
        centroid = emb.mean(0)
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        cos = emb @ centroid
        rec["embeddings"] = {"centroid": centroid.astype(float).tolist(), "cos_median": float(np.median(cos))}
    return rec


def domain_record(texts, embeddings: bool = False) -> dict:
    """The record of calibration human texts (a seeded sample of at most MAX_TEXTS)."""
    from collapseguard.detectors.style import style_features

    texts = sample(list(texts))
    return domain_record_from_features(style_features(texts), embed(texts) if embeddings else None, texts)


def source_labels(texts: list[str]) -> list[int]:
    """Source group per text (`detectors.grouping`): versions of one article stay on one side."""
    from collapseguard.detectors.grouping import source_groups

    return np.unique(source_groups(texts), return_inverse=True)[1].tolist() if texts else []


def halves(groups, seed: int) -> np.ndarray:
    """A mask taking about half of the rows, whole source groups at a time."""
    from collapseguard.detectors.grouping import group_split

    first = group_split(np.asarray(groups), 0.5, seed=seed)
    if first.all() or not first.any():  # one dominant source: fall back to a row split
        first = np.random.default_rng(seed).permutation(len(first)) < len(first) // 2
    return first


def held_out_auc(ref: np.ndarray, new: np.ndarray, ref_groups, new_groups, seed: int = 0) -> dict:
    """Classifier two-sample test: held-out AUC, its one-sided p-value, the share of held-out new
    texts beyond the 95th percentile of the held-out calibration texts' scores (`outside`, 5%
    with no shift), and the held-out sizes.

    Each sample is split in halves by source group (seeded; texts of one source are not
    exchangeable with the rest, so they stay on one side); a logistic regression fitted on the
    first halves scores the second ones, whose AUC under no shift is a Mann-Whitney statistic
    of exchangeable scores (mean 1/2, variance (n1 + n2 + 1) / (12 n1 n2))."""
    from scipy.stats import norm
    from sklearn.linear_model import LogisticRegression

    from collapseguard.detectors.evaluation import auroc

    a, b = halves(ref_groups, seed), halves(new_groups, seed + 1)
    ra, rb, na, nb = ref[a], ref[~a], new[b], new[~b]
    clf = LogisticRegression(C=0.1, max_iter=2000).fit(np.r_[ra, na], np.r_[np.zeros(len(ra)), np.ones(len(na))])
    sr, sn = clf.decision_function(rb), clf.decision_function(nb)
    auc = auroc(sr, sn)
    n1, n2 = len(rb), len(nb)
    z = (auc - 0.5) / np.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2))
    outside = float(np.mean(sn > np.quantile(sr, 0.95, method="higher")))
    return {"auc": float(auc), "p_value": float(norm.sf(z)), "outside_share": outside, "n_ref_held_out": n1,
            "n_held_out": n2}


def drift_report(record: dict, style: np.ndarray, emb: np.ndarray | None, texts: list[str]) -> dict:
    """How far texts (with their style features) are from `record`; `warn` says whether to warn."""
    from collapseguard.detectors.style import english_share

    mean, std = np.asarray(record["style"]["mean"]), np.asarray(record["style"]["std"])
    dist = style_distance(style, mean, std)
    scored = ~np.isnan(style).any(axis=1)
    new = style[scored]
    ref = np.asarray(record["style"].get("sample") or [], dtype=float).reshape(-1, len(mean))
    rep = {"n": len(texts), "n_reference": len(ref), "min_texts": MIN_TEXTS,
           "style_distance_median": float(np.nanmedian(dist)) if np.isfinite(dist).any() else None,
           "ref_style_distance_median": record["style"]["distance_median"], "auc": None, "p_value": None}
    if emb is not None and len(emb) and record.get("embeddings"):  # no texts (empty shards): no median
        rep["cos_median"] = float(np.median(emb @ np.asarray(record["embeddings"]["centroid"])))
        rep["ref_cos_median"] = record["embeddings"]["cos_median"]
    words = np.median([len(t.split()) for t in texts]) if texts else 0.0
    rep["median_words"], rep["english_share"] = float(words), english_share(texts)
    reasons = []
    if len(ref) < MIN_TEXTS or len(new) < MIN_TEXTS:
        rep["verdict"] = "too few texts"
        rep["note"] = (f"no drift verdict: {len(new)} scored and {len(ref)} calibration texts, the test needs >= "
                       f"{MIN_TEXTS} on each side" + ("" if len(ref) else " (recalibrate: this record has no sample)"))
        rep["warn"], rep["reasons"] = False, []
        return rep
    z = lambda x: np.clip((x - mean) / std, -CLIP, CLIP)  # noqa: E731
    new_groups = source_labels([t for t, k in zip(texts, scored, strict=True) if k])
    rep.update(held_out_auc(z(ref), z(new), record["style"]["sample_sources"], new_groups))
    if rep["outside_share"] >= OUTSIDE_MIN and rep["p_value"] < ALPHA:
        reasons.append(f"a classifier tells them from the calibration texts: {rep['outside_share']:.0%} of them lie "
                       f"where 5% of the calibration texts do (held-out AUC {rep['auc']:.2f}, p={rep['p_value']:.1e}, "
                       f"{rep['n_held_out']} vs {rep['n_ref_held_out']} texts)")
    w = record["words"]
    if not (w["p05"] / 2 <= words <= 2 * w["p95"]):
        reasons.append(f"median length {words:.0f} words vs {w['median']:.0f} in calibration")
    if abs(rep["english_share"] - record["english_share"]) > 0.3:
        reasons.append(f"English-looking share {rep['english_share']:.0%} vs {record['english_share']:.0%}")
    rep["verdict"] = "shifted" if reasons else "no shift found"
    rep["warn"], rep["reasons"] = bool(reasons), reasons
    return rep


def check_texts(record: dict, texts) -> dict:
    """drift_report on (a seeded sample of) raw texts."""
    from collapseguard.detectors.style import style_features

    texts = sample(list(texts))
    emb = embed(texts) if record.get("embeddings") else None
    return drift_report(record, style_features(texts), emb, texts)


def warning_text(report: dict, fpr_target: float, group: str | None = None) -> str:
    where = f" (group {group!r})" if group else ""
    if report.get("verdict") == "too few texts":
        return f"{report['note']}{where}; the promised FPR {fpr_target:g} is untested on this text"
    return (f"scored text is far from the calibration data{where}: {'; '.join(report['reasons'])}; the promised "
            f"FPR {fpr_target:g} may not hold -- recalibrate on human text like this (per domain: --group-column)")


def drift_warning(calibration, texts) -> str | None:
    """A one-line warning when `texts` are far from what `calibration` was made on, else None.

    Calibrations without a domain record (made before it existed) give None.
    """
    record = getattr(calibration, "domain", None)
    if not record:
        return None
    report = check_texts(record, texts)
    return warning_text(report, calibration.fpr_target) if speaks(report) else None


def speaks(report: dict) -> bool:
    """Whether the report has something to say: a shift, or that it cannot tell (too few texts)."""
    return report["warn"] or report.get("verdict") == "too few texts"
