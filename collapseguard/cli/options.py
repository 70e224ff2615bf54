"""Option parsing shared by the CLI commands."""

from __future__ import annotations

import json

from collapseguard.errors import CollapseguardError


def parse_key_values(pairs: tuple[str, ...], what: str, example: str) -> dict:
    """KEY=VALUE pairs -> dict; values parse as JSON where they can (numbers, true, null), else strings."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CollapseguardError(f"{what} {pair!r} is not KEY=VALUE; write e.g. -o {example}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def seed_option(help_text: str, default: int | None = 0):
    """`--seed`: a whole number from 0 to 2**32 - 1 (what numpy and torch seeding accept)."""
    import click

    return click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=default,
                        show_default=default is not None, help=help_text)


def overwrite_option(f):
    """`--overwrite`: let a command replace or write into an output it did not make (see docs/outputs.md,
    "Outputs: what a command may overwrite")."""
    import click

    return click.option("--overwrite", is_flag=True,
                        help="Replace an existing output this command did not write (inputs are never overwritten).")(f)
