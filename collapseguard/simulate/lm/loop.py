"""The language-model collapse loop (Shumailov et al. 2024, section on OPT-125m / WikiText-2).

Generation g's model M_g is the base model (a seeded fresh preset, or a local HF directory)
trained on D_g. D_0 is the original training blocks. M_g continues every original training
block with `block` new tokens, giving samples S_g as large as the original corpus, and
D_{g+1} is mixed from S_g per the policy:

* fresh_{g+1} = a random (1 - human_fraction) share of S_g plus a fresh random
  human_fraction share of the original blocks (the paper's 10% variant);
* ``replace``: D_{g+1} = fresh_{g+1}; ``accumulate``: D_{g+1} = D_g + fresh_{g+1};
  ``subsample``: D_{g+1} = |D_0| blocks drawn from D_0 + fresh_1 + ... + fresh_{g+1}.

Each generation writes ``seed_<s>/gen_<g>/`` (model/, corpus.parquet, samples.parquet,
metrics.json) and then a ``DONE`` marker; a rerun skips finished generations, replaying only
the (seeded, cheap) mixing, so a killed loop resumes where it stopped.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError, check_choice
from collapseguard.io.atomic import write_parquet_atomic, write_text_atomic
from collapseguard.simulate.lm.generate import DecodingConfig
from collapseguard.simulate.lm.guard import GuardConfig
from collapseguard.simulate.lm.train import TrainConfig

WORKFLOWS = ("replace", "accumulate", "subsample")
SYNTHETIC_DEFAULT_BLOCKS = 512
THROUGHPUT_METRICS = ("train_tokens_per_s", "generation_tokens_per_s")


@dataclass(frozen=True)
class LMConfig:
    """Everything one LM loop needs; the CLI fills the same dataclass."""

    corpus: str = "synthetic"  # "synthetic" or a path (text/jsonl/parquet/saved datasets/WikiText-2 dir)
    test_corpus: str | None = None
    text_column: str = "text"
    preset: str = "tiny"
    base_model: str | None = None  # local HF causal-LM dir to fine-tune instead of a fresh preset
    tokenizer: str | None = None  # local tokenizer dir; default: the base model's, or trained here
    vocab_size: int = 4096
    block_size: int = 64
    max_blocks: int | None = None  # cap on training blocks (synthetic default 512)
    test_blocks: int = 128
    generations: int = 5
    seeds: int = 1
    seed: int = 0
    workflow: str = "replace"
    human_fraction: float = 0.0
    train: TrainConfig = field(default_factory=TrainConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    gen_batch_size: int = 32
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default (1 is fastest on a busy machine)
    watermark_key: int | None = field(default=None, repr=False)  # KGW key; never recorded
    guard: GuardConfig | None = None  # the real guard between each generation's crawl and training

    def record(self) -> dict:
        """JSON-able settings (what a resumed run must match); the watermark key is left out."""
        d = asdict(self)
        for k in ("device", "seeds", "threads", "watermark_key"):
            d.pop(k)
        d["watermark"] = self.watermark_key is not None
        if self.guard is None:  # unguarded runs keep the settings record they always had
            d.pop("guard")
        return d

    def __post_init__(self):
        check_choice("policy", self.workflow, WORKFLOWS)
        if not 0.0 <= self.human_fraction <= 1.0:
            raise CollapseguardError(f"--human-fraction must lie in [0, 1], got {self.human_fraction}")
        if self.generations < 0:
            raise CollapseguardError(f"--generations must be 0 or more, got {self.generations}")
        for name in ("seeds", "block_size", "test_blocks", "gen_batch_size"):
            if getattr(self, name) < 1:
                raise CollapseguardError(f"--{name.replace('_', '-')} must be a positive whole number, got {getattr(self, name)}")
        if self.block_size < 2:
            raise CollapseguardError(f"--block-size must be at least 2, got {self.block_size}")
        if self.max_blocks is not None and self.max_blocks < 1:
            raise CollapseguardError(f"--max-blocks must be positive, got {self.max_blocks}")
        if self.vocab_size < 2:
            raise CollapseguardError(f"--vocab-size must be at least 2, got {self.vocab_size}")
        if not self.base_model:
            from collapseguard.simulate.lm.models import PRESETS

            check_choice("preset", self.preset, PRESETS)
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise CollapseguardError(f"--device {self.device!r}: choose auto, cpu or cuda")
        if self.threads < 0:
            raise CollapseguardError(f"--threads must be 0 (torch's default) or more, got {self.threads}")


@dataclass
class Blocks:
    """Token blocks with provenance: origin, the generation and model that wrote them, decoding."""

    ids: np.ndarray  # (n, block) int64
    origin: np.ndarray  # "human" | "synthetic" (io.columns)
    generation: np.ndarray  # int: the model generation that wrote it; -1 for human text (null in files)
    generator: np.ndarray  # str: the model that wrote it; "" for human text (null in files)
    decoding: np.ndarray  # JSON str; "" for human text

    @classmethod
    def human(cls, ids):
        n = len(ids)
        return cls(ids, np.full(n, "human", object), np.full(n, -1), np.full(n, "", object), np.full(n, "", object))

    @classmethod
    def model(cls, ids, generation, parent, decoding):
        n = len(ids)
        return cls(ids, np.full(n, "synthetic", object), np.full(n, generation), np.full(n, parent, object),
                   np.full(n, decoding, object))

    def __len__(self):
        return len(self.ids)

    def take(self, idx):
        return Blocks(*(getattr(self, f)[idx] for f in ("ids", "origin", "generation", "generator", "decoding")))

    @staticmethod
    def concat(parts):
        fields = ("ids", "origin", "generation", "generator", "decoding")
        return Blocks(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))

    def table(self, tokenizer, corpus_generation: int):
        """The blocks with the provenance columns (collapseguard.io.columns) of the folder
        `gen_<corpus_generation>`."""
        import pyarrow as pa

        from collapseguard.io.columns import arrow_types, text_sha256

        types, human = arrow_types(), self.origin == "human"
        texts = tokenizer.batch_decode(self.ids.tolist())
        return pa.table({
            "corpus_generation": np.full(len(self), corpus_generation, dtype=np.int32),
            "block": np.arange(len(self), dtype=np.int64),
            "origin": pa.array(list(self.origin), types["origin"]),
            "generation": pa.array(self.generation.astype(np.int32), types["generation"], mask=human),
            "generator": pa.array(list(self.generator), types["generator"], mask=human),
            "sha256": pa.array([text_sha256(t) for t in texts], types["sha256"]),
            "decoding": list(self.decoding),
            "token_ids": [row.tolist() for row in self.ids],
            "text": texts,
        })


def mix(config: LMConfig, samples: Blocks, previous: Blocks, pool: Blocks, original: Blocks,
        rng: np.random.Generator, guard=None) -> tuple[Blocks, Blocks]:
    """(D_{g+1}, pool_{g+1}) from S_g, D_g, the pool so far and the original blocks; `guard`
    (fresh -> the blocks it lets through) sits between the fresh crawl and the workflow."""
    fresh = crawl(config, samples, original, rng)
    if guard is not None:
        fresh = guard(fresh)
    n = len(original)
    if config.workflow == "replace":
        return fresh, fresh
    if config.workflow == "accumulate":
        data = Blocks.concat([previous, fresh])
        return data, data
    pool = Blocks.concat([pool, fresh])
    return pool.take(np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))), pool


def crawl(config: LMConfig, samples: Blocks, original: Blocks, rng: np.random.Generator) -> Blocks:
    """fresh_{g+1}: a random (1 - human_fraction) share of S_g and a fresh human_fraction share of D_0."""
    n = len(original)
    n_human = int(round(config.human_fraction * n))
    parts = []
    if n - n_human:
        parts.append(samples.take(rng.choice(len(samples), size=n - n_human, replace=False)))
    if n_human:
        parts.append(original.take(rng.choice(n, size=n_human, replace=False)))
    return Blocks.concat(parts)


def load_corpus(config: LMConfig, seed: int, tokenizer=None):
    """The corpus of one seed (the synthetic language is resampled per seed; real text is fixed)."""
    from collapseguard.simulate.lm.corpus import synthetic_corpus, text_corpus
    from collapseguard.simulate.lm.tokenizer import load_tokenizer

    if config.corpus == "synthetic":
        return synthetic_corpus(config.max_blocks or SYNTHETIC_DEFAULT_BLOCKS, config.test_blocks, config.block_size, seed)
    if tokenizer is None and (config.tokenizer or config.base_model):
        tokenizer = load_tokenizer(config.tokenizer or config.base_model)
    return text_corpus(config.corpus, config.block_size, tokenizer=tokenizer, test_path=config.test_corpus,
                       column=config.text_column, max_blocks=config.max_blocks, test_blocks=config.test_blocks,
                       vocab_size=config.vocab_size, seed=0)


def base_model(config: LMConfig, tokenizer, seed: int):
    """The model every generation starts from (fresh preset weights under `seed`, or the base dir)."""
    from collapseguard.simulate.lm.models import build_model, check_vocab, load_model_dir

    if config.base_model:
        model = load_model_dir(config.base_model, tokenizer)
    else:
        model = build_model(config.preset, tokenizer, 2 * config.block_size, seed)
    check_vocab(model, tokenizer, config.base_model or f"preset {config.preset}")
    n_pos = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    if n_pos is not None and n_pos < 2 * config.block_size:
        raise CollapseguardError(f"{config.base_model}: model context is shorter than 2 x --block-size; lower --block-size")
    return model


class GenerationMetrics:
    """Metrics of one generation's model and samples (see metrics.py for definitions)."""

    def __init__(self, corpus, gen0, human_ppl, device, batch_size):
        self.corpus, self.gen0, self.human_ppl, self.device, self.bs = corpus, gen0, human_ppl, device, batch_size
        lang = corpus.language
        if lang is not None:  # exact truth on the test contexts, positions 1..L-1
            self.truth_probs = lang.next_word_probs(corpus.test)[:, 1:]
            self.truth_ppl = float(np.exp(-lang.log_likelihood(corpus.test, start=1).sum() / corpus.test[:, 1:].size))

    def model_metrics(self, model) -> dict:
        from collapseguard.simulate.lm.synthetic_language import kl_and_tail
        from collapseguard.simulate.lm.train import corpus_perplexity, next_token_probs

        out = {"test_perplexity": corpus_perplexity(model, self.corpus.test, self.bs, self.device)}
        lang = self.corpus.language
        if lang is not None:
            q = next_token_probs(model, self.corpus.test, self.bs, self.device)
            out["kl_to_truth"], out["tail_mass"] = kl_and_tail(self.truth_probs, q, lang.tail)
            out["truth_tail_mass"] = float(self.truth_probs[..., lang.tail].sum(axis=-1).mean())
            out["truth_test_perplexity"] = self.truth_ppl
        return out

    def sample_metrics(self, samples: np.ndarray, prompts: np.ndarray) -> tuple[dict, np.ndarray]:
        from collapseguard.simulate.lm.metrics import distinct_n, gen0_auroc, repetition_rate
        from collapseguard.simulate.lm.train import block_perplexity

        ppl = block_perplexity(self.gen0, samples, self.bs, self.device)
        out = {
            "gen0_perplexity_median": float(np.median(ppl)), "gen0_perplexity_mean": float(np.mean(ppl)),
            "gen0_perplexity_p95": float(np.percentile(ppl, 95)),
            "repetition_rate": repetition_rate(samples), "distinct_2": distinct_n(samples, 2),
            "gen0_auroc": gen0_auroc(ppl, self.human_ppl),
        }
        lang = self.corpus.language
        if lang is not None:  # exact true perplexity of each continuation given its prompt
            full = np.concatenate([prompts, samples], axis=1)
            ll = lang.log_likelihood(full, start=prompts.shape[1])
            out["truth_sample_perplexity"] = float(np.exp(-ll.sum() / samples.size))
        return out, ppl


