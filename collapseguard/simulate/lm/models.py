"""GPT-2-style causal LMs from presets, or a local Hugging Face causal-LM directory as the base.

Weights are read with safetensors, or with ``torch.load(weights_only=True)`` for a pickle
checkpoint; anything else is refused. Nothing is fetched from the hub.
"""

from __future__ import annotations

from pathlib import Path

from collapseguard.errors import CollapseguardError, check_choice

# n_layer, n_head, n_embd; `small` is GPT-2 small (124M parameters with its vocabulary)
PRESETS = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64),
    "mini": dict(n_layer=4, n_head=4, n_embd=128),
    "base": dict(n_layer=6, n_head=8, n_embd=256),
    "small": dict(n_layer=12, n_head=12, n_embd=768),
}


def quiet_transformers() -> None:
    """No progress bars or advisory warnings from transformers in our output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def build_model(preset: str, tokenizer, context: int, seed: int):
    """A freshly initialised GPT-2-style model (seeded) sized by `preset` for `tokenizer`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    quiet_transformers()
    check_choice("preset", preset, PRESETS)
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=max(context, 128), bos_token_id=eos,
                        eos_token_id=eos, pad_token_id=eos, **PRESETS[preset])
    return GPT2LMHeadModel(config)


def _weights_kind(path: Path) -> str:
    names = {p.name for p in path.iterdir()}
    if any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names):
        return "safetensors"
    if any(n.endswith(".bin") or n.endswith(".pt") or n.endswith(".pth") for n in names):
        return "pickle"
    return "none"


def _load_pickle_weights(path: Path):
    """State dict of a pickle checkpoint, refusing anything but plain tensors."""
    import torch

    files = sorted(p for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
    state = {}
    for f in files:
        try:
            part = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CollapseguardError(
                f"{f}: pickle checkpoint that cannot be loaded with weights_only=True ({type(exc).__name__}); "
                "re-save the model with save_pretrained(safe_serialization=True)"
            ) from None
        if not isinstance(part, dict):
            raise CollapseguardError(f"{f}: not a state dict of tensors; re-save with save_pretrained")
        state.update(part)
    return state


def load_model_dir(path: str | Path, tokenizer=None):
    """A causal LM from a local directory (config.json plus safetensors or a weights-only pickle)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    quiet_transformers()
    path = Path(path)
    if not path.is_dir():
        raise CollapseguardError(f"{path}: not a model directory; pass a directory saved with save_pretrained")
    if not (path / "config.json").exists():
        raise CollapseguardError(f"{path}: no config.json; pass a directory saved with save_pretrained")
    kind = _weights_kind(path)
    if kind == "none":
        raise CollapseguardError(f"{path}: no model weights (model.safetensors) in the directory; train or copy the weights first")
    try:
        if kind == "safetensors":
            model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        else:
            state = _load_pickle_weights(path)
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path), local_files_only=True))
            missing, _ = model.load_state_dict(state, strict=False)
            if [m for m in missing if "lm_head" not in m]:
                raise CollapseguardError(f"{path}: the checkpoint lacks {len(missing)} weights of the model (e.g. {missing[0]}); re-save it")
            model.tie_weights()
    except CollapseguardError:
        raise
    except Exception as exc:
        raise CollapseguardError(f"{path}: cannot load the model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if tokenizer is not None:
        check_vocab(model, tokenizer, path)
    return model.to(torch.float32)


def check_vocab(model, tokenizer, where) -> None:
    """Refuse a tokenizer whose ids the model cannot embed."""
    n_model, n_tok = model.get_input_embeddings().weight.shape[0], len(tokenizer)
    if n_tok > n_model:
        raise CollapseguardError(
            f"{where}: tokenizer has {n_tok} tokens but the model embeds only {n_model}; pass the tokenizer saved with this model"
        )


def save_model(model, tokenizer, out: str | Path) -> None:
    """save_pretrained (safetensors) for model and tokenizer into `out`.

    Written into a temporary folder first; a new `out` is renamed into place whole, an
    existing one receives each file by an atomic rename. Files in `out` that this save does
    not write are left alone (the caller decided `out` may be written: see io.outputs).
    """
    from collapseguard.io.atomic import atomic_folder

    with atomic_folder(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
