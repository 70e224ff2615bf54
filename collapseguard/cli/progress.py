"""Progress on stderr: a bar on a terminal; log lines at a steady interval in pipes, logs and CI.

A 10-minute run whose stderr is a file must not look hung, and must not fill the log either:
lines come every COLLAPSEGUARD_PROGRESS_SECONDS seconds (default 10), plus one at the end of
work that outlasted one interval.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import click

DEFAULT_INTERVAL = 10.0


def interval() -> float:
    """Seconds between progress lines (COLLAPSEGUARD_PROGRESS_SECONDS, default 10)."""
    try:
        return max(0.0, float(os.environ.get("COLLAPSEGUARD_PROGRESS_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _say(message: str) -> None:
    click.echo(message, err=True)
    sys.stderr.flush()


class PeriodicLog:
    """A progress bar stand-in: `update(n)` counts; a line is logged when `interval()` has passed."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.every = interval()
        self.start = self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        elapsed = time.monotonic() - self.start
        if exc_type is None and elapsed >= self.every:  # quick work needs no closing line
            _say(f"{self.label}: {self.done}/{self.total} done in {elapsed:.0f} s")
        return False

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            share = self.done / self.total if self.total else 1.0
            # no time-left guess: steps differ in cost (a sweep's gmm generations are slow)
            _say(f"{self.label}: {self.done}/{self.total} ({100 * share:.0f}%), {now - self.start:.0f} s")


class RateLog:
    """For work of unknown total: `rate(n)` counts records; a live line with records/s on a
    terminal, a log line every `interval()` seconds otherwise; `close()` prints the last one."""

    def __init__(self, label: str):
        self.label, self.done = label, 0
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else interval()
        self.start = self.last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._show(now)

    def _show(self, now: float, end: str = "") -> None:
        line = f"{self.label}: {self.done:,} records, {self.done / max(now - self.start, 1e-9):,.0f} records/s"
        click.echo(f"\r{line}{end}" if self.tty else line, err=True, nl=not self.tty)

    def close(self, failed: bool = False) -> None:
        """The last line; after a failure only the end of a live line (the error is the one line to say)."""
        if self.done and failed:
            if self.tty:
                click.echo("", err=True)
        elif self.done:
            self._show(time.monotonic(), end="\n" if self.tty else "")


def progress_bar(total: int, label: str):
    """click's progress bar on a terminal, PeriodicLog otherwise."""
    if sys.stderr.isatty():
        return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
    return PeriodicLog(total, label)


class Heartbeat:
    """For work without a count: when stderr is not a terminal, log the elapsed time and the
    latest stage message every `interval()` seconds until the block ends."""

    def __init__(self, label: str):
        self.label, self.stage = label, ""
        self._stop = threading.Event()
        self._thread = None

    def say(self, message: str) -> None:
        """Log a stage message now and remember it for the next heartbeat line."""
        self.stage = message
        _say(message)

    def _beat(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(max(interval(), 0.05)):
            stage = f" (last: {self.stage})" if self.stage else ""
            _say(f"{self.label}: still running, {time.monotonic() - start:.0f} s{stage}")

    def __enter__(self):
        if not sys.stderr.isatty() and interval() > 0:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False
