"""The Detector contract every scorer follows.

A detector is built from a config dataclass, has a versioned ``name`` (``gen0_ppl_v1``,
``kgw_v1``, ``minhash_v1``) and ``score(texts) -> np.ndarray`` of shape (len(texts),) where
higher means more likely machine-generated and NaN means "abstain" (too short, empty, ...).
``fingerprint()`` hashes the name and config (secrets excluded) so a calibration made with one
configuration is refused by another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, ClassVar

import numpy as np

SECRET_FIELDS = frozenset({"hashing_key", "key", "keys", "signing_key", "watermark_key"})


def config_dict(config: Any) -> dict:
    """A JSON-safe dict of a config dataclass with secret fields replaced by their sha256 prefix."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in SECRET_FIELDS and value is not None:
            value = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
        out[f.name] = value if isinstance(value, (int, float, str, bool, type(None), list, dict)) else str(value)
    return out


class Detector:
    """Base class: subclasses set ``name`` and ``config`` and implement ``score``."""

    name: ClassVar[str]
    config: Any

    def score(self, texts: list[str]) -> np.ndarray:
        """Scores (len(texts),), higher = more likely machine; NaN = abstain."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """sha256 of the detector name and its (secret-free) config."""
        blob = json.dumps({"name": self.name, "config": config_dict(self.config)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()
