"""Bad input to the LM commands: one line on stderr, exit code 2, no traceback."""

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

from click.testing import CliRunner  # noqa: E402

from collapseguard.cli.main import cli  # noqa: E402

FAST = ["--block-size", "8", "--max-blocks", "4", "--test-blocks", "2", "--epochs", "1", "--device", "cpu", "--threads", "1"]


def run(*args):
    res = CliRunner().invoke(cli, list(args))
    return res, (res.stderr if hasattr(res, "stderr") else res.output).strip()


def assert_one_line_error(res, text, needle):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0] and text.splitlines()[-1] == errors[0], text


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    res, err = run("gen0", "train", "--corpus", str(empty), "--out", str(tmp_path / "m"), *FAST)
    assert_one_line_error(res, err, "empty corpus")


def test_corpus_smaller_than_one_block(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("just a few words\n")
    res, err = run("simulate", "run", "--world", "lm", "--corpus", str(small), "--block-size", "64",
                   "--out", str(tmp_path / "o"))
    assert_one_line_error(res, err, "smaller than one block")


def test_model_dir_without_weights(tmp_path):
    from collapseguard.simulate.lm.models import build_model
    from collapseguard.simulate.lm.tokenizer import synthetic_tokenizer

    tok = synthetic_tokenizer(512)
    build_model("tiny", tok, 16, 0).config.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    res, err = run("gen0", "train", "--base-model", str(tmp_path / "base"), "--out", str(tmp_path / "m"), *FAST)
    assert_one_line_error(res, err, "no model weights")


def _pickle_dir(tmp_path, payload):
    import torch

    from collapseguard.simulate.lm.models import build_model
    from collapseguard.simulate.lm.tokenizer import synthetic_tokenizer

    tok = synthetic_tokenizer(512)
    model = build_model("tiny", tok, 16, 0)
    d = tmp_path / "base"
    model.config.save_pretrained(d)
    tok.save_pretrained(d)
    torch.save(payload(model), d / "pytorch_model.bin")
    return d, model


class NotWeights:
    """An arbitrary pickled object: torch.load(weights_only=True) must refuse it."""


def test_pickle_only_checkpoint_refused(tmp_path):
    d, _ = _pickle_dir(tmp_path, lambda m: {"obj": NotWeights()})
    res, err = run("gen0", "train", "--base-model", str(d), "--out", str(tmp_path / "m"), *FAST)
    assert_one_line_error(res, err, "weights_only=True")


def test_weights_only_pickle_checkpoint_loads(tmp_path):
    import torch

    from collapseguard.simulate.lm.models import load_model_dir

    d, model = _pickle_dir(tmp_path, lambda m: m.state_dict())
    loaded = load_model_dir(d)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_tokenizer_model_vocab_mismatch(tmp_path):
    from collapseguard.simulate.lm.models import build_model
    from collapseguard.simulate.lm.tokenizer import synthetic_tokenizer

    small, big = synthetic_tokenizer(10), synthetic_tokenizer(600)
    d = tmp_path / "base"
    build_model("tiny", small, 16, 0).save_pretrained(d)
    small.save_pretrained(d)
    big.save_pretrained(tmp_path / "tok")
    text = tmp_path / "c.txt"
    text.write_text(" ".join(f"t{i % 600}" for i in range(400)) + "\n")
    res, err = run("gen0", "train", "--corpus", str(text), "--base-model", str(d), "--tokenizer", str(tmp_path / "tok"),
                   "--out", str(tmp_path / "m"), *FAST)
    assert_one_line_error(res, err, "tokenizer has 602 tokens")


def test_bad_choices(tmp_path):
    res, err = run("simulate", "run", "--world", "lm", "--decoding", "greedy", "--out", str(tmp_path / "o"))
    assert_one_line_error(res, err, "unknown decoding")
    res, err = run("simulate", "run", "--world", "lm", "--preset", "huge", "--out", str(tmp_path / "o"), *FAST)
    assert_one_line_error(res, err, "unknown preset")


def test_gen0_train_writes_a_loadable_reference_model(tmp_path):
    import json

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from collapseguard.simulate.lm.train import corpus_perplexity

    corpus = tmp_path / "c.jsonl"
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    corpus.write_text("".join(json.dumps({"text": " ".join(rng.choice(words, 12))}) + "\n" for _ in range(40)))
    out = tmp_path / "m"
    res = CliRunner().invoke(cli, ["gen0", "train", "--corpus", str(corpus), "--out", str(out), "--vocab-size", "300",
                                   "--block-size", "8", "--epochs", "1", "--device", "cpu", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout.strip().splitlines()[-1])
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert len(tok) <= model.config.vocab_size
    ids = tok(["alpha beta gamma delta eps alpha beta gamma delta"], add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids[0][:8]])
    with torch.no_grad():
        ref = float(torch.exp(model(input_ids=x, labels=x).loss))
    assert corpus_perplexity(model, x.numpy()) == pytest.approx(ref, rel=1e-5)
    assert info["test_perplexity"] > 1.0