def set_threads(threads: int) -> None:
    """Pin torch's CPU threads (0 = leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def watermark_processor(key: int, vocab_size: int):
    """The KGW logits processor of collapseguard.detectors.watermark.kgw (same key scheme as its detector)."""
    from collapseguard.detectors.watermark.kgw import KGWConfig, KGWLogitsProcessor

    return KGWLogitsProcessor(KGWConfig(hashing_key=key), vocab_size=vocab_size)


def input_paths(config: LMConfig) -> list[str]:
    """The files and folders the loop reads (never written to)."""
    paths = [config.test_corpus, config.base_model, config.tokenizer]
    if config.corpus != "synthetic":
        paths.insert(0, config.corpus)
    return [p for p in paths if p]


def check_inputs(config: LMConfig) -> None:
    """Refuse missing input paths before anything is loaded or written."""
    for name, value in (("--corpus", None if config.corpus == "synthetic" else config.corpus),
                        ("--test-corpus", config.test_corpus), ("--base-model", config.base_model),
                        ("--tokenizer", config.tokenizer)):
        if value and not Path(value).exists():
            hint = "pass --corpus synthetic or a text shard" if name == "--corpus" else f"pass an existing {name}"
            raise CollapseguardError(f"{value}: no such file or directory ({name}); {hint}")


def _claim_args(config: LMConfig, overwrite: bool) -> dict:
    """io.outputs claim arguments of a run: its settings less --generations (and --seeds, which
    the record omits), so more of either extends a finished run; run folders written before
    output markers existed are recognised by their config.json.

    Generation g of a seed depends only on the settings, the seed and generations < g, so a
    finished run continues exactly as a longer run from scratch would.
    """
    rec = json.loads(json.dumps(config.record()))
    settings = {k: v for k, v in rec.items() if k != "generations"}

    def legacy(path: Path) -> bool:
        try:
            old = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return {k: v for k, v in old.items() if k != "generations"} == settings

    return {"command": "simulate run --world lm", "settings": settings, "overwrite": overwrite,
            "inputs": input_paths(config), "ours": legacy}


def _check_out(out: Path, config: LMConfig, overwrite: bool = False) -> None:
    """Claim `out` for this run (io.outputs rule) and record its settings in config.json."""
    from collapseguard.io.outputs import claim_output_dir

    claim_output_dir(out, **_claim_args(config, overwrite))
    write_text_atomic(out / "config.json", json.dumps(config.record(), indent=2, sort_keys=True))


def run_seed(config: LMConfig, seed: int, out: Path, logits_processor=None,
             progress: Callable[[str], None] | None = None, keys: dict | None = None) -> list[dict]:
    """Run (or resume) all generations of one seed; returns one metrics dict per generation.

    `keys`: the guarded loop's keys (guard.run_keys), when `config.guard` is set."""
    from collapseguard.simulate.lm.models import load_model_dir
    from collapseguard.simulate.lm.tokenizer import load_tokenizer
    from collapseguard.simulate.lm.train import block_perplexity, pick_device, train_model

    say = progress or (lambda msg: None)
    device = pick_device(config.device)
    sdir = out / f"seed_{seed}"
    gdir0 = sdir / "gen_000"
    tokenizer = load_tokenizer(gdir0 / "model") if (gdir0 / "DONE").exists() else None
    corpus = load_corpus(config, seed, tokenizer)
    tok, block = corpus.tokenizer, corpus.block
    template = base_model(config, tok, seed)  # every generation starts from a copy of these weights
    wm_key = config.watermark_key if config.watermark_key is not None else (keys or {}).get("watermark")
    if logits_processor is None and wm_key is not None:
        logits_processor = watermark_processor(wm_key, template.config.vocab_size)
    original = Blocks.human(corpus.train)
    # the synthetic language has no special tokens: never generate ids outside it
    suppress = list(range(corpus.language.vocab, len(tok))) if corpus.language is not None else None
    data = pool = original
    decoding_json = json.dumps(asdict(config.decoding) | {"watermark": logits_processor is not None}, sort_keys=True)
    guard = None
    if config.guard is not None:
        from collapseguard.simulate.lm.guard import LoopGuard

        guard = LoopGuard(config.guard, out, seed, tok, tok.batch_decode(corpus.test.tolist()), {**(keys or {}), "watermark": wm_key})
    writer = SampleWriter(config, seed, corpus, block, logits_processor, suppress, device)
    gen0, metrics_obj, history, samples = None, None, [], None
    for g in range(config.generations + 1):
        gdir = sdir / f"gen_{g:03d}"
        done = (gdir / "DONE").exists()
        guard_metrics: dict = {}
        if g > 0:
            step = None
            if guard is not None:
                step = partial(_read_passed, gdir) if done else \
                    partial(_guard_step, guard, g, original=original, gdir=gdir, tok=tok, metrics=guard_metrics)
            data, pool = mix(config, samples, data, pool, original, np.random.default_rng([seed, g]), step)
        if done:
            history.append(json.loads((gdir / "metrics.json").read_text()))
            samples = _read_samples(gdir / "samples.parquet", g, decoding_json)
            if guard is not None:
                guard.record_outputs(*_read_marked(gdir))
            say(f"seed {seed} generation {g}: done earlier, skipped")
            continue
        if len(data) == 0:
            raise CollapseguardError(f"seed {seed} generation {g}: the guard let no block through; lower the "
                                     "contamination (raise --human-fraction) or pass --restore-human")
        model = copy.deepcopy(template)
        say(f"seed {seed} generation {g}: training on {len(data)} blocks")
        train_tps = train_model(model, data.ids, config.train, seed * 100_003 + g, device,
                                all_positions=not config.base_model)
        if g == 0:  # generation 0's model scores every generation's samples
            gen0 = model
        elif gen0 is None:
            gen0 = load_model_dir(gdir0 / "model", tok).to(device)
        if metrics_obj is None:
            human_ppl = block_perplexity(gen0, corpus.test, config.gen_batch_size, device)
            metrics_obj = GenerationMetrics(corpus, gen0, human_ppl, device, config.gen_batch_size)
        m = {"generation": g, "train_blocks": len(data), "human_share": float(np.mean(data.origin == "human")),
             "train_tokens_per_s": train_tps} | guard_metrics | metrics_obj.model_metrics(model)
        say(f"seed {seed} generation {g}: writing {len(original)} samples")
        new, gen_tps, marks = writer.generate(model, g, original.ids)
        sm, ppl = metrics_obj.sample_metrics(new[:len(original)], original.ids)
        m |= sm | {"generation_tokens_per_s": gen_tps}
        samples = Blocks.model(new[:len(original)], g, f"seed_{seed}/gen_{g:03d}/model", decoding_json)
        _write_generation(gdir, model, tok, data, samples, ppl, m, g, marks, new[len(original):])
        if guard is not None:
            guard.record_outputs(*_read_marked(gdir))
        history.append(m)
        say(f"seed {seed} generation {g}: test perplexity {m['test_perplexity']:.2f}")
    return history


