"""Options and runner for `collapseguard simulate run --world lm` (the language-model loop)."""

from __future__ import annotations

from collapseguard.errors import CollapseguardError


def lm_options(command):
    """Add the LM-only options to `simulate run`."""
    return command


def run_lm(params: dict) -> None:
    """Run the LM loop from the parsed `simulate run` parameters."""
    raise CollapseguardError("the lm world is not available yet")
