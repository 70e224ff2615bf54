"""Every command that writes follows the output rule (docs/outputs.md, "Outputs: what a command may
overwrite"): bad input exits 2 with one stderr line and no traceback, inputs stay
byte-identical (sha256), a failed argument check writes nothing, and a folder holding an
unrelated file survives every command pointed at it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from bad_input import invoke, refused, snapshot

pytest.importorskip("torch")
pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"

LM_FAST = ["--block-size", "8", "--max-blocks", "4", "--test-blocks", "2", "--epochs", "1", "--device", "cpu",
           "--threads", "1"]
TEXTS = [f"line {i} of plain human text about the cat and the mat number {i}" for i in range(12)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from collapseguard.detectors.lm.tiny import build_tiny_gpt2

    path = tmp_path_factory.mktemp("cmdmodel") / "m"
    build_tiny_gpt2(path, TEXTS * 3, vocab_size=300)
    return path


@pytest.fixture
def world(tmp_path, model):
    """tmp_path with human.txt, machine.txt, empty.txt and notes/thesis.tex (unrelated)."""
    (tmp_path / "human.txt").write_text("\n".join(TEXTS[:6]) + "\n")
    (tmp_path / "machine.txt").write_text("\n".join(TEXTS[6:]) + "\n")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("years of work\n")
    return tmp_path


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def det(model):
    return ["--model", model, "--min-tokens", "1", "--threads", "1"]


# ---- every writing command pointed at a folder holding an unrelated file -----------------------
def dir_commands(w, model):
    """(args, out-folder) for commands whose output is a folder."""
    notes = w / "notes"
    return {
        "simulate run": ["simulate", "run", "--generations", "2", "--seeds", "2", "--out", notes],
        "simulate sweep": ["simulate", "sweep", "--world", "gaussian", "--generations", "2", "--seeds", "2",
                           "--human-fraction", "0", "--policy", "replace", "--out", notes],
        "simulate run --world lm": ["simulate", "run", "--world", "lm", "--generations", "1", *LM_FAST, "--out", notes],
        "gen0 train": ["gen0", "train", *LM_FAST, "--out", notes],
        "detect train": ["detect", "train", "--human", w / "human.txt", "--machine", w / "machine.txt",
                         "--features", "style", "--out", notes],
    }


def file_commands(w, model):
    """(args) for commands whose output is a file; --out is appended."""
    return {
        "detect score": ["detect", "score", w / "human.txt", *det(model)],
        "detect calibrate": ["detect", "calibrate", "--human", w / "human.txt", *det(model)],
        "detect combine": ["detect", "combine", "--human", w / "human.txt", "--machine", w / "machine.txt", *det(model)],
    }


@pytest.mark.parametrize("name", ["simulate run", "simulate sweep", "simulate run --world lm", "gen0 train",
                                  "detect train"])
def test_folder_with_unrelated_file_is_refused(world, model, name):
    args = dir_commands(world, model)[name]
    refused(args, world, "already holds files this command did not write; pass --overwrite")


@pytest.mark.parametrize("name", ["detect score", "detect calibrate", "detect combine"])
def test_unrelated_file_or_folder_is_refused(world, model, name):
    args = file_commands(world, model)[name]
    refused([*args, "--out", world / "notes" / "thesis.tex"], world, "already exists; pass --overwrite")
    refused([*args, "--out", world / "notes"], world, "is a directory")


def test_ledger_add_on_an_unrelated_folder_leaves_it_alone(world):
    before = snapshot(world)
    res = invoke(["ledger", "add", world / "notes", world / "human.txt"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert snapshot(world) == before


@pytest.mark.parametrize("name", ["simulate run", "gen0 train"])
def test_overwrite_writes_into_the_folder_and_deletes_nothing(world, model, name):
    args = dir_commands(world, model)[name]
    res = invoke([*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (world / "notes" / "thesis.tex").read_text() == "years of work\n"
    marker = json.loads((world / "notes" / ".collapseguard-output.json").read_text())
    assert marker["command"] == name


# ---- the output rule: resume/rerun with the same settings, refuse other settings ----------------
def test_gen0_train_reruns_into_its_own_folder_and_never_deletes(world):
    out = world / "gen0"
    assert invoke(["gen0", "train", *LM_FAST, "--out", out]).exit_code == 0
    (out / "my-notes.txt").write_text("mine")  # a user's file beside the model
    res = invoke(["gen0", "train", *LM_FAST, "--out", out])  # same settings: a rerun
    assert res.exit_code == 0, res.output
    assert (out / "my-notes.txt").read_text() == "mine" and (out / "model.safetensors").exists()
    refused(["gen0", "train", *LM_FAST[:-4], "--seed", "1", "--device", "cpu", "--threads", "1", "--out", out],
            world, "other settings (seed: 0 -> 1); pass --overwrite")


def test_simulate_run_rerun_same_settings_ok_other_settings_refused(world):
    out = world / "run"
    args = ["simulate", "run", "--generations", "2", "--seeds", "2", "--out", out]
    assert invoke(args).exit_code == 0
    assert invoke(args).exit_code == 0
    refused([*args[:-2], "--samples", "50", "--out", out], world, "samples: 100 -> 50")


def test_detect_score_reruns_onto_its_own_output_only(world, model):
    out = world / "s.parquet"
    args = ["detect", "score", world / "human.txt", *det(model), "--out", out]
    assert invoke(args).exit_code == 0
    assert invoke(args).exit_code == 0  # same command and settings: replaced
    refused([*args, "--column", "body"], world, "already exists; pass --overwrite")
    assert invoke([*args, "--stride", "4", "--overwrite"]).exit_code == 0


# ---- never write onto an input -------------------------------------------------------------
def test_detect_never_writes_onto_an_input(world, model):
    os.link(world / "human.txt", world / "hard.txt")
    for out in ("human.txt", "hard.txt"):
        for cmd in file_commands(world, model).values():
            refused([*cmd, "--out", world / out, "--overwrite"], world, "would overwrite the input")


def test_folders_around_inputs_are_refused(world, model):
    corpus = world / "data" / "corpus.txt"
    corpus.parent.mkdir()
    corpus.write_text("\n".join(TEXTS * 4) + "\n")
    for out in (world / "data", world):  # folders holding the input (a sibling folder is fine)
        refused(["simulate", "run", "--world", "lm", "--corpus", corpus, *LM_FAST, "--out", out, "--overwrite"],
                world, "would overwrite the input")
        refused(["gen0", "train", "--corpus", corpus, *LM_FAST, "--out", out, "--overwrite"], world,
                "would overwrite the input")
    refused(["gen0", "train", "--base-model", model, *LM_FAST, "--out", model, "--overwrite"], world,
            "would overwrite the input")


# ---- failed argument checks write nothing, before any model or data is loaded -----------------
@pytest.mark.parametrize("extra, needle", [
    (["--fpr", "1.5"], "--fpr 1.5: must lie strictly between 0 and 1"),
    (["--fpr", "0"], "--fpr 0.0"),
    (["--human", "missing.txt"], "missing.txt: no such file or directory (--human)"),
])
def test_detect_calibrate_checks_before_scoring(world, model, extra, needle):
    human = [] if "--human" in extra else ["--human", world / "human.txt"]
    refused(["detect", "calibrate", *human, *extra, *det(model), "--out", world / "cal.json"], world, needle)


def test_detect_checks_need_no_model(world):
    refused(["detect", "score", world / "missing.txt", "--model", world / "no-model"], world,
            "missing.txt: no such file or directory (INPUT)")
    refused(["detect", "evaluate", "--human", world / "human.txt", "--machine", world / "machine.txt",
             "--model", world / "no-model"], world, "not a model directory")
    refused(["detect", "evaluate", "--human", world / "human.txt", "--machine", world / "machine.txt",
             "--model", world / "no-model", "--fpr", "2"], world, "no-model")


def test_corrupt_model_weights_are_one_line(world, model):
    import shutil

    bad = world / "bad-model"
    shutil.copytree(model, bad)
    (bad / "model.safetensors").write_bytes(b"garbage")
    refused(["detect", "score", world / "human.txt", "--model", bad], world, "cannot load tokenizer/model")


# ---- empty inputs: an error for whole inputs, an abstention for empty texts --------------------
@pytest.mark.parametrize("name", ["detect score", "detect calibrate", "detect combine"])
def test_empty_inputs_are_errors(world, model, name):
    args = [str(a).replace("human.txt", "empty.txt") for a in file_commands(world, model)[name]]
    refused([*args, "--out", world / "x.out"], world, "no text records")


def test_detect_evaluate_with_empty_machine_text(world, model):
    refused(["detect", "evaluate", "--human", world / "human.txt", "--machine", world / "empty.txt", *det(model)],
            world, "no text records (--machine)")


def test_watermark_empty_input_and_small_vocab(world, model):
    refused(["watermark", "detect", world / "empty.txt", "--tokenizer", model, "--hashing-key", "7"], world,
            "no text records")
    refused(["watermark", "detect", world / "human.txt", "--tokenizer", model, "--hashing-key", "7",
             "--vocab-size", "10"], world, "smaller than the tokenizer's")
    res = invoke(["watermark", "detect", world / "human.txt", "--tokenizer", model, "--hashing-key", "7", "--json"])
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == 6


def test_lm_empty_corpus_and_column_hint(world):
    refused(["gen0", "train", "--corpus", world / "empty.txt", *LM_FAST, "--out", world / "g"], world, "empty corpus")
    shard = world / "c.jsonl"
    shard.write_text(json.dumps({"body": "x"}) + "\n")
    refused(["simulate", "run", "--world", "lm", "--corpus", shard, *LM_FAST, "--out", world / "g"], world,
            "pass --text-column")


def test_outputs_follow_the_umask(world):
    old = os.umask(0o002)
    try:
        assert invoke(["simulate", "run", "--generations", "1", "--seeds", "1", "--out", world / "u"]).exit_code == 0
    finally:
        os.umask(old)
    assert oct(os.stat(world / "u" / "results.parquet").st_mode & 0o777) == oct(0o664)


def test_detect_train_failing_after_the_claim_leaves_no_folder(world):
    # 6 texts per class: refused by the trainer (it needs 10) after the output was claimed
    refused(["detect", "train", "--human", world / "human.txt", "--machine", world / "machine.txt",
             "--features", "style", "--out", world / "learned"], world, "needs >= 10 texts")


def test_detect_evaluate_refuses_when_a_class_all_abstains(world, model):
    short = world / "short.txt"
    short.write_text("a\nb\n")
    refused(["detect", "evaluate", "--human", world / "human.txt", "--machine", short, "--model", model,
             "--min-tokens", "4"], world, "no machine text was scored (all 2 abstained)")


def test_cuda_asked_for_without_cuda_is_one_line(world):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    fast = [a if a != "cpu" else "cuda" for a in LM_FAST]
    refused(["gen0", "train", *fast, "--out", world / "g"], world, "--device cuda: CUDA is not available")
    refused(["simulate", "run", "--world", "lm", *fast, "--out", world / "g"], world, "CUDA is not available")


def test_scan_filter_curate_policy_provenance_leave_an_unrelated_folder_alone(world):
    """The guard commands, pointed at a folder (or file) holding unrelated work, refuse it."""
    pytest.importorskip("datasketch")
    data, gen = world / "data", world / "gen"
    data.mkdir()
    gen.mkdir()
    (data / "h.txt").write_text("\n".join(TEXTS[:6]) + "\n")
    (gen / "m.txt").write_text("\n".join(TEXTS[6:]) + "\n")
    assert invoke(["ledger", "add", world / "gl", gen / "m.txt"]).exit_code == 0
    policy = world / "p.toml"
    policy.write_text(f'text_column = "text"\nmax_synthetic_share = 0.05\n[[detectors]]\nname = "minhash_v1"\n'
                      f'threshold = 0.8\noptions = {{ ledger = "{world / "gl"}" }}\n')
    assert invoke(["scan", data, "--policy", policy, "--out", world / "scan"]).exit_code == 0
    notes, thesis = world / "notes", world / "notes" / "thesis.tex"
    folder_needle = "already holds files this command did not write; pass --overwrite"
    refused(["scan", data, "--policy", policy, "--out", notes], world, folder_needle)
    refused(["filter", data, "--attributes", world / "scan", "--out", notes], world, folder_needle)
    refused(["curate", "--allow-unsigned", "--human", data, "--synthetic", gen, "--human-fraction", "0.5", "--size", "4",
             "--out", notes], world, folder_needle)
    refused(["policy", "calibrate", "--policy", policy, "--human", data / "h.txt", "--fpr", "0.01", "--out", thesis],
            world, "already exists")
    refused(["provenance", "build", data, "--out", thesis], world, "already exists")
    refused(["provenance", "keygen", "--out", thesis], world, "already exists")


def test_detect_calibrate_reruns_onto_its_own_calibration_only(world, model):
    out = world / "cal.json"
    # six human texts support an FPR of 1/7 at best (README, Calibration)
    args = ["detect", "calibrate", "--human", world / "human.txt", *det(model), "--fpr", "0.2", "--out", out]
    assert invoke(args).exit_code == 0
    assert invoke(args).exit_code == 0  # same detector, texts and FPR: a rerun
    refused([*args, "--fpr", "0.3"], world, "already exists; pass --overwrite")
    refused([*args, "--stride", "4"], world, "another detector, texts or groups; pass --overwrite")
    assert invoke([*args, "--stride", "4", "--overwrite"]).exit_code == 0
