"""What an app must be able to do, and what an attacker in its pool must not: shared tables.

Each app plugin publishes a list `EXPECTATIONS` of these. The same rows drive the static
tests (the rendered policy evaluated with python3-apparmor) and the real-kernel tests (a
probe PHP script run in the pool under qemu), so a row is written once and proven twice.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

OPS = ("read", "write", "exec", "mail")
RESULTS = ("allow", "deny")
# Placeholders the first-party tables use; a table may use any {name} of its own: the
# test that runs a row fills them in for its site.
PLACEHOLDERS = ("root", "other", "data", "content")


@dataclass(frozen=True)
class Expectation:
    op: str  # "read" | "write" | "exec" | "mail"
    target: str  # absolute path, or with placeholders: {root} app root, {other} another
    # pool's site root, or any {name} the table's test fills in
    expect: str  # "allow" | "deny"
    why: str
    argv: tuple = ()  # for exec: the argv a probe runs (argv[0] == target); for shell chains
    # ("/bin/sh", "-c", "cwebp -version") the static check follows sh -> cwebp

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"bad op {self.op!r}")
        if self.expect not in RESULTS:
            raise ValueError(f"bad expect {self.expect!r}")
        if not self.why:
            raise ValueError("an expectation needs a why")
        if self.op == "exec" and self.argv and self.argv[0] != self.target:
            raise ValueError(f"argv[0] must be the target: {self.argv!r}")

    def resolve(self, **places: str) -> "Expectation":
        """The row with its placeholders filled in (every placeholder used must be given)."""
        def fill(text: str) -> str:
            return text.format(**places)
        return Expectation(self.op, fill(self.target), self.expect, self.why,
                           tuple(fill(a) for a in self.argv))

    @property
    def placeholders(self) -> set[str]:
        return {field for text in (self.target, *self.argv)
                for _, field, _, _ in string.Formatter().parse(text) if field}


__all__ = ["Expectation", "OPS", "RESULTS", "PLACEHOLDERS"]
