"""Curation: mixes of verified human and synthetic pools at a chosen human fraction, with signed
provenance (`mix`); the fraction a simulated sweep allows is `simulate.simulated_fraction`."""
