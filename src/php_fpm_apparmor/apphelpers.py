"""Helpers for app plugins (public through php_fpm_apparmor.api): a safe reader for PHP config files,
plugin-header versions, helper-binary lookup and path sanity checks.

Config files such as wp-config.php or Nextcloud's config.php are PHP, and they belong to
the site user: whoever compromises the site can edit them. So they are never executed,
only tokenised, and every path read from them is checked before it becomes a rule. The
reader understands the handful of forms these files really use (string literals,
concatenation, __DIR__, dirname(), ABSPATH, OC::$SERVERROOT, array()/[] literals) and
marks anything else UNKNOWN; it never raises on hostile input.
"""

from __future__ import annotations

import functools
import math
import os
import posixpath
import re
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from .pools import NotRegular, open_regular, read_regular  # noqa: F401  (the first two: plugin API)
from .sites import system_file

# Config files are small; a bigger one is read only this far (no memory blow-up).
MAX_READ = 1 << 20
MAX_DEPTH = 32  # nested arrays/parentheses before we give up on an expression


class _Unknown:
    """A value the reader cannot know without running PHP."""

    def __repr__(self):
        return "UNKNOWN"

    def __bool__(self):
        return False

    def __reduce__(self):  # copies (pickle, deepcopy at the plugin boundary) stay the one UNKNOWN
        return "UNKNOWN"


UNKNOWN = _Unknown()

# PHP's number literals (zend_language_scanner.l: HNUM, BNUM, ONUM, DNUM, EXPONENT_DNUM,
# LNUM; "_" between digits), the longest first.
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
NUMBER = (r"0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*|0[bB][01]+(?:_[01]+)*|0[oO][0-7]+(?:_[0-7]+)*"
          rf"|(?:(?:{_DIGITS})?\.{_DIGITS}|{_DIGITS}(?:\.(?:{_DIGITS})?)?)(?:[eE][+-]?{_DIGITS})?")

# One regex pass over the file: each match is what the reader skips (white space, comments,
# the open and close tags and the inline HTML between them) followed by one token, so the
# Python loop runs once per token. The skipped part is an atomic group, so it is taken
# exactly as a token-by-token reader takes it (the first alternative that matches, in this
# order) and never backtracked into. A block comment is taken as runs of non-stars (a lazy
# .*? tried the terminator at every character: a third of the lexing of wp-config.php).
# tests/test_phpread.py holds it to the previous one-match-per-token reader
# (tests/old_phpread.py) and to PHP's own token_get_all().
_LEX = re.compile(
    r"""
    (?>(?: \s+
         | (?://|\#(?!\[))[^\n\r?]*(?:\?(?!>)[^\n\r?]*)*  # to the line's end or a ?>, as PHP
         | /\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\**\Z)  # to the first */
         | <\?php | <\?=?
         | \?>[^<]*(?:<(?!\?)[^<]*)*  # a close tag, then inline HTML up to the next <?
       )*)
    (?: (?P<sq>'[^'\\]*(?:\\.[^'\\]*)*(?:'|\Z))
      | (?P<dq>"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z))
      | (?P<heredoc><<<[^\n]*)  # rare in config files: its value is unknowable here
      | (?P<num>(?=[.0-9])(?:""" + NUMBER + r"""))
      | (?P<var>\$[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)
      | (?P<ident>\\?[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*(?:\\[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<op>=>|::|==|!=|\.=|&&|\|\||[()\[\],;.=!])
      | (?P<other>.)
      | \Z)  # only skipped text was left
    """,
    re.VERBOSE | re.DOTALL,
)
# token kind by group number in _LEX (sq, dq and heredoc are all strings)
_KINDS = (None, "str", "str", "str", "num", "var", "ident", "op", "other")
_SQ_ESCAPE = re.compile(r"\\([\\'])")
_DQ_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "e": "\x1b",
               "\\": "\\", "$": "$", '"': '"'}
# \101 (octal, one to three digits), \x41 (hex, one or two), \u{41} (a code point)
_DQ_CODE = re.compile(r"[0-7]{1,3}|x[0-9A-Fa-f]{1,2}|u\{([0-9A-Fa-f]*)\}?")
PHP_INT_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Tok:
    kind: str
    value: object
    line: int


def tokenize(text: str) -> list[Tok]:
    """PHP tokens of the code parts of `text` (inline HTML skipped). Never raises."""
    kinds, values, starts = _lex(text)
    line = _Lines(text)
    return [Tok(k, v, line(s)) for k, v, s in zip(kinds, values, starts)]


