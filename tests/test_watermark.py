"""KGW watermark: z-scores equal transformers' WatermarkDetector; our processor is detected."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from collapseguard.detectors.watermark.kgw import (  # noqa: E402
    GreenListCache,
    KGWConfig,
    KGWDetector,
    KGWLogitsProcessor,
    binomial_p_values,
    normal_p_values,
    z_scores,
)
from collapseguard.detectors.watermark.normalize import normalize_text  # noqa: E402
from collapseguard.errors import CollapseguardError  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "fe", "gu", "ho", "ji", "be", "vo"]
WORDS = [a + b for a in SYLLABLES for b in SYLLABLES]  # 225 words, lower-case letters only
KEY = 15485863


def make_tokenizer(path):
    """A WordLevel tokenizer over WORDS (plus specials), saved and reloaded from `path`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "[BOS]", "[EOS]", "[PAD]"])
    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, size=30)) for _ in range(60)] + [" ".join(WORDS)]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]"
    )
    fast.save_pretrained(str(path))
    return fast


def make_model(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32, n_head=2, n_positions=256,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    model = GPT2LMHeadModel(cfg).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    tok = make_tokenizer(path)
    return path, tok, make_model(tok)


def prompts(tok, n=4):
    rng = np.random.default_rng(1)
    ids = [tok.convert_tokens_to_ids(list(rng.choice(WORDS, size=5))) for _ in range(n)]
    return torch.tensor(ids)


def generate(model, tok, *, processor=None, watermarking_config=None, n=4, new_tokens=80, seed=0):
    from transformers import LogitsProcessorList

    torch.manual_seed(seed)
    kwargs = {"logits_processor": LogitsProcessorList([processor])} if processor is not None else {}
    kwargs["suppress_tokens"] = tok.all_special_ids  # keep decode -> encode a round trip
    if watermarking_config is not None:
        kwargs["watermarking_config"] = watermarking_config
    with torch.no_grad():
        return model.generate(prompts(tok, n), do_sample=True, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)


CASES = [("lefthash", 1), ("selfhash", 1), ("selfhash", 4), ("lefthash", 3)]
_generated: dict = {}


@pytest.mark.parametrize("scheme,width", CASES)
@pytest.mark.parametrize("ignore_repeats", [True, False])
def test_z_scores_equal_transformers_detector(tiny, scheme, width, ignore_repeats):
    from transformers import WatermarkDetector, WatermarkingConfig

    _, tok, model = tiny
    wcfg = WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=KEY, seeding_scheme=scheme, context_width=width)
    if (scheme, width) not in _generated:
        _generated[scheme, width] = generate(model, tok, watermarking_config=wcfg, new_tokens=60)
    out = _generated[scheme, width]
    ref = WatermarkDetector(model.config, "cpu", wcfg, ignore_repeated_ngrams=ignore_repeats)(out, return_dict=True)

    ours = KGWDetector(KGWConfig(greenlist_ratio=0.25, hashing_key=KEY, seeding_scheme=scheme, context_width=width,
                                 ignore_repeated_ngrams=ignore_repeats), tokenizer=tok)  # fmt: skip
    got = ours.detect_ids(out.numpy())
    np.testing.assert_allclose([d["z_score"] for d in got], ref.z_score, atol=1e-6, rtol=0)
    np.testing.assert_array_equal([d["num_tokens_scored"] for d in got], ref.num_tokens_scored)
    np.testing.assert_array_equal([d["num_green_tokens"] for d in got], ref.num_green_tokens)
    np.testing.assert_allclose([d["p_value_normal"] for d in got], ref.p_value, atol=1e-6)
    assert np.mean(ref.z_score) > 2  # the reference sees the watermark too

    # The text path agrees when decoding and re-encoding gives the same tokens back.
    texts = tok.batch_decode(out, skip_special_tokens=True)
    assert [x.tolist() for x in ours.encode(texts)] == out.tolist()
    np.testing.assert_allclose(ours.score(texts), ref.z_score, atol=1e-6, rtol=0)


