"""gen0_ppl_v1 against direct per-text transformers computations on a tiny random GPT-2."""

import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collapseguard.detectors.lm.perplexity import (  # noqa: E402
    Gen0PerplexityDetector,
    PerplexityConfig,
)
from collapseguard.detectors.lm.tiny import build_tiny_gpt2  # noqa: E402
from collapseguard.errors import CollapseguardError  # noqa: E402

WORDS = "the river flows past old stone mills while children count boats and herons wait".split()


def make_texts(n, seed=0, lo=3, hi=40):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_lm")
    tok, model = build_tiny_gpt2(root / "perf", make_texts(200, seed=1), vocab_size=300, n_positions=128, seed=0)
    from transformers import GPT2LMHeadModel

    torch.manual_seed(1)
    obs = GPT2LMHeadModel(model.config).eval()
    obs.save_pretrained(root / "obs")
    tok.save_pretrained(root / "obs")
    return root, tok, model, obs


def detector(root, **kw):
    kw.setdefault("min_tokens", 2)
    return Gen0PerplexityDetector(PerplexityConfig(model_dir=str(root / "perf"), device="cpu", **kw))


def per_token_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, :-1].double()


def test_batched_sorted_mean_log_prob_equals_per_text_transformers(tiny):
    root, tok, model, _ = tiny
    texts = make_texts(12, seed=2)
    got = detector(root, score="log_prob", batch_size=4, max_batch_tokens=64).score(texts)
    for text, g in zip(texts, got, strict=True):
        ids = tok(text)["input_ids"]
        with torch.no_grad():
            loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
        assert g == pytest.approx(-loss, abs=1e-5)


def test_window_config_equals_no_window_on_short_text(tiny):
    root, *_ = tiny
    texts = make_texts(5, seed=3, lo=3, hi=12)  # all shorter than a 32-token window
    full = detector(root).score_table(texts)
    win = detector(root, max_length=32, stride=8).score_table(texts)
    for a, b in zip(full, win, strict=True):
        assert a.mean_log_prob == pytest.approx(b.mean_log_prob, abs=1e-6)
        assert a.fast_detectgpt == pytest.approx(b.fast_detectgpt, abs=1e-6)


def test_sliding_windows_equal_strided_reference_on_long_text(tiny):
    root, tok, model, _ = tiny
    text = make_texts(1, seed=4, lo=200, hi=201)[0]
    ids = tok(text)["input_ids"]
    assert len(ids) > 128
    max_length, stride = 32, 12
    # Reference: the strided-perplexity recipe, each token scored once, labels -100 elsewhere.
    nll, count = 0.0, 0
    begin, scored = 0, 1
    while True:
        end = min(begin + max_length, len(ids))
        x = torch.tensor([ids[begin:end]])
        labels = x.clone()
        labels[0, : scored - begin] = -100
        with torch.no_grad():
            logp = torch.log_softmax(model(x).logits[0, :-1].double(), -1)
        tgt = labels[0, 1:]
        keep = tgt != -100
        nll -= logp[keep].gather(-1, tgt[keep][:, None]).sum().item()
        count += int(keep.sum())
        scored = end
        if end == len(ids):
            break
        begin = min(begin + stride, len(ids) - max_length)
    assert count == len(ids) - 1
    got = detector(root, max_length=max_length, stride=stride).score_table([text])[0]
    assert got.n_tokens == count
    assert got.mean_log_prob == pytest.approx(-nll / count, abs=1e-5)


def test_abstains_below_min_tokens_and_on_blank_text(tiny):
    root, tok, *_ = tiny
    texts = ["", "   \n\t", "the river", " ".join(WORDS)]
    d = detector(root, min_tokens=5)
    scores = d.score(texts)
    assert np.isnan(scores[:3]).all()
    assert np.isfinite(scores[3])
    assert len(tok("the river")["input_ids"]) - 1 < 5