def _lex(text: str) -> tuple[list, list, list]:
    """tokenize() as three parallel lists (kinds, values, start offsets): what the parser
    walks. Line numbers are counted only for the few tokens that need one (_Lines)."""
    kinds: list = []
    values: list = []
    starts: list = []
    pos = text.find("<?")  # everything before the first open tag is inline HTML
    if pos < 0:
        return kinds, values, starts
    kind, value, start = kinds.append, values.append, starts.append
    for m in _LEX.finditer(text, pos):
        g = m.lastindex
        if g is None:  # the end: only skipped text was left
            break
        raw = m.group(g)
        if g >= 5:  # var, ident, op, other: the text itself
            value(raw)
        elif g == 1:
            body = raw[1:-1] if raw.endswith("'") and len(raw) > 1 else raw[1:]
            value(_SQ_ESCAPE.sub(r"\1", body) if "\\" in body else body)
        elif g == 2:
            value(_double_quoted(raw))
        elif g == 3:
            value(UNKNOWN)
        else:
            value(number(raw))
        kind(_KINDS[g])
        start(m.start(g))
    return kinds, values, starts


class _Lines:
    """Line number of an offset in `text`, for offsets asked in increasing order (linear
    in the text overall, whatever the number of tokens asked about)."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def __call__(self, offset: int) -> int:
        if offset < self.pos:  # not in order: count from the start
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line


def number(raw: str):
    """The value PHP gives a number literal: an int, or a float once a decimal one overflows
    (as PHP does); UNKNOWN for one PHP refuses ("08") or a hex, binary or octal one past
    PHP_INT_MAX (PHP sums those in a double, digit by digit)."""
    text = raw.replace("_", "")
    try:
        if text[:2].lower() in ("0x", "0b", "0o"):
            value = int(text, 0)
        elif "." in text or "e" in text or "E" in text:
            return float(text)
        elif len(text) > 1 and text[0] == "0":  # 010 is octal
            value = int(text, 8)
        else:
            value = int(text)
            return value if value <= PHP_INT_MAX else float(text)
    except ValueError:
        return UNKNOWN
    return value if value <= PHP_INT_MAX else UNKNOWN


def _double_quoted(raw: str):
    """A double-quoted string's value; UNKNOWN with interpolation, or when its bytes (PHP
    strings are bytes: "\\xE2\\x82\\xAC" is the three of a euro sign) are not UTF-8 text."""
    body = raw[1:-1] if raw.endswith('"') and len(raw) > 1 else raw[1:]
    if "\\" not in body and "$" not in body:  # nearly always: nothing to decode
        return body
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _DQ_ESCAPES:
                out += _DQ_ESCAPES[nxt].encode()
                i += 2
                continue
            code = _DQ_CODE.match(body, i + 1)
            made = _escaped(code) if code else b""
            if made is None:
                return UNKNOWN
            if made:
                out += made
                i = code.end()
                continue
            out += b"\\"
            i += 1
            continue
        if c == "$" and i + 1 < len(body) and (body[i + 1].isalpha() or body[i + 1] in "_{"):
            return UNKNOWN  # interpolation: depends on runtime values
        if c == "{" and i + 1 < len(body) and body[i + 1] == "$":
            return UNKNOWN
        out += c.encode("utf-8", "surrogatepass")
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return UNKNOWN


def _escaped(m) -> bytes | None:
    """The bytes of an escape _DQ_CODE matched; b"" when PHP keeps it as written ("\\u"
    without a brace); None for one PHP refuses, and the file with it does not run."""
    text = m.group()
    if text[0] == "u":
        if not text.startswith("u{"):
            return b""
        if not m.group(1) or not text.endswith("}"):
            return None  # "Invalid UTF-8 codepoint escape sequence"
        point = int(m.group(1), 16)
        if point > 0x10FFFF:
            return None  # "Invalid UTF-8 codepoint escape sequence: Codepoint too large"
        return chr(point).encode("utf-8", "surrogatepass")  # PHP writes a surrogate's three bytes too
    return bytes([int(text[1:], 16) if text[0] == "x" else int(text, 8) & 0xFF])  # "\\400" wraps, as in PHP


@dataclass
class Context:
    """What the magic names in an expression mean for this file."""

    file: str  # system path of the file being read
    abspath: str | None = None  # WordPress ABSPATH (with trailing slash)
    serverroot: str | None = None  # Nextcloud OC::$SERVERROOT
    constants: dict = field(default_factory=dict)  # known constants, e.g. WP_CONTENT_DIR


class _Parser:
    """Evaluates the literal expressions of a token stream (_lex's parallel lists)."""

    def __init__(self, lexed: tuple[list, list, list], ctx: Context):
        self.k, self.v, _ = lexed
        self.n = len(self.k)
        self.ctx = ctx

    def peek(self, i, kind, value) -> bool:
        """Whether token i is this (kind, value): an operator, or OC::$SERVERROOT's variable."""
        return i < self.n and self.k[i] == kind and self.v[i] == value

    def skip_expr(self, i: int) -> int:
        """Index after an expression we cannot evaluate (balanced brackets)."""
        depth = 0
        k, v = self.k, self.v
        while i < self.n:
            if k[i] == "op":
                op = v[i]
                if op in "([":
                    depth += 1
                elif op in ")]":
                    if depth == 0:
                        return i
                    depth -= 1
                elif op in (",", ";", "=>") and depth == 0:
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
        if i < self.n and not (self.k[i] == "op" and self.v[i] in (",", ";", ")", "]", "=>")):
            return UNKNOWN, self.skip_expr(i)
        return value, i

    def term(self, i: int, depth: int):
        if depth > MAX_DEPTH or i >= self.n:
            return UNKNOWN, self.skip_expr(i)
        kind, tok = self.k[i], self.v[i]
        if kind in ("str", "num"):
            return tok, i + 1
        if kind == "ident":
            name = tok.lstrip("\\")
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
        if kind == "other" and tok in ("-", "+"):  # -1, - 2.5, -(1): a number's sign
            value, j = self.term(i + 1, depth + 1)
            return signed(tok, value), j
        if kind == "op" and tok == "[":
            return self.array(i + 1, "]", depth + 1)
        if kind == "op" and tok == "(":
            value, j = self.expr(i + 1, depth + 1)
            if self.peek(j, "op", ")"):
                return value, j + 1
            return UNKNOWN, self.skip_expr(j)
        return UNKNOWN, self.skip_expr(i)

    def array(self, i: int, close: str, depth: int):
        """A PHP array literal as a dict (keys as PHP would number them); UNKNOWN when a key
        is: it could be any other key, and overwrite it."""
        out: dict = {}
        top = None  # the highest int key so far
        while i < self.n and not self.peek(i, "op", close):
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


_INT_KEY = re.compile(r"-?[1-9][0-9]*|0")  # a string key PHP stores as an integer


def array_key(key):
    """A literal array key as PHP stores it (true is 1, null is "", 1.5 is 1, "5" is 5);
    UNKNOWN for what the reader does not know or PHP refuses (an array)."""
    if isinstance(key, bool):
        return int(key)
    if key is None:
        return ""
    if isinstance(key, float):
        return int(key) if math.isfinite(key) and abs(key) <= PHP_INT_MAX else UNKNOWN
    if isinstance(key, str) and _INT_KEY.fullmatch(key) and abs(int(key)) <= PHP_INT_MAX:
        return int(key)
    return key if isinstance(key, (str, int)) else UNKNOWN


def next_key(top):
    """The key PHP gives an element written without one, after int keys up to `top` (None:
    none yet); UNKNOWN where PHP versions differ (after keys below -1 only: 0 in PHP 7, top + 1
    since PHP 8.0, RFC negative_array_index; a pool's PHP version is not known here) or PHP
    refuses (the next key would pass PHP_INT_MAX)."""
    if top is None:
        return 0
    if top < -1 or top >= PHP_INT_MAX:
        return UNKNOWN
    return top + 1


def signed(sign: str, value):
    """PHP's unary `-value` or `+value` of a number read; UNKNOWN for anything else (PHP
    turns strings and booleans into numbers there: not worth a guess)."""
    if type(value) not in (int, float):
        return UNKNOWN
    return -value if sign == "-" else value


def _concat(left, right):
    """PHP's `left . right` of two values read, or UNKNOWN where the reader would guess."""
    left, right = _php_str(left), _php_str(right)
    return UNKNOWN if left is UNKNOWN or right is UNKNOWN else left + right


def _php_str(value):
    """A scalar as PHP makes it a string; UNKNOWN for what the reader does not convert."""
    if value is True:
        return "1"
    if value is False or value is None:  # not `in (False, None)`: 0 == False, and 0 is "0"
        return ""
    if isinstance(value, float):
        # PHP's precision=14; its exponent form ("1.0E+25") and INF/NAN are not worth a guess
        text = format(value, ".14G")
        return text if math.isfinite(value) and "E" not in text else UNKNOWN
    if isinstance(value, (str, int)):
        return str(value)
    return UNKNOWN  # an array, UNKNOWN itself


@dataclass
class PhpFacts:
    """What a PHP config file states literally: define()s and top-level assignments."""

    file: str  # system path
    exists: bool = False
    defines: dict = field(default_factory=dict)  # NAME -> value (first define wins, as in PHP)
    assigns: dict = field(default_factory=dict)  # "$var" -> value (last assignment wins)
    lines: dict = field(default_factory=dict)  # NAME / "$var" -> line number
    problems: list = field(default_factory=list)  # "file:line: message" strings
    uid: int | None = None  # the file read's owner, group and permission bits: whose word its
    gid: int | None = None  # paths are (named_path)
    mode: int | None = None

    def define(self, name, default=None):
        return self.defines.get(name, default)

    def where(self, name) -> str:
        line = self.lines.get(name)
        return f"{self.file}:{line}" if line else self.file


def read_php(path: Path, system_path: str, abspath: str | None = None,
             serverroot: str | None = None, constants: dict | None = None) -> PhpFacts:
    """Read define()s and assignments from the PHP file at `path` (on disk). Never raises.

    The same file read again in this process (wp-config.php by WordPress and again by an
    add-on's plugin) is parsed once: see _FactsCache. Each call gets its own copy, so a
    plugin changing what it got cannot change what another plugin gets."""
    ctx_key = _ctx_key(system_path, abspath, serverroot, constants)
    key = None
    if ctx_key is not None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                   ctx_key)
            hit = _CACHE.get(key)
            if hit is not None:
                return _copy_facts(hit)
    facts = PhpFacts(file=system_path)
    try:
        data, st = read_regular(path, MAX_READ + 1)
    except NotRegular:
        facts.problems.append(f"{system_path}: not a regular file: not read")
        return facts
    except OSError as exc:
        if path.exists():
            facts.problems.append(f"{system_path}: cannot read: {exc.strerror}")
        return facts
    facts.exists = True
    facts.uid, facts.gid, facts.mode = st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    if len(data) > MAX_READ:
        facts.problems.append(f"{system_path}: larger than {MAX_READ} bytes: only the start was read")
        data = data[:MAX_READ]
    _parse(facts, data.decode("utf-8", "replace"),
           Context(system_path, abspath, serverroot, dict(constants or {})))
    if key is not None:
        # keyed by what was really read (the file may have changed since the stat above)
        _CACHE.put(key[:1] + (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, ctx_key),
                   st, _copy_facts(facts))
    return facts


