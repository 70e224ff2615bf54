"""Record-level provenance, content hashes, manifests and signatures."""
