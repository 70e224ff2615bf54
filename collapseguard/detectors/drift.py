"""The distribution a calibration was made on, and how far scored text is from it.

A threshold set on one kind of human text promises its FPR only on text like it (detect-dev:
calibrated on news and Wikipedia, a 1% threshold flags 5-10% of human stories). So a
calibration keeps a `domain record` of its human texts:
- style: the per-feature mean and spread of the stylometric features, and the quantiles of
  each calibration text's distance from that centre (root mean square of the standardised
  differences, each clipped at 10 spreads);
- embeddings (when the ``embeddings`` extra is installed): the MiniLM centroid and the
  quantiles of each text's cosine similarity to it;
- length in words (median, 5th and 95th percentile) and the share of English-looking texts.

`drift_report` measures new texts against it: the share of texts outside the region that
holds 95% of the calibration texts (style distance above its 95th percentile, or cosine below
its 5th). With no drift that share is about 5%; the warning fires when it is at least twice
that and a one-sided binomial test rejects 5% at the 0.1% level, or the English share or the
median length moved far. `drift_warning(calibration, texts)` is the one call the CLI and the
scan layer make.
"""

from __future__ import annotations

import numpy as np

from collapseguard.io.shapes import NUMBER, ListOf, Optional

RECORD_VERSION = 1
REGION = 0.95  # share of calibration texts inside the region
MAX_TEXTS = 1000  # texts sampled for a record or a check (seeded, so reruns agree)
CLIP = 10.0
ALPHA = 1e-3


def record_shape() -> dict:
    """The shape of a domain record (io.shapes), checked when a calibration file is read."""
    from collapseguard.detectors.style import FEATURE_NAMES

    k = len(FEATURE_NAMES)
    return {"version": int, "n": int, "style": {"mean": ListOf(NUMBER, k), "std": ListOf(NUMBER, k), "distance_q95": NUMBER,
                      "distance_median": NUMBER},
            "words": {"median": NUMBER, "p05": NUMBER, "p95": NUMBER}, "english_share": NUMBER,
            "embeddings": Optional({"centroid": ListOf(NUMBER), "cos_q05": NUMBER, "cos_median": NUMBER})}


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
    rec = {"version": RECORD_VERSION, "n": int(len(texts)),
           "style": {"mean": mean.tolist(), "std": std.tolist(), "distance_q95": float(np.quantile(dist, REGION)),
                     "distance_median": float(np.median(dist))},
           "words": {"median": float(np.median(words)), "p05": float(np.quantile(words, 0.05)),
                     "p95": float(np.quantile(words, 0.95))},
           "english_share": english_share(texts), "embeddings": None}
    if emb is not None:
        centroid = emb.mean(0)
        centroid = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        cos = emb @ centroid
        rec["embeddings"] = {"centroid": centroid.astype(float).tolist(), "cos_q05": float(np.quantile(cos, 1 - REGION)),
                             "cos_median": float(np.median(cos))}
    return rec


def domain_record(texts, embeddings: bool = True) -> dict:
    """The record of calibration human texts (a seeded sample of at most MAX_TEXTS)."""
    from collapseguard.detectors.style import style_features

    texts = sample(list(texts))
    return domain_record_from_features(style_features(texts), embed(texts) if embeddings else None, texts)


def _binomial_p(k: int, n: int, p: float) -> float:
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def drift_report(record: dict, style: np.ndarray, emb: np.ndarray | None, texts: list[str]) -> dict:
    """How far texts (with their features) are from `record`; `warn` says whether to warn."""
    from collapseguard.detectors.style import english_share

    dist = style_distance(style, record["style"]["mean"], record["style"]["std"])
    outside = np.nan_to_num(dist, nan=np.inf) > record["style"]["distance_q95"]
    expected = 1 - REGION
    rep = {"n": len(texts), "style_outside": float(outside.mean()),
           "style_distance_median": float(np.nanmedian(dist)) if np.isfinite(dist).any() else None,
           "ref_style_distance_median": record["style"]["distance_median"]}
    if emb is not None and record.get("embeddings"):
        cos = emb @ np.asarray(record["embeddings"]["centroid"])
        out_e = cos < record["embeddings"]["cos_q05"]
        rep["embedding_outside"] = float(out_e.mean())
        rep["cos_median"], rep["ref_cos_median"] = float(np.median(cos)), record["embeddings"]["cos_median"]
        outside = outside | out_e
        expected = 1 - REGION ** 2  # either test; independence is an upper bound
    k, n = int(outside.sum()), len(texts)
    rep.update(outside_share=k / n if n else 0.0, expected_outside=expected,
               p_value=_binomial_p(k, n, expected) if n else 1.0)
    words = np.median([len(t.split()) for t in texts]) if texts else 0.0
    rep["median_words"], rep["english_share"] = float(words), english_share(texts)
    reasons = []
    if n and rep["outside_share"] >= 2 * expected and rep["p_value"] < ALPHA:
        reasons.append(f"{rep['outside_share']:.0%} of the texts lie outside the region holding {REGION:.0%} of the "
                       f"calibration texts (expected about {expected:.0%})")
    w = record["words"]
    if n >= 20 and not (w["p05"] / 2 <= words <= 2 * w["p95"]):
        reasons.append(f"median length {words:.0f} words vs {w['median']:.0f} in calibration")
    if n >= 20 and abs(rep["english_share"] - record["english_share"]) > 0.3:
        reasons.append(f"English-looking share {rep['english_share']:.0%} vs {record['english_share']:.0%}")
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
    return warning_text(report, calibration.fpr_target) if report["warn"] else None