# Texts up to KEPT_TEXT characters are lexed once: a thousand sites' version.php (929 bytes,
# one WordPress release) are one text. Small and few, so hostile files kept here cost a few
# MB at most (a token per character: ~50 bytes each); a site's own wp-config.php is one of a
# kind and not kept.
KEPT_TEXT = 2048


@functools.lru_cache(maxsize=64)
def _lex_kept(text: str) -> tuple[tuple, tuple, tuple]:
    """_lex() of a small text seen again. Tuples: every reader of a kept result shares it."""
    kinds, values, starts = _lex(text)
    return tuple(kinds), tuple(values), tuple(starts)


def _parse(facts: PhpFacts, text: str, ctx: Context) -> None:
    """Fill `facts` with the define()s and statement-level assignments of `text`."""
    lexed = _lex_kept(text) if len(text) <= KEPT_TEXT else _lex(text)
    kinds, values, starts = lexed
    line = _Lines(text)
    parser = _Parser(lexed, ctx)
    n = len(kinds)
    i = 0
    statement_start = True
    while i < n:
        kind = kinds[i]
        if kind == "ident" and values[i].lower() == "define" and parser.peek(i + 1, "op", "("):
            name, j = parser.expr(i + 2)
            if isinstance(name, str) and parser.peek(j, "op", ","):
                value, j = parser.expr(j + 1)
                if name not in facts.defines:
                    facts.defines[name] = value
                    facts.lines[name] = line(starts[i])
            i = max(j, i + 1)
            statement_start = False
            continue
        if statement_start and kind == "var" and parser.peek(i + 1, "op", "="):
            value, j = parser.expr(i + 2)
            facts.assigns[values[i]] = value
            facts.lines[values[i]] = line(starts[i])
            i = max(j, i + 2)
            statement_start = False
            continue
        statement_start = kind == "op" and values[i] in (";", "{", "}", ")") or kind == "other" \
            and values[i] in "{}"
        i += 1


