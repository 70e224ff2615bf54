"""Static sentence embeddings distilled from the sentence model: a token table and a weighted mean.

The sentence model (all-MiniLM-L6-v2) costs a transformer forward pass per text, ~17 texts/s
on one CPU core for 1 KB texts. Here it runs once per vocabulary token instead (each token
alone between [CLS] and [SEP]; its output vector is the token's row, as Model2Vec does), and a
text's embedding is the mean of its tokens' rows weighted by a Zipf estimate of each token's
rarity (the vocabulary lists word pieces by frequency: weight log(1 + rank)), L2-normalised.
Scoring needs only the `tokenizers` package and numpy -- no torch, no model weights: the table,
the weights and the tokenizer's definition travel together in one npz (no pickles).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from collapseguard.errors import CollapseguardError

STATIC_FILE = "static.npz"
DISTIL_BATCH = 1024
CACHE_WORDS = 200_000  # distinct words whose token ids are kept (~30 MB)


def zipf_weights(vocab_size: int, special_ids) -> np.ndarray:
    """log(1 + rank) per token id (rarer pieces weigh more), 0 for the special tokens."""
    weights = np.log1p(np.arange(vocab_size, dtype=np.float64))
    weights[list(special_ids)] = 0.0
    return weights


class StaticEmbedder:
    """Token table (V, d) float32 + per-token weights (V,) + a `tokenizers` tokenizer."""

    def __init__(self, table: np.ndarray, weights: np.ndarray, tokenizer_json: str, source: str = ""):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise CollapseguardError("static embeddings need the tokenizers package: "
                                     "pip install 'collapseguard[lm]' (or pip install tokenizers)") from None
        if table.ndim != 2 or weights.shape != (len(table),):
            raise CollapseguardError(f"static embeddings: table {table.shape} and weights {weights.shape} do not fit")
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.weights = np.asarray(weights, dtype=np.float32)
        self.tokenizer_json, self.source = tokenizer_json, source
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self._cache: dict[str, tuple[int, ...]] = {}
        if self.tokenizer.get_vocab_size() != len(table):
            raise CollapseguardError(f"static embeddings: tokenizer has {self.tokenizer.get_vocab_size()} tokens, "
                                     f"table {len(table)} rows; distil again")

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def pieces(self, word: str) -> tuple[int, ...]:
        """The tokenizer's ids of one word (cached; the cache is emptied when it reaches CACHE_WORDS)."""
        ids = self._cache.get(word)
        if ids is None:
            if len(self._cache) >= CACHE_WORDS:
                self._cache.clear()
            ids = self._cache[word] = tuple(self.tokenizer.encode(word, add_special_tokens=False).ids)
        return ids

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; a text without tokens gives a NaN row.

        Texts are cut at whitespace (where the BERT pre-tokenizer cuts them first) and each
        distinct word is tokenized once: the pieces of tokenizing the whole text, without paying
        the tokenizer for every occurrence of a word."""
        out = np.full((len(texts), self.dim), np.nan, dtype=np.float32)
        for row, text in enumerate(texts):
            ids = [i for w in text.lower().split() for i in self.pieces(w)]
            if ids:
                vec = self.weights[ids] @ self.table[ids]
                norm = float(np.linalg.norm(vec))
                out[row] = vec / norm if norm > 0 else vec
        return out

    # --- files ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, table=self.table, weights=self.weights,
                 tokenizer=np.frombuffer(self.tokenizer_json.encode("utf-8"), dtype=np.uint8),
                 source=np.frombuffer(self.source.encode("utf-8"), dtype=np.uint8))
        return buf.getvalue()

    def save(self, folder: str | Path) -> Path:
        """Write STATIC_FILE into `folder` atomically; returns its path."""
        from collapseguard.io.atomic import atomic_path

        path = Path(folder) / STATIC_FILE
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> StaticEmbedder:
        """Read a file `save` wrote (no pickles); a corrupt one is one line naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["table"], z["weights"], z["tokenizer"].tobytes().decode("utf-8"),
                           z["source"].tobytes().decode("utf-8"))
        except CollapseguardError as exc:
            raise CollapseguardError(f"{path}: {exc}") from None
        except Exception as exc:  # BadZipFile, KeyError, ValueError, OSError, tokenizer JSON errors
            raise CollapseguardError(f"{path}: not a readable static embedding file ({type(exc).__name__}: "
                                     f"{str(exc)[:100]}); retrain with `collapseguard detect train`") from None

    @classmethod
    def distil(cls, model_dir: str | Path | None = None, device: str = "cpu",
               batch_size: int = DISTIL_BATCH) -> StaticEmbedder:
        """Run the sentence model once over every vocabulary token: its output at the token's
        position ([CLS] token [SEP]) becomes the token's row."""
        import torch

        from collapseguard.detectors.dedup.embeddings import SentenceEmbedder

        sent = SentenceEmbedder(model_dir, device=device)
        tok = sent.tokenizer
        vocab = tok.vocab_size if not hasattr(tok, "backend_tokenizer") else tok.backend_tokenizer.get_vocab_size()
        cls_id, sep_id = tok.cls_token_id, tok.sep_token_id
        table = np.zeros((vocab, sent.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, vocab, batch_size):
                ids = torch.arange(start, min(start + batch_size, vocab))
                batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], 1)
                hidden = sent.model(input_ids=batch.to(device), attention_mask=torch.ones_like(batch).to(device))
                table[start : start + len(ids)] = hidden.last_hidden_state[:, 1].cpu().numpy()
        weights = zipf_weights(vocab, tok.all_special_ids)
        out = cls(table, weights, tok.backend_tokenizer.to_str(), source=str(sent.path))
        out.source_dir = sent.path
        return out

    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()
