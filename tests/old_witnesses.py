"""The enumerating checker that automata.py replaced, kept as a test oracle on small cases.

It fills each glob of a pattern with sample names (the last glob also with every
forbidden tail) and keeps the paths that end in a forbidden name: exponential in the
number of {...} and [...] items, so only small patterns are handed to it.
"""

import itertools
import re

from php_fpm_apparmor.evaluate import decode, encode_pattern

FORBIDDEN_SUFFIXES = (".php", ".phtml", ".phar")
FORBIDDEN_NAMES = (".maintenance", ".user.ini", ".htaccess")


def is_forbidden_name(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(FORBIDDEN_SUFFIXES) or name in FORBIDDEN_NAMES


def _alternatives(pattern: str, limit=64) -> list[str]:
    out, todo = [], [pattern]
    while todo and len(out) < limit:
        p = todo.pop()
        m = re.search(r"\{([^{}]*)\}", p)
        if not m:
            out.append(p)
            continue
        for alt in m.group(1).split(","):
            todo.append(p[: m.start()] + alt + p[m.end():])
    return out


_GLOB = re.compile(r"\*\*|\*|\?|\[[^\]]*\]")
_FORBIDDEN_TAILS = ["x" + s for s in FORBIDDEN_SUFFIXES] + list(FORBIDDEN_NAMES)
_TAIL_PREFIXES = sorted({t[:k] for t in _FORBIDDEN_TAILS for k in range(len(t) + 1)})
_LETTERS = sorted(set("".join(_FORBIDDEN_TAILS)))


def witnesses(pattern: str) -> tuple[str, ...]:
    out = []
    for alt in _alternatives(encode_pattern(pattern)):
        tokens = list(_GLOB.finditer(alt))
        if not tokens:
            out.append(decode(alt))
            continue
        choices = []
        for i, tok in enumerate(tokens):
            t = tok.group(0)
            last = i == len(tokens) - 1
            if t == "**":
                c = ["x/x"] + (_TAIL_PREFIXES + ["x/" + f for f in _TAIL_PREFIXES] if last else [])
            elif t == "*":
                c = ["x"] + (_TAIL_PREFIXES if last else [])
            else:
                c = _LETTERS
            choices.append(c)
        for combo in itertools.islice(itertools.product(*choices), 5000):
            s, pos = [], 0
            for tok, fill in zip(tokens, combo):
                s.append(alt[pos:tok.start()])
                s.append(fill)
                pos = tok.end()
            s.append(alt[pos:])
            out.append(decode("".join(s)))
    return tuple(out)
