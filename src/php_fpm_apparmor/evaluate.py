"""What a rendered policy really allows, judged with Debian's python3-apparmor.

Used by the tests (every app operation granted, every attack refused) and `learn`; the
generator's invariants are decided on automata (invariants.py), not here.
It reads the RENDERED text back, abstractions included, so it judges what is installed,
not what we meant to install.

Debian 12's `apparmor.common.convert_regexp` ignores AARE escapes (`\\*` becomes a glob,
`|` an alternation). So before matching, an escaped special in a pattern and the same
literal character in a path are both mapped to one private-use code point: the matcher
then compares them as plain characters, and real globs keep their meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import apparmor
from apparmor.aare import AARE
from apparmor.common import AppArmorException
from apparmor.rule.file import FileRule as AAFileRule

from .errors import LibraryError
from .policy import is_code_name
from .sites import inside  # noqa: F401  (learn's evaluate.inside)

APPARMOR_DIR = "/etc/apparmor.d"
_SPECIAL = '\\*?[]{}^"|()+$.'
_PUA = {c: chr(0xE000 + i) for i, c in enumerate(_SPECIAL)}
_ENCODE_PATH = str.maketrans({c: _PUA[c] for c in '\\*?[]{}^"|'})
_VAR = re.compile(r"@\{([A-Za-z0-9_]+)\}")
_HEAD = re.compile(r"^(\^|profile\s+)([^\s{]+)(\s+flags=\([^)]*\))?\s*\{$")


def encode_pattern(aare: str) -> str:
    if "\\" not in aare and "|" not in aare:
        return aare
    out, i = [], 0
    while i < len(aare):
        c = aare[i]
        if c == "\\" and i + 1 < len(aare):
            nxt = aare[i + 1]
            out.append(_PUA.get(nxt, nxt))
            i += 2
            continue
        out.append(_PUA["|"] if c == "|" else c)
        i += 1
    return "".join(out)


def encode_path(path: str) -> str:
    return path.translate(_ENCODE_PATH)


_DECODE = str.maketrans({v: k for k, v in _PUA.items()})


def decode(text: str) -> str:
    return text.translate(_DECODE)


@lru_cache(maxsize=None)
def _aare(pattern: str) -> AARE:
    try:
        return AARE(encode_pattern(pattern), True)
    except AppArmorException as exc:  # not a path pattern: the rule cannot be judged
        raise ValueError(f"cannot evaluate pattern {pattern!r}: {exc}") from exc
    except Exception as exc:
        raise LibraryError(f"python3-apparmor {_library_version()}: apparmor.aare.AARE({pattern!r}) "
                           f"failed: {type(exc).__name__}: {exc}") from exc


def matches(pattern: str, path: str) -> bool:
    aare = _aare(pattern)
    try:
        return aare.match(encode_path(path))
    except Exception as exc:
        raise LibraryError(f"python3-apparmor {_library_version()}: AARE({pattern!r}).match({path!r}) "
                           f"failed: {type(exc).__name__}: {exc}") from exc


# --- tunables and abstractions ---------------------------------------------------------

@lru_cache(maxsize=4)
def tunables(base: str = APPARMOR_DIR) -> dict:
    vars_: dict[str, list[str]] = {}

    def read(name: str, depth=0):
        try:
            text = Path(base, name).read_text()
        except OSError:
            return
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            m = re.match(r'^include\s+(if exists\s+)?<([^>]+)>', line)
            if m and depth < 10:
                target = Path(base, m.group(2))
                files = sorted(p.name for p in target.iterdir()) if target.is_dir() else [None]
                for f in files:
                    read(m.group(2) + (f"/{f}" if f else ""), depth + 1)
                continue
            m = re.match(r"^@\{([A-Za-z0-9_]+)\}\s*(\+?=)\s*(.*)$", line)
            if m:
                values = [v.strip('"') for v in m.group(3).split()]
                if m.group(2) == "=":
                    vars_[m.group(1)] = values
                else:
                    vars_.setdefault(m.group(1), []).extend(values)

    read("tunables/global")
    return vars_


def expand_vars(text: str, vars_: dict, depth=0) -> str:
    def sub(m):
        if m.group(1) not in vars_:  # an empty stand-in would judge some other path
            raise ValueError(f"cannot evaluate {text.strip()}: @{{{m.group(1)}}} is not defined in tunables")
        values = vars_[m.group(1)]
        return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"

    out = _VAR.sub(sub, text)
    return expand_vars(out, vars_, depth + 1) if "@{" in out and depth < 8 else out


@dataclass
class Profile:
    name: str
    rules: list = field(default_factory=list)  # apparmor.rule.file.FileRule
    ours: list = field(default_factory=list)  # the subset written in our own text


def _make_file_rule():
    """The rule constructor of this python3-apparmor: 4.x `create_instance`, 3.x `parse`."""
    for name in ("create_instance", "parse"):
        if callable(getattr(AAFileRule, name, None)):
            return name, getattr(AAFileRule, name)
    raise LibraryError(f"python3-apparmor {_library_version()}: apparmor.rule.file.FileRule has "
                       f"neither create_instance() (4.x) nor parse() (3.x)")


def _library_version() -> str:
    try:
        from importlib.metadata import version
        return version("apparmor")
    except Exception:  # Debian installs it without metadata on some releases
        return getattr(apparmor, "__version__", "(version unknown)")


def new_file_rule(text: str):
    """One FileRule from rule text, or None when python3-apparmor says it is not a valid
    file rule (AppArmorException). Anything else is a library failure and says which call."""
    name, make = _make_file_rule()
    try:
        return make(text)
    except AppArmorException:
        return None
    except Exception as exc:
        raise LibraryError(f"python3-apparmor {_library_version()}: apparmor.rule.file.FileRule."
                           f"{name}({text!r}) failed: {type(exc).__name__}: {exc}") from exc


def _split_leading(path: str) -> list[str]:
    """`{/etc/,/usr/etc/}/x` -> [`/etc//x`, `/usr/etc//x`]: a multi-valued variable at the
    start of a path (@{etc_ro}, @{run}). python3-apparmor 3.0 refuses a path that starts
    with `{`, 4.1 accepts it: splitting gives both releases the same rules."""
    depth = 0
    for i, c in enumerate(path):
        depth += c == "{"
        depth -= c == "}"
        if depth == 0:
            break
    else:
        return [path]
    inner, rest, alts, cur, depth = path[1:i], path[i + 1:], [], "", 0
    for c in inner:
        if c == "," and depth == 0:
            alts.append(cur)
            cur = ""
            continue
        depth += (c == "{") - (c == "}")
        cur += c
    alts.append(cur)
    out = []
    for a in alts:
        out.extend(_split_leading(a + rest) if (a + rest).startswith("{") else [a + rest])
    return out


_PATH_START = re.compile(r'^((?:(?:audit|allow|deny|owner|other|file)\s+)*)(")?(\{.*)$')


@lru_cache(maxsize=65536)
def _file_rule(line: str, base: str = APPARMOR_DIR) -> tuple:
    """The file rule(s) of one policy line, parsed by python3-apparmor (cached: most lines
    recur in every pool); () when the line is no file rule or not one it can read."""
    vars_ = tunables(base)
    line = line.strip()
    if not line or line.startswith("#"):
        return ()
    line = re.sub(r"^(audit|allow)\s+", "", line)
    head = re.sub(r"^(deny|owner|other)\s+", "", line)
    head = re.sub(r"^(deny|owner|other)\s+", "", head)
    if not head.startswith(("/", '"/', "@{", '"@{', "{", '"{', "file ")):
        return ()
    # Debian 12's FileRule.parse cannot read \" or \\ inside quotes: encode them first,
    # as encode_path() does for paths.
    line = line.replace("\\\\", _PUA["\\"]).replace('\\"', _PUA['"'])
    left, arrow, target = expand_vars(line, vars_).partition(" -> ")
    left = re.sub(r"/{2,}", "/", left)  # variables end in "/" too; AppArmor collapses "//"
    m = _PATH_START.match(left)
    lefts = [m.group(1) + (m.group(2) or "") + re.sub(r"/{2,}", "/", p)
             for p in _split_leading(m.group(3))] if m else [left]
    rules = tuple(new_file_rule(one + arrow + target) for one in lefts)
    # exec rules with odd targets and such are not file access: python3-apparmor says so
    return () if None in rules else rules


@lru_cache(maxsize=256)
def abstraction(name: str, base: str = APPARMOR_DIR) -> tuple:
    """File rules of an include (abstraction), recursively, variables expanded. A file rule
    python3-apparmor cannot read is an error naming file:line (none in Debian 12's or 13's
    stock abstractions): a rule nobody checked must not count as absent."""
    path = Path(base, name)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file()]
    else:
        files = [path] if path.is_file() else []
    rules = []
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            m = re.match(r"^\s*#?include\s+(if exists\s+)?<([^>]+)>", line)
            if m:
                rules.extend(abstraction(m.group(2), base))
                continue
            try:
                found = _file_rule(line, base)
            except ValueError as exc:
                raise ValueError(f"{f}:{n}: {exc}") from exc
            if not found and _looks_like_file_rule(line.strip()):
                raise ValueError(f"{f}:{n}: cannot evaluate rule: {line.strip()}")
            rules.extend(found)
    return tuple(rules)


def _looks_like_file_rule(line: str) -> bool:
    if re.match(r"^@\{\w+\}\s*\+?=", line):  # a variable definition (tunables)
        return False
    return re.sub(r"^((audit|allow|deny|owner|other)\s+)*", "", line).startswith(('"', "/", "{", "@{", "file "))


def parse(text: str, parent: str = "php-fpm", base: str = APPARMOR_DIR) -> dict[str, Profile]:
    """Split one rendered php-fpm.d file into {profile name: Profile}; parent rules under `parent`."""
    profiles = {parent: Profile(parent)}
    stack = [profiles[parent]]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _HEAD.match(line)
        if m:
            prof = Profile(f"{parent}//{m.group(2)}")
            profiles[prof.name] = prof
            stack.append(prof)
            continue
        if line == "}":
            stack.pop()
            continue
        m = re.match(r"^include\s+(if exists\s+)?<([^>]+)>", line)
        if m:
            stack[-1].rules.extend(abstraction(m.group(2), base))
            continue
        rules = _file_rule(line, base)
        if rules:
            stack[-1].rules.extend(rules)
            stack[-1].ours.extend(rules)
        elif _looks_like_file_rule(line):
            # A rule of ours we cannot read is a rule nobody checked: refuse it.
            raise ValueError(f"cannot evaluate rule: {line}")
    return profiles


# --- questions --------------------------------------------------------------------------

_NEED = {"read": "r", "write": "w", "append": "a", "lock": "k", "link": "l", "mmap": "m"}


def _has(rule, need: str) -> bool:
    perms = rule.perms if isinstance(rule.perms, set) else set()
    if need == "w":
        return "w" in perms
    if need == "a":
        return bool({"a", "w"} & perms)
    return need in perms


def _rule_matches(rule, path: str) -> bool:
    if rule.all_paths if hasattr(rule, "all_paths") else False:
        return True
    return matches(rule.path.regex, path)


def allows(profile: Profile, op: str, path: str) -> bool:
    """True if `profile` grants `op` ("read", "write", ...) on `path` (deny rules win)."""
    need = _NEED[op]
    granted = False
    for rule in profile.rules:
        if _has(rule, need) and _rule_matches(rule, path):
            if rule.deny:
                return False
            granted = True
    return granted


def exec_transition(profile: Profile, path: str):
    """(mode, target) if `profile` may exec `path`, else None. target is a profile name."""
    found = None
    for rule in profile.rules:
        if rule.exec_perms and _rule_matches(rule, path):
            if rule.deny:
                return None
            target = rule.target.regex if rule.target not in (None, AAFileRule.ALL) and hasattr(rule.target, "regex") else None
            found = (rule.exec_perms, target)
    return found


def is_forbidden_name(path: str) -> bool:
    """Is `path` a code name (policy.CODE_EXTENSIONS/CODE_FILES, any letter case)?"""
    return is_code_name(path)
