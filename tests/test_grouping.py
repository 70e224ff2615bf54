"""Source groups: shared openings, overlapping passages, boilerplate, folds and the overlap check."""

import json
from pathlib import Path

import numpy as np
import pytest

from collapseguard.detectors.grouping import (
    GroupingConfig,
    SourceRecord,
    check_overlap,
    group_folds,
    group_split,
    source_groups,
)
from collapseguard.errors import CollapseguardError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RNG = np.random.default_rng(0)
VOCAB = [f"w{i}" for i in range(5000)]


def words(n: int, rng=RNG) -> str:
    return " ".join(rng.choice(VOCAB, n))


def test_continuation_and_cut_article_join_their_source_unrelated_texts_do_not():
    article = words(300)
    opening = " ".join(article.split()[:20])
    texts = [article, " ".join(article.split()[:120]), opening + " " + words(200), words(250), words(250)]
    g = source_groups(texts)
    assert g[0] == g[1] == g[2]  # cut at another length; machine continuation of its opening
    assert len({g[0], g[3], g[4]}) == 3


def test_opening_folds_case_and_punctuation():
    base = words(40)
    first = base.split()
    variant = ", ".join([first[0].upper()] + first[1:6]) + " " + words(60)
    assert source_groups([base, variant]).tolist() == [0, 0]


def test_boilerplate_opening_does_not_join_different_articles():
    boiler = "media playback is not supported on this device"
    texts = [f"{boiler} {words(80)}" for _ in range(12)]
    g = source_groups(texts)
    assert len(set(g.tolist())) == 12
    same_article = [f"{boiler} {words(30, np.random.default_rng(7))} {words(50)}" for _ in range(3)]
    assert len(set(source_groups(texts + same_article)[12:].tolist())) == 1


def test_folds_and_splits_keep_groups_whole():
    groups = np.repeat(np.arange(40), RNG.integers(1, 6, 40))
    folds = group_folds(groups, 5, seed=3)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1
    assert set(folds.tolist()) == set(range(5))
    mask = group_split(groups, 0.3, seed=1)
    for g in np.unique(groups):
        assert len(set(mask[groups == g].tolist())) == 1
    assert 0.15 < mask.mean() < 0.45
    with pytest.raises(CollapseguardError, match="only 3 source groups for 5 folds"):
        group_folds(np.array([0, 0, 1, 2]), 5)


def test_source_record_finds_overlap_after_a_round_trip(tmp_path):
    train = [words(200) for _ in range(30)]
    record = SourceRecord.of(train)
    record.save(tmp_path)
    loaded = SourceRecord.load(tmp_path)
    assert loaded.config == GroupingConfig() and loaded.n_texts == 30
    continuation = " ".join(train[3].split()[:15]) + " " + words(150)
    cut = " ".join(train[5].split()[40:160])
    fresh = [words(200) for _ in range(20)]
    hits = loaded.overlapping([continuation, cut] + fresh)
    assert hits[:2].tolist() == [True, True] and not hits[2:].any()
    assert SourceRecord.load(tmp_path / "none") is None


def test_check_overlap_refuses_with_numbers_unless_allowed():
    train = [words(200) for _ in range(10)]
    record = SourceRecord.of(train)
    calib = train[:2] + [words(200) for _ in range(6)]
    with pytest.raises(CollapseguardError, match=r"2 of 8 calibration texts \(25.0%\).*--allow-overlap"):
        check_overlap(record, calib, "calibration", "the detector", allow=False)
    assert check_overlap(record, calib, "calibration", "the detector", allow=True)["overlap"] == 2
    assert check_overlap(None, calib, "calibration", "x", allow=False)["checked"] is False


@pytest.mark.skipif(not (DATA / "detect-dev").is_dir(), reason="needs ../shared/data/detect-dev")
def test_detect_dev_pairs_and_article_cuts_share_groups():
    texts = []
    for f in sorted((DATA / "detect-dev").glob("xsum_*.raw_data.json"))[:3]:
        blob = json.loads(f.read_text(encoding="utf-8"))
        for h, m in list(zip(blob["original"], blob["sampled"]))[:80]:
            texts += [h, m]
    g = source_groups(texts)
    joined = np.mean([g[i] == g[i + 1] for i in range(0, len(texts), 2)])
    assert joined > 0.99
    # the same article index in another generator's file is the same source, cut differently
    n = len(texts) // 3
    assert np.mean(g[:n:2] == g[n:2 * n:2]) > 0.95
