"""AARE globs as small automata, to decide questions about path SETS without listing them.

"Can this rule's paths include a code name?", "can they reach another pool's directory?"
and "is every path it writes inside the pool's own directories?" are questions about
regular languages. Enumerating spellings explodes on case-folded lists
(`**.{[jJ][pP][gG],...}` has astronomically many); automata answer in time linear in the
pattern: a glob becomes an NFA over character sets (`compile`), and `intersect` walks the
product of several automata breadth-first, so an empty result proves the intersection
empty and a non-empty one is the shortest path string in it (for error messages).

Semantics follow apparmor_parser (parser_regex.c `convert_aaregex_to_pcre`), not
python3-apparmor's approximation:
- `?` is one character except `/`; `*` any run without `/`; `**` any run;
- a `*`/`**` run right after a `/` and followed by `/` or the end of the pattern matches
  at least one character, and not a `/` first (`/dir/*` is not `/dir/`, but `/dir/*.php`
  does match `/dir/.php`);
- `[...]`, `[^...]` classes with ranges and backslash escapes (a negated class can match
  `/`, as in the parser); `{a,b}` alternations, nested; `\\x` is the literal x;
- repeated slashes in a pattern collapse to one, as the parser's filter_slashes does.
Paths never hold NUL, so the alphabet is every other character.

Besides globs, `Under` is a complete deterministic automaton for "this literal path, or
(for a tree) anything below it": the other pools' directories, the pool's own ones, or
directories whose code names a deny rule carves out. Passed in `avoid`, it subtracts.
"""

from __future__ import annotations

import re
from collections import deque
from functools import lru_cache

_PICK = "xabcdefghijklmnopqrstuvwyz0123456789_-.XABCDEFGHIJKLMNOPQRSTUVWYZ"


class CharSet:
    """A set of characters: `chars` itself, or (neg) every character but `chars`."""

    __slots__ = ("neg", "chars")

    def __init__(self, chars, neg: bool = False):
        self.chars = frozenset(chars)
        self.neg = neg

    def meet(self, other: "CharSet") -> "CharSet | None":
        """The intersection, or None when it is empty."""
        if not self.neg and not other.neg:
            c = self.chars & other.chars
            return CharSet(c) if c else None
        if not self.neg:
            c = self.chars - other.chars
            return CharSet(c) if c else None
        if not other.neg:
            c = other.chars - self.chars
            return CharSet(c) if c else None
        return CharSet(self.chars | other.chars, True)  # the alphabet is unbounded: never empty

    def __contains__(self, c: str) -> bool:
        return (c in self.chars) != self.neg

    def pick(self) -> str:
        """A readable member (for witnesses)."""
        if not self.neg:
            return min(self.chars, key=lambda c: (_PICK.find(c) if c in _PICK else len(_PICK), c))
        for c in _PICK:
            if c not in self.chars:
                return c
        return next(chr(i) for i in range(0x100, 0x10000) if chr(i) not in self.chars)

    def __repr__(self):
        return f"CharSet({''.join(sorted(self.chars))!r}{', neg' if self.neg else ''})"


ANY = CharSet("\0", True)
NOT_SLASH = CharSet("/\0", True)


def single(c: str) -> CharSet:
    return CharSet(c)


class Nfa:
    """An epsilon-free NFA: moves[state] = ((CharSet, target), ...); start is state 0."""

    __slots__ = ("moves", "finals")

    def __init__(self, moves, finals):
        self.moves = moves
        self.finals = finals

    start = 0

    def step(self, state):
        return self.moves[state]

    def accepting(self, state) -> bool:
        return state in self.finals

    def __len__(self):
        return len(self.moves)


# --- glob -> NFA ------------------------------------------------------------------------