class SampleWriter:
    """A generation's samples: every original block continued; in a guarded loop the held-out
    prompts too (the next guard's labelled machine text), a `watermark_share` of the documents
    watermarked and a `ledger_share` of them marked as logged by the provider."""

    def __init__(self, config: LMConfig, seed: int, corpus, block: int, processor, suppress, device):
        self.config, self.seed, self.corpus, self.block = config, seed, corpus, block
        self.processor, self.suppress, self.device = processor, suppress, device

    def generate(self, model, g: int, prompts: np.ndarray) -> tuple[np.ndarray, float, dict | None]:
        from collapseguard.simulate.lm.generate import generate_continuations

        cfg, base = self.config, self.seed * 100_003 + g
        kw = dict(batch_size=cfg.gen_batch_size, device=self.device, suppress_tokens=self.suppress)
        if cfg.guard is None:
            new, tps = generate_continuations(model, prompts, self.block, cfg.decoding, seed=base,
                                              logits_processor=self.processor, **kw)
            return new, tps, None
        from collapseguard.simulate.lm.guard import document_marks

        prompts = np.concatenate([prompts, self.corpus.test])
        rng = np.random.default_rng([self.seed, g, 1])
        marks = {"watermarked": document_marks(len(prompts), cfg.guard.watermark_share, rng),
                 "logged": document_marks(len(prompts), cfg.guard.ledger_share, rng)}
        new = np.zeros((len(prompts), self.block), dtype=np.int64)
        tokens, seconds = 0, 0.0
        for flag, proc in ((True, self.processor), (False, None)):
            idx = np.flatnonzero(marks["watermarked"] == flag)
            if len(idx):
                part, tps = generate_continuations(model, prompts[idx], self.block, cfg.decoding, seed=base + flag,
                                                   logits_processor=proc, **kw)
                new[idx], tokens, seconds = part, tokens + part.size, seconds + part.size / tps
        return new, tokens / max(seconds, 1e-9), marks


