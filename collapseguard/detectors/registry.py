"""Build a detector by its versioned name from a flat dict of options (what the CLI collects).

Other detectors' modules are imported only when asked for, so a missing optional extra only
matters to the detector that needs it.
"""

from __future__ import annotations

import dataclasses

from collapseguard.errors import CollapseguardError, check_choice


def _fill(config_cls, options: dict, detector: str):
    """A config dataclass from `options`, refusing unknown keys with the valid ones."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise CollapseguardError(
            f"{detector}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    try:
        return config_cls(**options)
    except TypeError as exc:
        raise CollapseguardError(f"{detector}: {exc}") from None


def _drop_none(options: dict) -> dict:
    return {k: v for k, v in options.items() if v is not None}


def _pop_tokenizer(options: dict, detector: str):
    """The watermark detectors' tokenizer folder: -o tokenizer_dir=DIR, else --model DIR."""
    tokenizer = options.pop("tokenizer_dir", None) or options.pop("model_dir", None)
    if tokenizer is None:
        raise CollapseguardError(f"{detector} needs the generating model's tokenizer: pass --model DIR (or -o tokenizer_dir=DIR; "
                                 "in a policy: options = { tokenizer_dir = \"DIR\" })")
    return tokenizer


def build_gen0_ppl(options: dict):
    from collapseguard.detectors.lm.perplexity import Gen0PerplexityDetector, PerplexityConfig

    options = _drop_none(options)
    if "model_dir" not in options:
        raise CollapseguardError("gen0_ppl_v1 needs a model: pass --model DIR (in a policy: options = { model_dir = \"DIR\" }), "
                                 "a folder `collapseguard gen0 train` wrote")
    return Gen0PerplexityDetector(_fill(PerplexityConfig, options, "gen0_ppl_v1"))


def build_kgw(options: dict):
    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWDetector

    options = _drop_none(options)
    tokenizer = _pop_tokenizer(options, "kgw_v1")
    return KGWDetector(_fill(KGWConfig, options, "kgw_v1"), tokenizer=tokenizer)


def build_synthid(options: dict):
    """synthid_v1: keys from -o keys=K1,K2,... or the COLLAPSEGUARD_SYNTHID_KEYS environment variable."""
    import os

    from collapseguard.detectors.watermark.synthid import (
        KEYS_ENV,
        SynthIDConfig,
        SynthIDDetector,
        parse_keys,
    )

    options = _drop_none(options)
    tokenizer = _pop_tokenizer(options, "synthid_v1")
    options["keys"] = parse_keys(options.get("keys", os.environ.get(KEYS_ENV)))
    return SynthIDDetector(_fill(SynthIDConfig, options, "synthid_v1"), tokenizer=tokenizer)


def build_minhash(options: dict):
    from collapseguard.detectors.dedup.ledger import MinHashDetector

    return MinHashDetector.from_options(**_drop_none(options))


def build_learned(options: dict):
    """learned_v1: a folder `collapseguard detect train` wrote (--model DIR)."""
    from collapseguard.detectors.learned import LearnedConfig, LearnedDetector

    options = _drop_none(options)
    if "model_dir" not in options:
        raise CollapseguardError("learned_v1 needs a trained folder: pass --model DIR (in a policy: options = { model_dir = \"DIR\" }), "
                                 "from `collapseguard detect train`")
    return LearnedDetector(_fill(LearnedConfig, options, "learned_v1"))


BUILDERS = {"gen0_ppl_v1": build_gen0_ppl, "kgw_v1": build_kgw, "synthid_v1": build_synthid,
            "minhash_v1": build_minhash, "learned_v1": build_learned}


def build_detector(name: str, options: dict | None = None):
    """The detector `name` configured by `options` (config field -> value; None = default)."""
    check_choice("detector", name, BUILDERS)
    return BUILDERS[name](dict(options or {}))
