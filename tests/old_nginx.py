"""The nginx tokenizer as it was before the faster one (one regex match per token and per
run of blanks, a generator of tokens), kept as the test oracle: nginx.parse must return
exactly what this one returns (tests/test_webserver.py). Not used by the product.
"""

from __future__ import annotations

import re

from php_fpm_apparmor.nginx import MAX_DEPTH
from php_fpm_apparmor.webserver import Directive

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*)
  | (?P<special>[;{}])
  | "(?P<dq>(?:\\[\s\S]|[^"\\])*)"
  | '(?P<sq>(?:\\[\s\S]|[^'\\])*)'
  | (?P<bad>["'][\s\S]*)
  | (?P<word>(?:\\[\s\S]|\$\{|[^ \t\r\n;{\\])+)
""", re.X)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _unescape(text: str) -> str:
    # nginx turns \" \' \\ \t \r \n into the character and keeps any other backslash.
    if "\\" not in text:
        return text
    return re.sub(r"\\([\"'\\trn])", lambda m: _ESCAPES[m.group(1)], text)


def tokens(text: str, file: str, problems: list[str]):
    """(kind, value, line): kind is ";", "{", "}" or "word"."""
    line, pos, end = 1, 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:  # cannot happen: every character starts one alternative
            problems.append(f"{file}:{line}: unexpected character {text[pos]!r}")
            return
        kind = m.lastgroup
        if kind == "bad":
            problems.append(f"{file}:{line}: unexpected end of file, expecting a closing quote")
            return
        if kind == "special":
            yield m.group(), m.group(), line
        elif kind in ("dq", "sq", "word"):
            yield "word", _unescape(m.group(kind)), line
        line += m.group().count("\n")
        pos = m.end()


def parse(text: str, file: str, problems: list[str]) -> list[Directive]:
    """The directive tree of one file (includes not expanded)."""
    root: list[Directive] = []
    stack = [root]
    words: list[tuple[str, int]] = []
    for kind, value, line in tokens(text, file, problems):
        if kind == "word":
            words.append((value, line))
            continue
        if kind == "}":
            if words:
                problems.append(f"{file}:{words[0][1]}: unexpected \"}}\" after {words[0][0]}")
                words = []
            if len(stack) == 1:
                problems.append(f"{file}:{line}: unexpected \"}}\"")
                continue
            stack.pop()
            continue
        if not words:
            if kind == "{":
                problems.append(f"{file}:{line}: block without a directive name")
                stack[-1].append(Directive("", [], file, line, []))
                stack.append(stack[-1][-1].block)
            continue
        d = Directive(words[0][0], [w for w, _ in words[1:]], file, words[0][1])
        words = []
        stack[-1].append(d)
        if kind == "{":
            if len(stack) > MAX_DEPTH:
                problems.append(f"{d.where}: blocks nested more than {MAX_DEPTH} deep; not read")
                return root
            d.block = []
            stack.append(d.block)
    if words:
        problems.append(f"{file}:{words[0][1]}: unexpected end of file, expecting \";\" or \"}}\"")
    if len(stack) > 1:
        problems.append(f"{file}: unexpected end of file, expecting \"}}\"")
    return root
