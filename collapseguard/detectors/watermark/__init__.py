"""LLM watermark detectors: KGW (kgw_v1) and SynthID-Text (synthid_v1)."""