# --- the cache of parsed files ----------------------------------------------------------

# Constants a cached result may depend on: plain immutable values only (a plugin's own
# object could change after the call, or compare equal to a different value: 1 == True).
_PLAIN = (str, int, float, bool, type(None))


def _ctx_key(system_path, abspath, serverroot, constants):
    """What besides the file the facts depend on, as a hashable key; None: do not cache."""
    parts = [system_path, abspath, serverroot]
    if any(type(p) not in _PLAIN for p in parts):
        return None
    items = []
    for name, value in (constants or {}).items():
        if type(name) not in _PLAIN or type(value) not in _PLAIN:
            return None
        items.append((type(name).__name__, name, type(value).__name__, value))
    return tuple((type(p).__name__, p) for p in parts) + (tuple(sorted(items, key=repr)),)


class _FactsCache:
    """Parsed files of this process, least recently used first out.

    Keyed by the path, the file's identity and its size, mtime and ctime (ctime moves on
    every write, rename over and utime, and cannot be set back), plus what the facts depend
    on besides the file (_ctx_key). A file changed within RACY_NS of its read could share
    its timestamps with the version read (the kernel's clock is coarse): such a file is not
    kept (as git treats "racily clean" index entries). Bounded in entries and in the bytes
    of the files behind them, so hostile 1 MiB configs cannot fill the memory."""

    MAX_ENTRIES = 4096
    MAX_BYTES = 32 << 20
    RACY_NS = 2_000_000_000

    def __init__(self):
        self.entries: OrderedDict = OrderedDict()
        self.bytes = 0

    def get(self, key):
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            return hit[1]
        return None

    def put(self, key, st, facts: PhpFacts) -> None:
        if st.st_size > self.MAX_BYTES // 64 or key in self.entries:
            return
        if max(st.st_mtime_ns, st.st_ctime_ns) > time.time_ns() - self.RACY_NS:
            return
        self.bytes += st.st_size  # first: a hook's time limit striking in between overcounts, never under
        self.entries[key] = (st.st_size, facts)
        while len(self.entries) > self.MAX_ENTRIES or self.bytes > self.MAX_BYTES:
            _, (size, _) = self.entries.popitem(last=False)
            self.bytes -= size

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


