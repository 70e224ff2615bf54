"""Detectors of machine-generated text: perplexity, watermarks, dedup sketches, calibration."""
