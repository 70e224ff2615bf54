"""Training, scoring, generation and metrics of the LM world against transformers' own code."""

import os

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

from collapseguard.simulate.lm.generate import DecodingConfig, generate_continuations  # noqa: E402
from collapseguard.simulate.lm.metrics import distinct_n, gen0_auroc, repetition_rate  # noqa: E402
from collapseguard.simulate.lm.models import build_model  # noqa: E402
from collapseguard.simulate.lm.tokenizer import synthetic_tokenizer, train_bpe_tokenizer  # noqa: E402
from collapseguard.simulate.lm.train import block_perplexity, corpus_perplexity, next_token_probs  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    tok = synthetic_tokenizer(20)
    return tok, build_model("tiny", tok, 32, seed=0).eval()


def test_corpus_perplexity_equals_transformers_loss(tiny):
    import torch

    tok, model = tiny
    blocks = np.random.default_rng(0).integers(0, 20, size=(6, 12))
    x = torch.as_tensor(blocks)
    with torch.no_grad():
        ref = float(torch.exp(model(input_ids=x, labels=x).loss))
    assert corpus_perplexity(model, blocks, batch_size=4) == pytest.approx(ref, rel=1e-5)
    per_block = block_perplexity(model, blocks, batch_size=4)
    with torch.no_grad():
        ref0 = float(torch.exp(model(input_ids=x[:1], labels=x[:1]).loss))
    assert per_block[0] == pytest.approx(ref0, rel=1e-5)
    probs = next_token_probs(model, blocks)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-9)


def test_batched_generation_equals_one_at_a_time(tiny):
    tok, model = tiny
    prompts = np.random.default_rng(1).integers(0, 20, size=(5, 8))
    dec = DecodingConfig("beam", num_beams=3)
    batched, _ = generate_continuations(model, prompts, 6, dec, batch_size=5)
    single, _ = generate_continuations(model, prompts, 6, dec, batch_size=1)
    assert batched.shape == (5, 6)
    np.testing.assert_array_equal(batched, single)


def test_suppressed_tokens_never_generated(tiny):
    tok, model = tiny
    prompts = np.random.default_rng(2).integers(0, 20, size=(4, 8))
    out, _ = generate_continuations(model, prompts, 10, DecodingConfig("sample"), suppress_tokens=[20, 21], seed=3)
    assert out.max() < 20


def test_repetition_and_distinct_definitions():
    # 4-grams of 1 2 3 4 1 2 3 4: 1234 2341 3412 4123 1234 -> one of five repeats
    assert repetition_rate(np.array([[1, 2, 3, 4, 1, 2, 3, 4]])) == pytest.approx(0.2)
    assert repetition_rate(np.array([[1, 2, 3, 4, 5]])) == 0.0
    # bigrams 12 21 12 -> two distinct of three
    assert distinct_n(np.array([[1, 2, 1, 2]]), 2) == pytest.approx(2 / 3)


def test_auroc_orientation():
    # machine samples with lower perplexity than human text -> AUROC 1
    assert gen0_auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert gen0_auroc(np.array([5.0, 6.0]), np.array([3.0, 4.0])) == 0.0


def test_bpe_tokenizer_round_trips_text():
    texts = ["the cat sat on the mat", "a dog ran in the park"] * 20
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    ids = tok("the cat ran", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "the cat ran"
    assert tok.eos_token_id is not None


def test_watermark_key_marks_generated_text_for_the_kgw_detector():
    wm = pytest.importorskip("collapseguard.detectors.watermark.kgw")
    from collapseguard.simulate.lm.loop import watermark_processor

    tok = synthetic_tokenizer(500)
    model = build_model("tiny", tok, 64, seed=0).eval()
    prompts = np.random.default_rng(3).integers(0, 500, size=(6, 8))
    dec = DecodingConfig("sample")
    proc = watermark_processor(1234, model.config.vocab_size)
    marked, _ = generate_continuations(model, prompts, 40, dec, seed=0, logits_processor=proc, suppress_tokens=[500, 501])
    plain, _ = generate_continuations(model, prompts, 40, dec, seed=0, suppress_tokens=[500, 501])
    detector = wm.KGWDetector(wm.KGWConfig(hashing_key=1234), tokenizer=tok)
    z_marked, z_plain = detector.score_ids(list(marked)), detector.score_ids(list(plain))
    assert np.mean(z_marked) > np.mean(z_plain) + 2
    assert "1234" not in repr(proc)


@pytest.mark.parametrize("all_positions", [False, True])
def test_training_reaches_every_position_the_model_will_generate_at(all_positions):
    from collapseguard.simulate.lm.train import TrainConfig, train_model

    tok = synthetic_tokenizer(20)
    model = build_model("tiny", tok, 32, seed=0)  # 128 positions; blocks of 16 tokens
    before = model.transformer.wpe.weight.detach().clone()
    blocks = np.random.default_rng(1).integers(0, 20, size=(64, 16))
    train_model(model, blocks, TrainConfig(epochs=8, batch_size=8), seed=0, all_positions=all_positions)
    moved = ((model.transformer.wpe.weight.detach() - before).abs().sum(dim=1) > 0).numpy()
    if all_positions:
        assert moved.mean() > 0.9  # 64 batches at random offsets cover nearly all 128 positions
    else:  # a block's last position predicts nothing, so only 0..14 learn
        assert moved[:15].all() and not moved[15:].any()