@pytest.mark.parametrize("scheme,width", [("lefthash", 1), ("selfhash", 1), ("selfhash", 3)])
def test_logits_processor_equals_transformers(scheme, width):
    from transformers import WatermarkLogitsProcessor

    vocab = 300
    ref = WatermarkLogitsProcessor(vocab_size=vocab, device="cpu", greenlist_ratio=0.3, bias=1.5,
                                   hashing_key=KEY, seeding_scheme=scheme, context_width=width)  # fmt: skip
    ours = KGWLogitsProcessor(KGWConfig(greenlist_ratio=0.3, hashing_key=KEY, seeding_scheme=scheme, context_width=width), vocab, bias=1.5)
    gen = torch.Generator().manual_seed(3)
    for step in range(5):
        ids = torch.randint(0, vocab, (3, 4 + step), generator=gen)
        scores = torch.randn(3, vocab, generator=gen)
        torch.testing.assert_close(ours(ids, scores), ref(ids, scores.clone()), atol=0, rtol=0)


def test_our_processor_is_detected_and_unwatermarked_or_wrong_key_is_not(tiny):
    _, tok, model = tiny
    cfg = KGWConfig(hashing_key=987654321, seeding_scheme="selfhash", context_width=2)
    proc = KGWLogitsProcessor(cfg, vocab_size=model.config.vocab_size, bias=2.0)
    marked = tok.batch_decode(generate(model, tok, processor=proc, n=4, seed=1), skip_special_tokens=True)
    plain = tok.batch_decode(generate(model, tok, n=4, seed=1), skip_special_tokens=True)
    detector = KGWDetector(cfg, tokenizer=tok)
    assert (detector.score(marked) > 4).all()
    assert (detector.score(plain) < 4).all()
    wrong = KGWDetector(KGWConfig(hashing_key=987654322, seeding_scheme="selfhash", context_width=2), tokenizer=tok)
    z_wrong = wrong.score(marked)
    assert (np.abs(z_wrong) < 4).all()
    assert abs(z_wrong.mean()) < 1.5  # four texts of ~80 tokens: the mean of N(0,1)/sqrt(6) scale
    assert all(d["prediction"] for d in detector.detect(marked))


def test_greenlists_match_transformers_seeding():
    from transformers import WatermarkLogitsProcessor

    vocab = 500
    ref = WatermarkLogitsProcessor(vocab_size=vocab, device="cpu", greenlist_ratio=0.25, hashing_key=KEY)
    cache = GreenListCache(vocab, 0.25, cache_mb=1)
    for token in [0, 7, 123, 499]:
        expected = np.zeros(vocab, bool)
        expected[ref._get_greenlist_ids(torch.tensor([token])).numpy()] = True
        seed = (KEY * token) % (2**64 - 1) & 0xFFFFFFFF
        np.testing.assert_array_equal(cache.mask(seed), expected)


def test_eviction_keeps_results_exact():
    cache = GreenListCache(4096, 0.25, cache_mb=0)  # capacity floors at 64 rows
    seeds = np.arange(300, dtype=np.uint64)
    targets = np.arange(300) * 13 % 4096
    first = cache.is_green(seeds, targets)
    again = GreenListCache(4096, 0.25, cache_mb=64).is_green(seeds, targets)
    np.testing.assert_array_equal(first, again)
    assert len(cache.rows) <= cache.capacity


def test_binomial_p_value_is_exact_tail_and_normal_understates_short_texts():
    gamma = 0.25
    for scored, green in [(10, 7), (16, 12), (50, 30), (200, 70)]:
        tail = sum(math.comb(scored, k) * gamma**k * (1 - gamma) ** (scored - k) for k in range(green, scored + 1))
        assert binomial_p_values(np.array([green]), np.array([scored]), gamma)[0] == pytest.approx(tail, rel=1e-9)
    # Short texts at z > 4: the normal approximation gives a far smaller (over-confident) p.
    z = z_scores(np.array([8]), np.array([10]), gamma)
    assert z[0] > 4
    assert binomial_p_values(np.array([8]), np.array([10]), gamma)[0] > 10 * normal_p_values(z)[0]
    # Long texts: the two agree closely at moderate z.
    scored = 200_000
    green = int(gamma * scored + 2 * math.sqrt(scored * gamma * (1 - gamma)))
    exact = binomial_p_values(np.array([green]), np.array([scored]), gamma)[0]
    approx = normal_p_values(z_scores(np.array([green]), np.array([scored]), gamma))[0]
    assert exact == pytest.approx(approx, rel=0.05)