_CACHE = _FactsCache()


def _copy_value(value):
    if type(value) is dict:
        return {k: _copy_value(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_value(v) for v in value]
    return value  # str, int, float, bool, None, UNKNOWN: immutable


def _copy_facts(facts: PhpFacts) -> PhpFacts:
    return PhpFacts(file=facts.file, exists=facts.exists, defines=_copy_value(facts.defines),
                    assigns=_copy_value(facts.assigns), lines=dict(facts.lines),
                    problems=list(facts.problems), uid=facts.uid, gid=facts.gid,
                    mode=facts.mode)


# --- plugin headers and versions -------------------------------------------------------

_HEADER_CACHE_BYTES = 8192  # WordPress's get_file_data() reads the first 8 KiB too


def plugin_header(path: Path, field_name: str) -> str | None:
    """A WordPress file header field ("Version", "Plugin Name"), as get_file_data reads it."""
    try:
        head = read_regular(path, _HEADER_CACHE_BYTES)[0].decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    m = re.search(r"^[ \t/*#@]*" + re.escape(field_name) + r":(.*)$", head, re.I | re.M)
    if not m:
        return None
    value = re.sub(r"\s*(?:\*/|\?>).*", "", m.group(1)).strip()
    return clean_version(value) if field_name.lower() == "version" else value[:200]


def clean_version(value) -> str | None:
    """A version string fit for display in a comment, or None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if re.fullmatch(r"[0-9A-Za-z.+~_-]{1,40}", value) else None


# --- paths ------------------------------------------------------------------------------

# Temp directories every pool shares: an app's own dir there, never the whole of one.
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")
# Paths a config value may never turn into a writable rule, whatever the app says.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
               "/root", "/run", "/sbin", "/sys", "/usr", "/var/lib/dpkg", "/var/lib/apt",
               "/var/log", "/var/spool", "/var/cache/apt")


_SYSTEM_PREFIXES = tuple(d + "/" for d in SYSTEM_DIRS)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_path(path: str) -> str | None:
    """Why `path` must not become a read/write tree of an app, or None when acceptable."""
    return _unsafe(path, system_ok=False)


def _unsafe(path, system_ok: bool) -> str | None:
    if not isinstance(path, str) or not path.startswith("/"):
        return "not an absolute path"
    if _CONTROL.search(path):
        return "contains a control character"
    norm = posixpath.normpath(path)
    if not system_ok and (norm in SYSTEM_DIRS or norm.startswith(_SYSTEM_PREFIXES)):
        d = next(d for d in SYSTEM_DIRS if norm == d or norm.startswith(d + "/"))
        return f"inside the system directory {d}"
    if norm.count("/") < 2 or norm in ("/var/www", "/srv/www", "/home/www"):
        return "too broad (a top-level directory)"
    if norm in SHARED_TEMP:
        return "every pool's temp directory (a directory of its own inside it is fine)"
    return None


def is_within(path: str, parent: str) -> bool:
    parent = parent.rstrip("/") or "/"
    return path == parent or path.startswith(parent + "/") or parent == "/"


def find_binaries(site, names, dirs=("/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin")) -> list[str]:
    """Canonical system paths of the helper programs present on disk (AppArmor matches
    the resolved file, so /usr/bin/which is /usr/bin/which.debianutils on Debian)."""
    out = []
    for name in names:
        for d in dirs:
            system = f"{d}/{name}"
            try:
                canon = site.canonical(system)
            except Exception:  # a symlink loop in the tree: the helper is unusable anyway
                continue
            if system_file(site.disk(canon)) and canon not in out:
                out.append(canon)
                break
    return out


def pool_names(site, path: str) -> bool:
    """Whether the pool points at `path` itself: its chdir, doc_root or an open_basedir
    entry, or a vhost that passes this pool's PHP there (`alias /usr/share/phpmyadmin/;`,
    Debian's `Alias /phpmyadmin ...`: site.web_roots). For the roots hook: a packaged app
    claims its directory only for the pools configured to serve it."""
    pool = site.pool
    named = [getattr(pool, "chdir", None) or "", site_ini(site, "doc_root") or ""]
    named += (site_ini(site, "open_basedir") or "").split(":")
    named += list(getattr(site, "web_roots", None) or [])
    want = path.rstrip("/")
    return any(isinstance(p, str) and p.rstrip("/") == want for p in named if p)


def canonical_or_none(site, path):
    try:
        return site.canonical(path)
    except Exception:
        return None


def site_ini(site, key: str):
    """The effective PHP setting of the site's pool (None if the pool cannot say)."""
    getter = getattr(site.pool, "ini", None)
    if callable(getter):
        try:
            return getter(key)
        except Exception:
            return None
    return None


def temp_dir(site) -> str:
    """Where PHP's sys_get_temp_dir() points for this pool: sys_temp_dir, else TMPDIR, else /tmp."""
    value = site_ini(site, "sys_temp_dir")
    if not value:
        env = getattr(site.pool, "env", None) or {}
        value = env.get("TMPDIR") if isinstance(env, dict) else None
    if isinstance(value, str) and value.startswith("/") and not unsafe_path(value.rstrip("/") + "/x"):
        return canonical_or_none(site, value.rstrip("/")) or "/tmp"
    return "/tmp"




def any_case(ext: str) -> str:
    """An AARE for `ext` in any letter case ("jpg" -> "[jJ][pP][gG]"): uploads keep the
    visitor's file name, so IMG_1.JPG is as common as img_1.jpg."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)


def ext_glob(exts) -> str:
    """AARE alternation of file extensions, any case: "{[jJ][pP][gG],[pP][nN][gG]}"."""
    return _ext_glob(tuple(exts))


@functools.lru_cache(maxsize=256)
def _ext_glob(exts: tuple) -> str:  # the same lists in every pool: build each once per run
    if len(exts) == 1:  # apparmor_parser refuses a one-item {alternation}
        return any_case(exts[0])
    return "{" + ",".join(any_case(e) for e in exts) + "}"
