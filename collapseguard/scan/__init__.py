"""Scanning shards under a guard policy: sources -> policy (detectors + decision) -> sinks; engines local and ray."""
