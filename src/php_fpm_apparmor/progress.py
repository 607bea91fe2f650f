"""What a long run is doing, on a terminal only: one line on stderr, rewritten in place.

Quiet in scripts (stderr not a tty), under systemd (JOURNAL_STREAM set: the journal would
keep every rewrite) and with --quiet. Nothing shows for runs shorter than DELAY.
"""

from __future__ import annotations

import os
import sys
import time

# seconds before the first line: short runs stay silent (tests set 0)
DELAY = float(os.environ.get("PFA_PROGRESS_DELAY", "0.5"))
EVERY = 0.1  # at most ten rewrites a second


def wanted(quiet: bool = False, stream=None) -> bool:
    stream = stream or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not quiet and "JOURNAL_STREAM" not in os.environ


class Progress:
    """progress(stage, done, total): total 0 = a stage without a count."""

    def __init__(self, stream=None, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.start = clock()
        self.last = 0.0
        self.shown = False

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        now = self.clock()
        final = total and done == total
        if now - self.start < DELAY or (now - self.last < EVERY and not final):
            return
        self.last = now
        count = f" {done} of {total}" if total else ""
        self.stream.write(f"\r\x1b[K{stage}{count} ({now - self.start:.1f} s)")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:  # leave the terminal as it was: the results print on clean lines
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


def for_cli(quiet: bool = False) -> Progress | None:
    return Progress() if wanted(quiet) else None