def test_fast_detectgpt_equals_direct_reference(tiny):
    root, tok, model, _ = tiny
    texts = make_texts(6, seed=5, lo=8, hi=50)
    got = detector(root).score(texts)
    for text, g in zip(texts, got, strict=True):
        ids = tok(text)["input_ids"]
        lp = torch.log_softmax(per_token_logits(model, ids), -1)
        p = lp.exp()
        target = torch.tensor(ids[1:])
        ll = lp.gather(-1, target[:, None]).sum()
        mean_ref = (p * lp).sum(-1)
        var_ref = (p * lp.square()).sum(-1) - mean_ref.square()
        ref = ((ll - mean_ref.sum()) / var_ref.sum().sqrt()).item()
        assert g == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_log_rank_and_entropy_equal_direct_reference(tiny):
    root, tok, model, _ = tiny
    text = make_texts(1, seed=6, lo=30, hi=31)[0]
    s = detector(root).score_table([text])[0]
    ids = tok(text)["input_ids"]
    logits = per_token_logits(model, ids)
    order = torch.argsort(logits, dim=-1, descending=True)
    ranks = (order == torch.tensor(ids[1:])[:, None]).nonzero()[:, 1] + 1
    entropy = torch.distributions.Categorical(logits=logits).entropy()
    assert s.mean_log_rank == pytest.approx(ranks.double().log().mean().item(), abs=1e-6)
    assert s.mean_entropy == pytest.approx(entropy.mean().item(), abs=1e-5)


def test_binoculars_equals_direct_reference(tiny):
    root, tok, model, obs = tiny
    texts = make_texts(4, seed=7, lo=10, hi=40)
    d = detector(root, observer_dir=str(root / "obs"), score="binoculars")
    got = d.score(texts)
    for text, g in zip(texts, got, strict=True):
        ids = tok(text)["input_ids"]
        perf_lp = torch.log_softmax(per_token_logits(model, ids), -1)
        obs_p = torch.softmax(per_token_logits(obs, ids), -1)
        log_ppl = -perf_lp.gather(-1, torch.tensor(ids[1:])[:, None]).mean()
        x_ppl = -(obs_p * perf_lp).sum(-1).mean()
        assert -g == pytest.approx((log_ppl / x_ppl).item(), rel=1e-5)


def test_token_scores_cover_text_and_average_to_mean_log_prob(tiny):
    root, *_ = tiny
    text = " ".join(WORDS)
    d = detector(root)
    toks = d.token_scores(text)
    assert "".join(text[t["start"] : t["end"]] for t in toks) == text[toks[0]["start"] :]
    assert np.mean([t["log_prob"] for t in toks]) == pytest.approx(d.score_table([text])[0].mean_log_prob, abs=1e-6)
    assert all(t["rank"] >= 1 for t in toks)


def test_huge_record_is_capped_not_crashing(tiny):
    root, *_ = tiny
    big = "the river flows " * 700_000  # ~11 MB
    s = detector(root, max_text_tokens=200).score_table([big])[0]
    assert s.n_tokens == 199 and math.isfinite(s.fast_detectgpt)


def test_refuses_folder_without_weights(tmp_path, tiny):
    root, tok, model, _ = tiny
    model.config.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(CollapseguardError, match="no model weights"):
        Gen0PerplexityDetector(PerplexityConfig(model_dir=str(tmp_path)))
    with pytest.raises(CollapseguardError, match="not a model directory"):
        Gen0PerplexityDetector(PerplexityConfig(model_dir=str(tmp_path / "missing")))


def test_fingerprint_ignores_runtime_options_but_not_scoring_options(tiny):
    root, *_ = tiny
    a = detector(root, batch_size=2).fingerprint()
    assert a == detector(root, batch_size=16).fingerprint()
    assert a != detector(root, min_tokens=9).fingerprint()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_cpu_scores(tiny):
    root, *_ = tiny
    texts = make_texts(8, seed=8)
    cpu = detector(root).score_table(texts)
    gpu = Gen0PerplexityDetector(PerplexityConfig(model_dir=str(root / "perf"), device="cuda", min_tokens=2)).score_table(texts)
    for a, b in zip(cpu, gpu, strict=True):
        assert a.mean_log_prob == pytest.approx(b.mean_log_prob, abs=1e-4)
        assert a.fast_detectgpt == pytest.approx(b.fast_detectgpt, abs=1e-3)
