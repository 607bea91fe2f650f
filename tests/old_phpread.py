"""The PHP config reader as it was before issue 10 (one regex match and one Tok per token,
no cache), kept as the test oracle: the faster reader in apphelpers must return exactly
what this one returns (tests/test_phpread.py). Not used by the product. The values of
literals (numbers, double-quoted strings, array keys, a concatenation) are apphelpers'
own, held to PHP itself by the tests: this oracle is for the tokens and the parse.
"""

from __future__ import annotations

import os

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from php_fpm_apparmor.apphelpers import (MAX_DEPTH, MAX_READ, NUMBER, UNKNOWN, Context, PhpFacts, _concat,
                                         _double_quoted, array_key, next_key, number, signed)
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>(?://|\#(?!\[))(?:[^\n\r?]|\?(?!>))*|/\*.*?(?:\*/|\Z))
  | (?P<open><\?php|<\?=?)
  | (?P<close>\?>)
  | (?P<sq>'(?:[^'\\]|\\.)*(?:'|\Z))
  | (?P<dq>"(?:[^"\\]|\\.)*(?:"|\Z))
  | (?P<heredoc><<<)
  | (?P<num>""" + NUMBER + r""")
  | (?P<var>\$[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)
  | (?P<ident>\\?[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*(?:\\[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>=>|::|==|!=|\.=|&&|\|\||[()\[\],;.=!])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
@dataclass
class Tok:
    kind: str
    value: object
    line: int


def tokenize(text: str) -> list[Tok]:
    """PHP tokens of the code parts of `text` (inline HTML skipped). Never raises."""
    toks: list[Tok] = []
    line = 1
    pos = 0
    in_php = False
    n = len(text)
    while pos < n:
        if not in_php:
            start = text.find("<?", pos)
            if start < 0:
                break
            line += text.count("\n", pos, start)
            pos = start
        m = _TOKEN.match(text, pos)
        if m is None:  # cannot happen ("other" matches any char); be safe anyway
            break
        kind = m.lastgroup
        raw = m.group()
        if kind == "open":
            in_php = True
        elif kind == "close":
            in_php = False
        elif kind in ("ws", "comment"):
            pass
        elif kind == "sq":
            body = raw[1:-1] if raw.endswith("'") and len(raw) > 1 else raw[1:]
            toks.append(Tok("str", re.sub(r"\\([\\'])", r"\1", body), line))
        elif kind == "dq":
            toks.append(Tok("str", _double_quoted(raw), line))
        elif kind == "heredoc":  # rare in config files: its value is unknowable here
            end = text.find("\n", pos)
            toks.append(Tok("str", UNKNOWN, line))
            raw = text[pos:end if end > 0 else n]
        elif kind == "num":
            toks.append(Tok("num", number(raw), line))
        else:
            toks.append(Tok(kind, raw, line))
        line += raw.count("\n")
        pos += len(raw)
    return toks


class _Parser:
    def __init__(self, toks: list[Tok], ctx: Context):
        self.t = toks
        self.ctx = ctx

    def peek(self, i, kind=None, value=None) -> bool:
        if i >= len(self.t):
            return False
        tok = self.t[i]
        if kind and tok.kind != kind:
            return False
        if value is not None:
            v = tok.value.lower() if isinstance(tok.value, str) and tok.kind == "ident" else tok.value
            if v != value:
                return False
        return True

    def skip_expr(self, i: int) -> int:
        """Index after an expression we cannot evaluate (balanced brackets)."""
        depth = 0
        while i < len(self.t):
            tok = self.t[i]
            if tok.kind == "op" and tok.value in "([":
                depth += 1
            elif tok.kind == "op" and tok.value in ")]":
                if depth == 0:
                    return i
                depth -= 1
            elif tok.kind == "op" and tok.value in (",", ";", "=>") and depth == 0:
                return i
            i += 1
        return i

    def expr(self, i: int, depth: int = 0):
        """(value, next index) for a concatenation of terms."""
        value, i = self.term(i, depth)
        while self.peek(i, "op", "."):
            right, i = self.term(i + 1, depth)
            value = _concat(value, right)
        # Anything else following (ternaries, arithmetic, calls) makes the value unknown.
        if i < len(self.t) and not (self.t[i].kind == "op" and self.t[i].value in (",", ";", ")", "]", "=>")):
            return UNKNOWN, self.skip_expr(i)
        return value, i

    def term(self, i: int, depth: int):
        if depth > MAX_DEPTH or i >= len(self.t):
            return UNKNOWN, self.skip_expr(i)
        tok = self.t[i]
        if tok.kind in ("str", "num"):
            return tok.value, i + 1
        if tok.kind == "ident":
            name = tok.value.lstrip("\\")
            low = name.lower()
            if low == "true":
                return True, i + 1
            if low == "false":
                return False, i + 1
            if low == "null":
                return None, i + 1
            if name == "__DIR__":
                return posixpath.dirname(self.ctx.file), i + 1
            if name == "__FILE__":
                return self.ctx.file, i + 1
            if name == "ABSPATH" and self.ctx.abspath:
                return self.ctx.abspath, i + 1
            if name in self.ctx.constants:
                return self.ctx.constants[name], i + 1
            if name == "OC" and self.peek(i + 1, "op", "::") and self.peek(i + 2, "var", "$SERVERROOT") \
                    and self.ctx.serverroot:
                return self.ctx.serverroot, i + 3
            if low == "dirname" and self.peek(i + 1, "op", "("):
                arg, j = self.expr(i + 2, depth + 1)
                levels = 1
                if self.peek(j, "op", ","):
                    levels, j = self.expr(j + 1, depth + 1)
                if not self.peek(j, "op", ")"):
                    return UNKNOWN, self.skip_expr(j)
                if not isinstance(arg, str) or not isinstance(levels, int) or not 1 <= levels <= 32:
                    return UNKNOWN, j + 1
                for _ in range(levels):
                    arg = posixpath.dirname(arg)
                return arg, j + 1
            if low == "array" and self.peek(i + 1, "op", "("):
                return self.array(i + 2, ")", depth + 1)
            return UNKNOWN, self.skip_expr(i)
        if tok.kind == "other" and tok.value in ("-", "+"):
            value, j = self.term(i + 1, depth + 1)
            return signed(tok.value, value), j
        if tok.kind == "op" and tok.value == "[":
            return self.array(i + 1, "]", depth + 1)
        if tok.kind == "op" and tok.value == "(":
            value, j = self.expr(i + 1, depth + 1)
            if self.peek(j, "op", ")"):
                return value, j + 1
            return UNKNOWN, self.skip_expr(j)
        return UNKNOWN, self.skip_expr(i)

    def array(self, i: int, close: str, depth: int):
        """A PHP array literal as a dict (keys as PHP would number them); UNKNOWN when a key
        is: it could be any other key, and overwrite it."""
        out: dict = {}
        top = None
        while i < len(self.t) and not self.peek(i, "op", close):
            value, i = self.expr(i, depth)
            if self.peek(i, "op", "=>"):
                key = array_key(value)
                value, i = self.expr(i + 1, depth)
            else:
                key = next_key(top)
            if key is UNKNOWN:
                out = UNKNOWN
            elif out is not UNKNOWN:
                out[key] = value
                if isinstance(key, int) and (top is None or key > top):
                    top = key
            if self.peek(i, "op", ","):
                i += 1
            elif not self.peek(i, "op", close):
                return UNKNOWN, self.skip_expr(i)
        if not self.peek(i, "op", close):
            return UNKNOWN, i
        return out, i + 1


def read_php(path: Path, system_path: str, abspath: str | None = None,
             serverroot: str | None = None, constants: dict | None = None) -> PhpFacts:
    """Read define()s and assignments from the PHP file at `path` (on disk). Never raises."""
    facts = PhpFacts(file=system_path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_READ + 1)
            st = os.fstat(fh.fileno())  # (the reader's owner and mode: not parsing, compared alike)
    except OSError as exc:
        if path.exists():
            facts.problems.append(f"{system_path}: cannot read: {exc.strerror}")
        return facts
    facts.exists = True
    facts.uid, facts.gid, facts.mode = st.st_uid, st.st_gid, st.st_mode & 0o7777
    if len(data) > MAX_READ:
        facts.problems.append(f"{system_path}: larger than {MAX_READ} bytes: only the start was read")
        data = data[:MAX_READ]
    text = data.decode("utf-8", "replace")
    toks = tokenize(text)
    parser = _Parser(toks, Context(system_path, abspath, serverroot, dict(constants or {})))
    i = 0
    statement_start = True
    while i < len(toks):
        tok = toks[i]
        if tok.kind == "ident" and tok.value.lower() == "define" and parser.peek(i + 1, "op", "("):
            name, j = parser.expr(i + 2)
            if isinstance(name, str) and parser.peek(j, "op", ","):
                value, j = parser.expr(j + 1)
                if name not in facts.defines:
                    facts.defines[name] = value
                    facts.lines[name] = tok.line
            i = max(j, i + 1)
            statement_start = False
            continue
        if statement_start and tok.kind == "var" and parser.peek(i + 1, "op", "="):
            value, j = parser.expr(i + 2)
            facts.assigns[tok.value] = value
            facts.lines[tok.value] = tok.line
            i = max(j, i + 2)
            statement_start = False
            continue
        statement_start = tok.kind == "op" and tok.value in (";", "{", "}", ")") or tok.kind == "other" \
            and tok.value in "{}"
        i += 1
    return facts