def test_normalisation_folds_homoglyphs_and_zero_width():
    assert normalize_text("p\u0430ypal") == "paypal"  # Cyrillic а
    assert normalize_text("\u039fK \u03bfk") == "OK ok"  # Greek Ο, ο
    assert normalize_text("ka\u200blo\u200d\ufeff") == "kalo"
    assert normalize_text("ｋａ") == "ka"  # full-width forms (NFKC)


def test_normalisation_restores_the_watermark_after_evasion(tiny):
    _, tok, model = tiny
    cfg = KGWConfig(hashing_key=KEY)
    proc = KGWLogitsProcessor(cfg, vocab_size=model.config.vocab_size)
    texts = tok.batch_decode(generate(model, tok, processor=proc, n=3, seed=2), skip_special_tokens=True)
    evaded = [t.replace("o", "\u043e").replace("a", "a\u200b") for t in texts]  # Cyrillic о, zero-width
    z = KGWDetector(cfg, tokenizer=tok).score(texts)
    np.testing.assert_allclose(KGWDetector(cfg, tokenizer=tok).score(evaded), z)
    raw = KGWDetector(KGWConfig(hashing_key=KEY, normalize=False), tokenizer=tok).score(evaded)
    assert (raw < z).all()


def test_abstains_on_empty_and_short_texts(tiny):
    path, tok, _ = tiny
    det = KGWDetector(KGWConfig(min_tokens_scored=5), tokenizer=str(path))  # loaded from the local dir
    z = det.score(["", "   ", "kalo", "kalo mine suta ripo dafe guho jibe"])
    assert np.isnan(z[:3]).all() and np.isfinite(z[3])
    records = det.detect([""])
    assert records[0]["prediction"] is None and records[0]["num_tokens_scored"] == 0


def test_bad_settings_raise_one_line_errors(tmp_path):
    with pytest.raises(CollapseguardError, match="seeding scheme"):
        KGWConfig(seeding_scheme="lefthsh")
    with pytest.raises(CollapseguardError, match="greenlist_ratio"):
        KGWConfig(greenlist_ratio=1.5)
    with pytest.raises(CollapseguardError, match="hashing_key"):
        KGWConfig(hashing_key=-1)
    with pytest.raises(CollapseguardError, match="tokenizer directory not found"):
        KGWDetector(KGWConfig(), tokenizer=tmp_path / "missing")
    with pytest.raises(CollapseguardError, match="not a loadable tokenizer"):
        KGWDetector(KGWConfig(), tokenizer=tmp_path)


def test_fingerprint_and_repr_hide_the_key(tiny):
    _, tok, _ = tiny
    det = KGWDetector(KGWConfig(hashing_key=424242), tokenizer=tok)
    assert "424242" not in det.fingerprint()
    assert det.fingerprint() != KGWDetector(KGWConfig(hashing_key=424243), tokenizer=tok).fingerprint()
    assert "424242" not in repr(KGWLogitsProcessor(det.config, 100))


def test_binomial_tail_equals_scipy_without_importing_it():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    scored = rng.integers(0, 3000, 5000)
    green = (rng.random(5000) * (scored + 3)).astype(int) - 1
    for gamma in (0.1, 0.25, 0.5, 0.9):
        ours = binomial_p_values(green, scored, gamma)
        ref = stats.binom.sf(green - 1, scored, gamma)
        assert np.isnan(ours[scored == 0]).all()
        ok = (scored > 0) & (ref > 1e-200)
        np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9, atol=0)
        assert np.all(ours[(scored > 0) & ~ok] < 1e-190)
    z = rng.normal(0, 5, 1000)
    np.testing.assert_allclose(normal_p_values(z), stats.norm.sf(z), rtol=1e-12)
    code = ("import sys, numpy as np; from collapseguard.detectors.watermark.kgw import binomial_p_values, "
            "normal_p_values; binomial_p_values(np.array([8]), np.array([10]), 0.25); normal_p_values(np.array([1.0])); "
            "print(sorted(m for m in sys.modules if m.startswith('scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
