"""Dedup sketches: MinHash signatures, LSH, the generation ledger, embeddings."""
