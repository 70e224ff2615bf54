"""Detectors of machine-generated text: perplexity, watermarks, dedup sketches, calibration."""

# Dedup sketches, exported lazily so `import collapseguard.detectors` stays light.
_LAZY = {"shingles": "collapseguard.detectors.dedup.minhash", "minhash_signatures": "collapseguard.detectors.dedup.minhash"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