def _guard_step(guard, g: int, fresh: Blocks, *, original: Blocks, gdir: Path, tok, metrics: dict) -> Blocks:
    """Run the guard on generation g's crawl; keep what it passed (for a resume) and its metrics."""
    passed, m = guard.apply(g, fresh, original, gdir)
    write_parquet_atomic(passed.table(tok, g), gdir / "guard" / "passed.parquet")
    metrics.update(m)
    return passed


def _read_passed(gdir: Path, fresh: Blocks) -> Blocks:
    """What the guard let through in a finished generation (Blocks back from its Blocks.table)."""
    import pyarrow.parquet as pq

    t = pq.read_table(gdir / "guard" / "passed.parquet", columns=["token_ids", "origin", "generation", "generator", "decoding"]).to_pydict()
    n = len(t["origin"])
    ids = np.asarray(t["token_ids"], dtype=np.int64).reshape(n, -1)
    return Blocks(ids, np.asarray(t["origin"], object),
                  np.asarray([-1 if v is None else v for v in t["generation"]]),
                  np.asarray(["" if v is None else v for v in t["generator"]], object),
                  np.asarray(t["decoding"], object))


def _read_marked(gdir: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """A guarded generation's outputs and which were logged, and its held-out continuations."""
    import pyarrow.parquet as pq

    s = pq.read_table(gdir / "samples.parquet", columns=["text", "logged"]).to_pydict()
    h = pq.read_table(gdir / "heldout_samples.parquet", columns=["text", "logged"]).to_pydict()
    return s["text"], np.asarray(s["logged"], bool), h["text"], np.asarray(h["logged"], bool)


def _write_generation(gdir: Path, model, tok, data: Blocks, samples: Blocks, ppl, metrics: dict, g: int,
                      marks: dict | None = None, heldout: np.ndarray | None = None) -> None:
    """Model, training corpus, samples (with their marks in a guarded loop) and metrics; the DONE marker last."""
    import pyarrow as pa

    from collapseguard.simulate.lm.models import save_model

    save_model(model, tok, gdir / "model")
    write_parquet_atomic(data.table(tok, g), gdir / "corpus.parquet")
    table = samples.table(tok, g).append_column("gen0_perplexity", pa.array(ppl, pa.float64()))
    if marks is not None:
        n = len(samples)
        for name, flags in marks.items():
            table = table.append_column(name, pa.array(flags[:n]))
        held = pa.table({"token_ids": [r.tolist() for r in heldout], "text": tok.batch_decode(heldout.tolist()),
                         **{name: pa.array(flags[n:]) for name, flags in marks.items()}})
        write_parquet_atomic(held, gdir / "heldout_samples.parquet")
    write_parquet_atomic(table, gdir / "samples.parquet")
    write_text_atomic(gdir / "metrics.json", json.dumps(metrics, indent=2))
    write_text_atomic(gdir / "DONE", "")


def _read_samples(path: Path, g: int, decoding_json: str) -> Blocks:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    generator = "generator" if "generator" in names else "parent_model"  # runs written before the rename
    t = pq.read_table(path, columns=["token_ids", generator])
    ids = np.asarray(t.column("token_ids").to_pylist(), dtype=np.int64)
    return Blocks.model(ids, g, t.column(generator)[0].as_py(), decoding_json)


def results_rows(config: LMConfig, seed: int, history: list[dict]) -> list[dict]:
    """Tidy rows in the schema of the other worlds."""
    return [{"world": "lm", "policy": config.workflow, "human_fraction": config.human_fraction, "seed": seed,
             "generation": int(h["generation"]), "metric": k, "value": float(v)}
            for h in history for k, v in h.items() if k != "generation"]


def run_lm_loop(config: LMConfig, out: str | Path, logits_processor=None,
                progress: Callable[[str], None] | None = None, overwrite: bool = False) -> dict:
    """Run every seed, then write results.parquet and report.md; returns a JSON-able summary.

    `out` follows the output rule of io.outputs: a folder of this run (same settings; more
    generations or seeds extend it) is resumed, any other non-empty folder needs `overwrite`.
    """
    import pyarrow as pa

    from collapseguard.simulate.lm.report import write_report

    check_inputs(config)
    out = Path(out)
    set_threads(config.threads)
    start, rows = time.perf_counter(), []
    from collapseguard.io.outputs import claimed_output_dir

    with claimed_output_dir(out, **_claim_args(config, overwrite)):
        keys = None
        if config.guard is not None:
            from collapseguard.simulate.lm.guard import run_keys

            keys = run_keys(out, config.watermark_key is None and config.guard.watermark_share > 0)
        for s in range(config.seeds):
            rows += results_rows(config, config.seed + s,
                                 run_seed(config, config.seed + s, out, logits_processor, progress, keys))
    write_text_atomic(out / "config.json", json.dumps(config.record(), indent=2, sort_keys=True))
    table = pa.Table.from_pylist(rows)
    write_parquet_atomic(table, out / "results.parquet")
    write_report(out, config)
    final = {r["metric"]: r["value"] for r in rows if r["generation"] == config.generations and r["seed"] == config.seed}
    first = {r["metric"]: r["value"] for r in rows if r["generation"] == 0 and r["seed"] == config.seed}
    return {"world": "lm", "out": str(out), "policy": config.workflow, "human_fraction": config.human_fraction,
            "generations": config.generations, "seeds": config.seeds, "seconds": time.perf_counter() - start,
            "gen0": first, "final": final, "results": str(out / "results.parquet"), "report": str(out / "report.md")}