class _Thompson:
    """Builds an NFA with epsilon moves; `finish` removes them."""

    def __init__(self):
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[CharSet, int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def finish(self, start: int, end: int) -> Nfa:
        closure_cache: dict[int, frozenset] = {}

        def closure(s: int) -> frozenset:
            got = closure_cache.get(s)
            if got is None:
                seen, todo = {s}, [s]
                while todo:
                    for t in self.eps[todo.pop()]:
                        if t not in seen:
                            seen.add(t)
                            todo.append(t)
                got = closure_cache[s] = frozenset(seen)
            return got

        # Only the start and the targets of character moves survive.
        index = {start: 0}
        order = [start]
        moves, finals = [], set()
        i = 0
        while i < len(order):
            s = order[i]
            out = []
            for u in closure(s):
                for cs, t in self.edges[u]:
                    if t not in index:
                        index[t] = len(order)
                        order.append(t)
                    out.append((cs, index[t]))
            moves.append(tuple(out))
            if end in closure(s):
                finals.add(i)
            i += 1
        return Nfa(tuple(moves), frozenset(finals))


class GlobError(ValueError):
    pass


def _collapse_slashes(pattern: str) -> str:
    out, prev = [], ""
    for c in pattern:
        if c == "/" and prev == "/":
            continue
        out.append(c)
        prev = c
    return "".join(out)


def _parse_class(p: str, i: int) -> tuple[CharSet, int]:
    """`p[i]` is the first character after `[`; returns the set and the index after `]`."""
    neg = i < len(p) and p[i] == "^"
    if neg:
        i += 1
    chars: set[str] = set()
    prev = None  # the last single character, start of a possible range
    while True:
        if i >= len(p):
            raise GlobError("unclosed [ in pattern")
        c = p[i]
        if c == "]":
            break
        if c == "\\":
            if i + 1 >= len(p):
                raise GlobError("trailing backslash in pattern")
            c = p[i + 1]
            i += 2
        elif c == "-" and prev is not None and i + 1 < len(p) and p[i + 1] != "]":
            hi = p[i + 1]
            j = i + 2
            if hi == "\\" and i + 2 < len(p):
                hi, j = p[i + 2], i + 3
            if ord(hi) < ord(prev):
                raise GlobError(f"bad range {prev}-{hi} in pattern")
            chars.update(chr(k) for k in range(ord(prev), ord(hi) + 1))
            prev = None
            i = j
            continue
        else:
            i += 1
        chars.add(c)
        prev = c
    chars.discard("\0")
    return CharSet(chars | ({"\0"} if neg else set()), neg), i + 1


@lru_cache(maxsize=8192)
def compile(pattern: str) -> Nfa:  # noqa: A001 - the natural name
    """The NFA of an AARE glob (see the module doc for the semantics). Raises GlobError."""
    try:
        return _compile(pattern)
    except GlobError as exc:
        raise GlobError(f"{pattern}: {exc}") from None


def _compile(pattern: str) -> Nfa:
    p = _collapse_slashes(pattern)
    b = _Thompson()
    pos = 0

    def seq(depth: int) -> tuple[int, int, str]:
        """Parse until `,`/`}` (inside a group) or the end; (start, end, stop char)."""
        nonlocal pos
        start = cur = b.state()
        last = ""  # the last character the parser would have emitted: "/" matters

        def add(cs: CharSet):
            nonlocal cur
            nxt = b.state()
            b.edges[cur].append((cs, nxt))
            cur = nxt

        while pos < len(p):
            c = p[pos]
            if c == "\\":
                if pos + 1 >= len(p):
                    raise GlobError("trailing backslash in pattern")
                add(single(p[pos + 1]))
                last = p[pos + 1]
                pos += 2
            elif c == "*":
                run = pos
                while run < len(p) and p[run] == "*":
                    run += 1
                double = run - pos >= 2
                if last == "/" and (run == len(p) or p[run] == "/"):
                    add(NOT_SLASH)  # a path element has at least one character
                loop = b.state()
                b.eps[cur].append(loop)
                b.edges[loop].append((ANY if double else NOT_SLASH, loop))
                cur = loop
                pos = run
                last = "*"
            elif c == "?":
                add(NOT_SLASH)
                pos += 1
                last = "?"
            elif c == "[":
                cs, pos = _parse_class(p, pos + 1)
                add(cs)
                last = "]"
            elif c == "{":
                pos += 1
                join = b.state()
                while True:
                    s, e, stop = seq(depth + 1)
                    b.eps[cur].append(s)
                    b.eps[e].append(join)
                    if stop == "}":
                        break
                    if stop != ",":
                        raise GlobError("unclosed { in pattern")
                cur = join
                last = ")"
            elif c in ",}" and depth:
                pos += 1
                return start, cur, c
            elif c == "}":
                raise GlobError("} without { in pattern")
            elif c == "]":
                raise GlobError("] without [ in pattern")
            else:
                add(single(c))
                last = c
                pos += 1
        return start, cur, ""

    s, e, _ = seq(0)
    return b.finish(s, e)


# unrolled ("a*(\\.a*)*", not "(a|\\.)*"): one step per run of plain characters, not per character
_LITERAL = re.compile(r"[^\\*?\[{]*(?:\\.[^\\*?\[{]*)*")
_UNESCAPE = re.compile(r"\\(.)")


@lru_cache(maxsize=65536)
def literal_split(pattern: str) -> tuple[str, str]:
    """(the literal path before the first glob character, unescaped; the rest, as is)."""
    end = _LITERAL.match(pattern).end()
    literal = pattern[:end]
    if "\\" in literal:
        literal = _UNESCAPE.sub(r"\1", literal)
    if "//" in literal:  # as the parser collapses them
        literal = _collapse_slashes(literal)
    return literal, pattern[end:]


_SPECIAL = set('\\*?[]{}^",')


def escape(path: str) -> str:
    """A literal string as a glob that matches exactly it."""
    return "".join("\\" + c if c in _SPECIAL else c for c in path)


# --- literal path sets ------------------------------------------------------------------

class Under:
    """Complete DFA for a set of literal paths: `(path, tree)` accepts the path itself and,
    for a tree, every path below it ("path/" included); tree "below": only below it."""

    ALL, DEAD = 1, 0  # states besides the consumed prefix strings

    def __init__(self, items):
        self.exact = set()
        self.trees = set()  # "path/" for every tree
        nxt: dict[str, set] = {}
        for path, tree in items:
            if tree != "below":
                self.exact.add(path)
            words = [path + "/"] if tree else [path]
            if tree:
                self.trees.add(path + "/")
            for w in words:
                for k in range(len(w)):
                    nxt.setdefault(w[:k], set()).add(w[k])
        self.next = {k: tuple(sorted(v)) for k, v in nxt.items()}
        self._moves: dict[str, tuple] = {}

    start = ""

    def accepting(self, state) -> bool:
        return state == Under.ALL or (isinstance(state, str) and state in self.exact)

    def step(self, state):
        if state == Under.ALL:
            return ((ANY, Under.ALL),)
        if state == Under.DEAD:
            return ((ANY, Under.DEAD),)
        got = self._moves.get(state)
        if got is None:
            chars = self.next.get(state, ())
            out = []
            for c in chars:
                t = state + c
                out.append((single(c), Under.ALL if t in self.trees else t))
            out.append((CharSet(set(chars) | {"\0"}, True), Under.DEAD))
            got = self._moves[state] = tuple(out)
        return got

    def __contains__(self, path: str) -> bool:
        return path in self.exact or any(path.startswith(t) for t in self.trees)


# --- questions --------------------------------------------------------------------------

MAX_STATES = 500_000  # a product this big means a pathological pattern: refuse, do not hang


def intersect(*automata, avoid=()) -> str | None:
    """The shortest string every automaton accepts and no `avoid` automaton does, or None.

    `automata` are Nfa or Under objects; `avoid` must be complete deterministic ones
    (Under), so that "not accepting" there means "not in its language".
    """
    comps = list(automata) + list(avoid)
    n = len(automata)
    start = tuple(a.start for a in comps)
    parent = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if all(comps[i].accepting(s) for i, s in enumerate(state[:n])) and \
                not any(comps[n + i].accepting(s) for i, s in enumerate(state[n:])):
            out = []
            while parent[state] is not None:
                state, c = parent[state]
                out.append(c)
            return "".join(reversed(out))
        # every combination of one move per component whose character sets meet
        partial = [(None, ())]
        for i, s in enumerate(state):
            grown = []
            for cs, targets in partial:
                for mcs, t in comps[i].step(s):
                    m = mcs if cs is None else cs.meet(mcs)
                    if m is not None:
                        grown.append((m, targets + (t,)))
            partial = grown
            if not partial:
                break
        for cs, targets in partial:
            if targets not in parent:
                parent[targets] = (state, cs.pick())
                if len(parent) > MAX_STATES:
                    raise GlobError("pattern too complex to check")
                queue.append(targets)
    return None


def matches(nfa: Nfa, text: str) -> bool:
    """Does the automaton accept `text`? (plain NFA simulation)"""
    states = {0}
    for c in text:
        states = {t for s in states for cs, t in nfa.moves[s] if c in cs}
        if not states:
            return False
    return any(s in nfa.finals for s in states)


def glob_matches(pattern: str, path: str) -> bool:
    return matches(compile(pattern), path)


def example(pattern: str) -> str | None:
    """The shortest path the glob matches (None when it matches nothing)."""
    return intersect(compile(pattern))
