"""The `collapseguard` command: a group whose subcommands load lazily."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from collapseguard import __version__
from collapseguard.errors import CollapseguardError

# name -> "module:attribute"; each subcommand module is imported only when it is run.
LAZY_COMMANDS = {
    "detect": "collapseguard.cli.detect:detect",
    "gen0": "collapseguard.cli.gen0:gen0",
    "watermark": "collapseguard.cli.watermark:watermark",
    "ledger": "collapseguard.cli.ledger:ledger",
    "simulate": "collapseguard.cli.simulate:simulate",
    "policy": "collapseguard.cli.policy:policy",
    "scan": "collapseguard.cli.scan:scan",
    "filter": "collapseguard.cli.scan:filter_command",
    "curate": "collapseguard.cli.curate:curate",
    "provenance": "collapseguard.cli.provenance:provenance",
    "hook": "collapseguard.cli.hooks:hook",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module when the subcommand is used."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CollapseguardError as exc:
            raise _one_line(str(exc)) from None
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a bad option value: one line too, with where to look
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            raise _one_line(exc.format_message() + where) from None
        except OSError as exc:
            where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
            raise _one_line(f"{exc.strerror or exc}:{where}") from None


def _one_line(message: str) -> click.ClickException:
    err = click.ClickException(message.replace("\n", " "))
    err.exit_code = 2
    return err


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="collapseguard")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Guard training corpora against machine-generated text and measure model collapse.

    \b
    Examples:
      collapseguard simulate sweep --out runs/default
      collapseguard simulate run --world gaussian --generations 100 --samples 100 --seeds 200 --out runs/g
      collapseguard policy calibrate --human heldout/ --machine gens.jsonl --fpr 0.01 --out cal.json
      collapseguard scan data/ --out scan/ --json
      collapseguard filter data/ --attributes scan/ --out clean/
    """
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="collapseguard"))


if __name__ == "__main__":
    main()
