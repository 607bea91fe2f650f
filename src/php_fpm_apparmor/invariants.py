"""The closed list of what a pool's hat and its children may hold, checked on the rendered text.

Whatever a rule's source (the core, a plugin, the admin's `read =`/`write =`), the text
that will be installed must keep to this list, or the pool is refused:

1. writes (w, a, l) only in the pool's own paths: its site roots, `write =` dirs, temp and
   session dirs, logs, socket, opcache file cache, chroot, and the data dirs its plugins
   declared (`policy.DataDir`);
2. never a code name (`policy.CODE_EXTENSIONS`/`CODE_FILES`, case-insensitive, the same
   list the deny globs use), unless a plugin named an exception for exactly that rule path
   (an exception may not cover a whole site root: one file there, or a subdirectory);
3. no path set both writable and executable or mappable (m, ix, Px, Cx);
4. exec only into this pool's child profiles or the shared `_sh`/`_sendmail`: no `ix` in
   the hat (a shell or interpreter there would run anything with the hat's rights), no
   `ux`/`Ux`, no transition by attachment;
5. no capabilities in the hat or its children (the master keeps the core's few);
6. signal and ptrace only with the master (`peer=php-fpm`); the master's part only with
   this pool's own profiles;
7. nothing of another pool: no rule reaches a path another pool owns (roots, data dirs,
   `write =` dirs, temp and session dirs, logs, sockets; shared system dirs such as /tmp
   excepted), no include of another pool's local file. The admin's `read =`/`write =` may
   cross only into what the same section lists in `share =`; each such crossing is
   reported (`Report.crossings`, shown by `check`).

Decided on automata (automata.py), never by listing spellings: a rule's pattern splits into
a literal prefix and a glob suffix; prefix relations are plain string comparisons (sorted
lists and bisect for the other pools' paths) and the suffix analysis is cached, so the
same plugin rule under 1,000 different roots is analysed once.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

from . import automata, sites
from .policy import CODE_EXT_GLOB, CODE_FILE_GLOB, CODE_NAMES, PARENT, PLUGIN_ABSTRACTIONS, lit, runtime_dirs

SHARED_CHILDREN = (f"{PARENT}//_sh", f"{PARENT}//_sendmail")
# Directories every pool may use at once (owner rules keep their files apart): nobody's own.
SHARED_DIRS = frozenset(sites.SYSTEM_DIRS) | {"/var/lib/php/sessions", "/dev/shm", "/run/php"}
_WRITE = set("wal")
DATA_DIR = "data dir ("  # Owned.what of an app's data dir: "data dir (<plugin>)"
_CODE = automata.compile(CODE_NAMES)


# --- what a pool owns -------------------------------------------------------------------

@dataclass(frozen=True)
class Owned:
    """A path a pool owns: a literal canonical path, and (tree) everything below it."""

    path: str
    tree: bool
    what: str  # "root", "session dir", "data dir (nextcloud)", ...
    pool: str = ""  # the pool's name, for messages
    hat: str = ""  # the pool's hat: its identity within one run

    @property
    def pattern(self) -> str:
        """The AARE of the owned path set."""
        return lit(self.path) + ("{,/**}" if self.tree else "")

    def covers(self, path: str, itself: bool = True) -> bool:
        """Is `path` this path (unless not `itself`, for a tree) or below it?"""
        if self.tree:
            return (itself and path == self.path) or path.startswith(self.path.rstrip("/") + "/")
        return path == self.path


@lru_cache(maxsize=65536)
def _canonical(sysroot: str, path: str) -> str:
    return sites.canonical(sysroot, path)  # the same few dirs in many pools: once per run


def owned_paths(entry_or_policy) -> list[Owned]:
    """Everything a pool is granted to write or lock, and its roots, as `Owned` paths.

    Takes a policy, or a generate.Entry (one without a policy yet still owns its site)."""
    pol = getattr(entry_or_policy, "policy", None) or entry_or_policy
    site = pol.site
    pool, hat = site.pool, pol.hat
    name = pool.name
    data_dirs = getattr(pol, "data_dirs", None) or []
    chroot = (pool.chroot or "").rstrip("/")

    def canonical(path: str) -> str:  # Site.canonical, cached for the run
        return _canonical(site.sysroot, path)

    def worker(path: str) -> str:  # Site.worker: a chrooted worker's paths are below its chroot
        return canonical(chroot + path if chroot and path.startswith("/") else path)

    out = [Owned(r, True, "root", name, hat) for r in site.roots]
    out += [Owned(p, True, "write = dir", name, hat) for p in site.write_paths]
    for key, value in sorted(runtime_dirs(pool).items()):
        out.append(Owned(worker(value), True, key.replace("session.save_path", "session dir"), name, hat))
    listen = pool.listen or ""
    if listen.startswith("/"):
        out.append(Owned(canonical(listen), False, "socket", name, hat))
    for key, value in (("access.log", pool.access_log), ("slowlog", pool.slowlog)):
        if value and value.startswith("/"):
            out.append(Owned(canonical(value), False, key, name, hat))
    for key, tree in (("error_log", False), ("opcache.file_cache", True)):
        value = pool.ini(key)
        if value and value.startswith("/"):
            out.append(Owned(worker(value), tree, key, name, hat))
    if chroot:
        out.append(Owned(canonical(chroot), True, "chroot", name, hat))
    out += [Owned(d.path.rstrip("/") or "/", True, f"{DATA_DIR}{d.source})", name, hat) for d in data_dirs]
    return out


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class Index:
    """The paths of many pools, sorted, for "which of them can this pattern reach?"."""

    def __init__(self, owned):
        items = [o for o in owned if not (o.tree and o.path in SHARED_DIRS)]
        items.sort(key=lambda o: o.path)
        self.items = items
        self.keys = [o.path for o in items]
        self.trees: dict[str, list[Owned]] = {}
        self.roots: dict[str, set] = {}  # hat -> its roots
        # Literals no pool's path is near: every pool's system rules (/bin/sh, /etc/ssl/certs/)
        # asked once, not once per pool.
        self.clear: set[str] = set()
        for o in items:
            if o.tree:
                self.trees.setdefault(o.path, []).append(o)
            if o.what == "root":
                self.roots.setdefault(o.hat, set()).add(o.path)

    @classmethod
    def of(cls, entries) -> "Index":
        """The index of every entry's owned paths (entries or policies; those without a
        site, which own nothing, are skipped)."""
        return cls(o for e in entries if (getattr(e, "policy", None) or e).site is not None
                   for o in owned_paths(e))

    def near(self, literal: str, hat: str = "") -> list[Owned]:
        """Other pools' paths a pattern starting with `literal` might reach: those below
        it (plain prefix) and those it lies in (its "/"-ancestors)."""
        if literal in self.clear:
            return []
        lo = bisect.bisect_left(self.keys, literal)
        hi = bisect.bisect_left(self.keys, literal + "\U0010ffff", lo)
        found = self.items[lo:hi]
        trees = self.trees
        i = literal.find("/", 1)
        if "/" in trees:
            found = found + trees["/"]
        while i > 0:
            got = trees.get(literal[:i])
            if got:
                found = found + got
            i = literal.find("/", i + 1)
        if not found:
            self.clear.add(literal)
        return [o for o in found if o.hat != hat] if hat else found

    def owner(self, path: str, hat: str = "") -> Owned | None:
        """The other pool's Owned that a plain path lies in, if any."""
        return next((o for o in self.near(path, hat) if o.covers(path, False)), None)

    def crossing(self, pattern: str, own=(), hat: str = "", also=(), limit: int = 3) -> list[tuple[Owned, str]]:
        """[(other pool's Owned, a path of `pattern` inside it)], at most `limit`.

        Roots win: the pattern's pool's own roots nested in the other's path are its own (a
        site inside another site's tree reads its own files), and another pool's non-root
        path inside one of its roots is not the other's to claim (that pool is refused for
        reaching this root instead). Equal paths of the same kind (two pools serving one
        site, one temp dir) are shared; an app's data dir, named in the site's own files,
        only between pools of one site (else one site's config could name another's data
        dir and read it). `also`: literal trees to discount (`share =`)."""
        literal, rest = automata.literal_split(pattern)
        cands = self.near(literal, hat)
        roots = [o.path for o in own if o.what == "root"]

        def shared(o: Owned, c: Owned) -> bool:
            if o.path != c.path or (o.what == "root") != (c.what == "root"):
                return False
            if o.what.startswith(DATA_DIR) or c.what.startswith(DATA_DIR):
                return not self.roots.get(c.hat, set()).isdisjoint(roots)
            return True

        cands = [c for c in cands if (c.what == "root" or not any(_inside(c.path, r) for r in roots))
                 and not any(shared(o, c) for o in own)]
        if not cands:
            return []
        carve = [o for o in own if o.what == "root" and any(_inside(o.path, c.path) for c in cands)]
        carve += [Owned(p, True, "share") for p in also]
        if any(o.tree and literal.startswith(o.path.rstrip("/") + "/") for o in carve):
            return []  # every path of the rule is inside a path of its own
        if not rest:
            if any(o.covers(literal) for o in carve):
                return []
            return [(c, literal) for c in cands if c.covers(literal, False)][:limit]
        nfa = automata.compile(pattern)
        avoid = [automata.Under({(o.path, o.tree) for o in carve})] if carve else []
        out = []
        while cands and len(out) < limit:
            # Another pool's directory itself is only a name in its parent (often a shared
            # one, like /tmp/php-blog in /tmp): what is below it is that pool's.
            w = automata.intersect(nfa, automata.Under({(c.path, "below" if c.tree else False) for c in cands}),
                                   avoid=avoid)
            if w is None:
                break
            hit = [c for c in cands if c.covers(w, False)]
            out += [(c, w) for c in hit]
            cands = [c for c in cands if c not in hit]
        return out[:limit]


def crossing(pattern: str, others: Index, own=(), hat: str = "") -> list[tuple[Owned, str]]:
    """Which other pools' paths can `pattern` reach? (see Index.crossing)"""
    return others.crossing(pattern, own, hat)


# --- reading the rendered text ----------------------------------------------------------

@dataclass(slots=True)
class Line:
    """One rule of a rendered pool file, as the parser will read it."""

    profile: str  # "php-fpm" (the master's part) or "php-fpm//<name>"
    text: str
    kind: str  # file, exec, capability, signal, ptrace, network, include
    source: str  # core, config, or the plugin, from the provenance comment
    path: str = ""  # the AARE inside the quotes, variables expanded
    perms: str = ""  # file permissions (rwaklm)
    exec_mode: str = ""  # ix, Px, Cx, ... for exec rules
    target: str = ""
    deny: bool = False
    peer: str = ""
    name: str = ""  # capability or include name


_FILE = re.compile(r'^(audit\s+)?(deny\s+)?(owner\s+)?"([^"\\]*(?:\\.[^"\\]*)*)"\s+([A-Za-z]+)(?:\s+->\s+(\S+))?,$')
_PERMS = re.compile(r"^([rwaklm]*)((?:[pPcC]i?|[uU]|i)x)?$")
_CAP = re.compile(r"^capability\s+([a-z0-9_]+),$")
_SIGNAL = re.compile(r"^signal\s+\(([a-z, ]+)\)(?:\s+set=\([a-z0-9 ]+\))?\s+peer=(\S+),$")
_PTRACE = re.compile(r"^ptrace\s+\(([a-z, ]+)\)\s+peer=(\S+),$")
_NETWORK = re.compile(r"^network(\s+[a-z0-9]+)*,$")
_INCLUDE = re.compile(r"^include(\s+if exists)?\s+<([^>]+)>$")
_HEAD = re.compile(r"^(\^|profile\s+)(\S+)\s+flags=\([^)]*\)\s*\{$")


class Unreadable(ValueError):
    pass


@lru_cache(maxsize=65536)
def _parse_rule(line: str) -> tuple:
    """(kind, fields...) of one rule line; Unreadable for anything outside our grammar."""
    m = _FILE.match(line)
    if m:
        perm = _PERMS.match(m.group(5))
        if not perm:
            raise Unreadable(f"unknown permissions in {line}")
        path = m.group(4).replace('\\"', '"')
        if "@{" in path:
            from . import evaluate
            path = evaluate.expand_vars(path, evaluate.tunables())
        mode = perm.group(2) or ""
        if mode:
            return ("exec", path, perm.group(1), mode, m.group(6) or "", bool(m.group(2)))
        if m.group(6):
            raise Unreadable(f"a transition without exec permission: {line}")
        return ("file", path, perm.group(1), "", "", bool(m.group(2)))
    for kind, rx in (("capability", _CAP), ("signal", _SIGNAL), ("ptrace", _PTRACE), ("include", _INCLUDE)):
        m = rx.match(line)
        if m:
            return (kind, m.group(2) if kind in ("signal", "ptrace", "include") else m.group(1))
    if _NETWORK.match(line):
        return ("network",)
    raise Unreadable(f"cannot check rule: {line}")


def read(text: str) -> tuple[list[Line], list[str]]:
    """(rules, profile names) of a rendered pool file. Raises Unreadable."""
    lines, names = [], []
    stack = [PARENT]
    source = "core"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        first = line[0]
        if first == "#":
            source = line[1:].strip().split(": ", 1)[0]
            continue
        m = _HEAD.match(line) if first == "^" or first == "p" and line.startswith("profile ") else None
        if m:
            if len(stack) > 1:
                raise Unreadable(f"nested profile: {line}")
            name = f"{PARENT}//{m.group(2)}"
            stack.append(name)
            names.append(name)
            continue
        if line == "}":
            if len(stack) < 2:
                raise Unreadable("unbalanced }")
            stack.pop()
            continue
        parsed = _parse_rule(line)
        kind = parsed[0]
        if kind in ("file", "exec"):
            # positional (path, perms, exec_mode, target, deny): a hundred lines a pool
            lines.append(Line(stack[-1], line, kind, source, *parsed[1:]))
        elif kind in ("signal", "ptrace"):
            lines.append(Line(stack[-1], line, kind, source, peer=parsed[1]))
        elif kind in ("capability", "include"):
            lines.append(Line(stack[-1], line, kind, source, name=parsed[1]))
        else:
            lines.append(Line(stack[-1], line, kind, source))
    if len(stack) != 1:
        raise Unreadable("unclosed profile")
    return lines, names


# The admin's local files (include if exists <local/php-fpm.d/NAME>) hold any AppArmor
# syntax: only their file and exec rules are read, quoted or not, for crossings.
_LOCAL_RULE = re.compile(r'^(?:audit\s+)?(deny\s+)?(?:owner\s+)?(?:allow\s+)?(?:file\s+)?'
                         r'("[^"\\]*(?:\\.[^"\\]*)*"|[/@]\S*)\s+([A-Za-z]+)(?:\s+->\s+\S+)?\s*,')


def local_lines(sysroot: str, names, present: set) -> list[Line]:
    """File and exec rules of the local files of these profiles ("php-fpm//NAME").
    `present`: the names local/php-fpm.d held when listed (a run over every pool lists it
    once instead of trying to open a thousand files most hosts do not have)."""
    from . import install

    out = []
    for name in names:
        short = name.split("//", 1)[1]
        if short not in present:
            continue
        path = install.at(sysroot, f"{install.LOCAL_DIR}/{short}")
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for n, raw in enumerate(text.splitlines(), 1):
            m = _LOCAL_RULE.match(raw.strip())
            if not m:
                continue
            target = m.group(2)
            target = target[1:-1].replace('\\"', '"') if target.startswith('"') else target
            if "@{" in target:
                from . import evaluate
                target = evaluate.expand_vars(target, evaluate.tunables())
            out.append(Line(name, raw.strip(), "file", f"{install.LOCAL_DIR}/{short}:{n}", path=target,
                            perms=m.group(3), deny=bool(m.group(1))))
    return out


# --- the checks -------------------------------------------------------------------------

@dataclass
class Report:
    problems: list[str] = field(default_factory=list)  # each one line: profile, rule, source, what
    crossings: list[str] = field(default_factory=list)  # allowed by the admin's share =
    # The admin's local rules that let the pool write code: the admin's to keep (root
    # wrote them), so said by `check`, not refused.
    local_code: list[str] = field(default_factory=list)


@lru_cache(maxsize=16384)
def _code_in_suffix(tail: str, rest: str) -> str | None:
    """A code name a pattern "<dir>/<tail><rest>" can produce (relative: "/<name...>")."""
    return automata.intersect(automata.compile("/" + automata.escape(tail) + rest), _CODE)


@lru_cache(maxsize=16384)
def _code_name(name: str) -> bool:
    return automata.matches(_CODE, "/" + name)


def code_witness(pattern: str, carved=()) -> str | None:
    """A code-named path `pattern` matches outside the dirs `carved` (whose code names deny
    rules take away), or None."""
    literal, rest = automata.literal_split(pattern)
    if carved and literal.startswith(tuple(d + "/" for d in carved)):
        return None
    if not rest:
        return literal if _code_name(literal.rpartition("/")[2]) else None
    below = [d for d in carved if d.startswith(literal)]
    if below:
        return automata.intersect(automata.compile(pattern), _CODE,
                                  avoid=[automata.Under({(d, True) for d in below})])
    head, _, tail = literal.rpartition("/")
    w = _code_in_suffix(tail, rest)
    return None if w is None else head + w


def _outside(pattern: str, own: list[Owned], trees: tuple) -> str | None:
    """A path of `pattern` outside every owned path, or None. `trees`: _trees(own), made
    once for all of a pool's rules."""
    literal, rest = automata.literal_split(pattern)
    if literal.startswith(trees):
        return None
    if not rest:
        return None if any(o.covers(literal) for o in own) else literal
    return automata.intersect(automata.compile(pattern),
                              avoid=[automata.Under({(o.path, o.tree) for o in own})])


def _trees(own: list[Owned]) -> tuple:
    """The owned trees as prefixes, for one str.startswith."""
    return tuple(o.path.rstrip("/") + "/" for o in own if o.tree)


def _overlap(a: str, b: str) -> str | None:
    return automata.intersect(automata.compile(a), automata.compile(b))


def _carved_dirs(rules: list[Line]) -> list[str]:
    """Dirs whose code names every deny-write rule pair of policy.code_denies() removes."""
    ext, files = set(), set()
    for r in rules:
        if r.deny and r.kind == "file" and "w" in r.perms:
            for glob, found in (("/" + CODE_EXT_GLOB, ext), ("/" + CODE_FILE_GLOB, files)):
                if r.path.endswith(glob):
                    literal, rest = automata.literal_split(r.path[: -len(glob)])
                    if not rest:
                        found.add(literal)
    return sorted(ext & files)


_NO_DATA_DIR = tuple(sites.NO_WRITE)


def _bad_data_dir(path: str) -> str | None:
    if path in ("/", *sites._PARENTS) or path in sites.SYSTEM_DIRS:
        return "is a system directory"
    if any(_inside(path, d) for d in _NO_DATA_DIR):
        return "is inside a system directory"
    if automata.literal_split(lit(path))[1]:
        return "is not a literal path"
    return None


def check(policy, text: str, others: Index | None = None, own: list[Owned] | None = None,
          local: list[Line] = ()) -> Report:
    """The closed list (module doc) for one pool: its policy and the text rendered from it.

    `others`: the other pools' paths (Index.of(...)); without it, only the pool itself is
    judged. Plugin authors: `check(policy, render.render(policy))` in a test.
    """
    report = Report()
    site = policy.site
    hat = policy.hat
    own = owned_paths(policy) if own is None else own
    try:
        rules, names = read(text)
    except Unreadable as exc:
        report.problems.append(f"{PARENT}//{hat}: {exc}")
        return report

    def bad(line: Line, what: str):
        report.problems.append(f"{line.profile}: {line.path or line.text} {what} ({line.source}: {line.text})")

    own_names = set(names)
    allowed_exc = {x.path for x in policy.exceptions}
    # An exception "<dir>/**" also covers the rules below that dir (the core's temp rules).
    exc_trees = [lit_ for lit_, rest in map(automata.literal_split, allowed_exc) if rest == "**" and lit_.endswith("/")]
    local_ok = {f"local/php-fpm.d/{n.split('//', 1)[1]}" for n in names}
    share = list(getattr(site, "share_paths", []) or [])
    by_profile: dict[str, list[Line]] = {}
    for r in rules:
        by_profile.setdefault(r.profile, []).append(r)
    carved = {p: _carved_dirs(rs) for p, rs in by_profile.items()}
    for d in policy.data_dirs:
        why = _bad_data_dir(d.path)
        if why:
            report.problems.append(f"{PARENT}//{hat}: data dir {d.path} {why} ({d.source})")
    for x in policy.exceptions:
        literal, rest = automata.literal_split(x.path)
        if rest and any(_inside(r, literal.rstrip("/") or "/") for r in site.roots):
            report.problems.append(f"{PARENT}//{hat}: exception {x.path} covers a whole site root: an "
                                   f"exception names one file there, or a pattern in a subdirectory ({x.source})")
    # Own trees with no other pool's path in or above them, as escaped pattern prefixes.
    quiet = tuple(lit(o.path.rstrip("/")) + "/" for o in own if o.tree and o.path != "/" and others is not None
                  and not others.near(o.path.rstrip("/") + "/", hat)) if others is not None else ()
    own_trees = _trees(own)
    at = None  # the rule being checked, for the message when its pattern cannot be read
    try:
        writes, runs = [], []
        for r in rules:
            at = r
            master = r.profile == PARENT
            if r.kind == "capability":
                if not master:
                    bad(r, "is a capability: hats and their children hold none")
                elif r.source != "core":
                    bad(r, "is a capability for the master: only the core grants those")
            elif r.kind in ("signal", "ptrace"):
                if master:
                    if r.peer not in own_names:
                        bad(r, f"lets the master {r.kind} {r.peer}, not this pool's profiles")
                elif r.peer != PARENT:
                    bad(r, f"is {r.kind} with {r.peer}: only with the master (peer={PARENT})")
            elif r.kind == "include":
                if r.name.startswith("local/") and r.name not in local_ok:
                    bad(r, "includes another profile's local file")
                elif not r.name.startswith(("abstractions/", "tunables/", "local/")):
                    bad(r, "is an include outside abstractions/")
                elif r.name.startswith("abstractions/") and r.source != "core" and r.name not in PLUGIN_ABSTRACTIONS:
                    bad(r, "includes an abstraction that may grant more than a hat holds "
                           f"(a plugin may include {', '.join(sorted(PLUGIN_ABSTRACTIONS))})")
            elif r.kind == "exec":
                mode = r.exec_mode
                if "u" in mode.lower():
                    bad(r, f"runs unconfined ({mode})")
                elif master:
                    bad(r, "is an exec rule in the master's part")
                elif mode == "ix":
                    if r.profile == f"{PARENT}//{hat}":
                        bad(r, "runs in the hat itself (ix): exec only into a child profile")
                elif mode not in ("Px", "Cx"):
                    bad(r, f"uses exec mode {mode}: only ix (in a child), Px, Cx")
                elif not r.target:
                    bad(r, f"transitions by attachment ({mode} without ->): only into this pool's children")
                elif r.target not in own_names and r.target not in SHARED_CHILDREN:
                    bad(r, f"transitions to {r.target}, not a child profile of this pool")
                runs.append(r)
            elif r.kind == "file" and not r.deny:
                if "m" in r.perms:
                    runs.append(r)
                if _WRITE & set(r.perms):
                    writes.append(r)
                    w = _outside(r.path, own, own_trees)
                    if w is not None:
                        bad(r, f"would let PHP write {w}, outside the pool's own paths (site, its data "
                               f"dirs, temp, sessions, logs, socket)")
                    if r.path not in allowed_exc and not any(
                            automata.literal_split(r.path)[0].startswith(t) for t in exc_trees):
                        w = code_witness(r.path, carved.get(r.profile, ()))
                        if w is not None:
                            bad(r, f"would let PHP write {w}; no plugin declared this exception")
            # nothing of another pool (a rule inside an own tree nobody else has a path in: no)
            if others is not None and r.kind in ("file", "exec") and not r.deny \
                    and not r.path.startswith(quiet):
                hits = others.crossing(r.path, own, hat)
                if hits and r.source == "config" and share:
                    if not others.crossing(r.path, own, hat, also=share):
                        report.crossings += [f"pool {policy.pool.name} {r.profile}: {r.path} reaches pool "
                                             f"{o.pool}'s {o.what} {o.path} (share = in its section)"
                                             for o, _ in hits]
                        continue
                for o, w in hits:
                    what = "root" if o.what == "root" else o.what
                    bad(r, f"reaches pool {o.pool}'s {what} {o.path}" + (f" ({w})" if w != o.path else ""))
        for r in local:
            if r.deny or not set(r.perms) & set("wal"):
                continue
            at = r
            w = code_witness(r.path, carved.get(r.profile, ()))
            if w:
                report.local_code.append(f"pool {policy.pool.name}: {r.source}: `{r.text}` lets {r.profile} write "
                                         f"code ({w}): a dropped PHP file is a webshell; narrow the rule, or keep "
                                         f"it knowingly")
        # The admin's local files: another pool only where share = says so.
        for r in local if others is not None else ():
            at = r
            if r.deny:
                continue
            hits = others.crossing(r.path, own, hat)
            if hits and share and not others.crossing(r.path, own, hat, also=share):
                report.crossings += [f"pool {policy.pool.name} {r.profile}: {r.path} reaches pool {o.pool}'s "
                                     f"{o.what} {o.path} ({r.source}; share = in its section)" for o, _ in hits]
                continue
            for o, w in hits:
                bad(r, f"reaches pool {o.pool}'s {o.what} {o.path}" + (f" ({w})" if w != o.path else ""))
        if others is not None:
            for d in policy.data_dirs:
                for o, w in others.crossing(lit(d.path) + "{,/**}", own, hat):
                    report.problems.append(f"{PARENT}//{hat}: data dir {d.path} reaches pool {o.pool}'s "
                                           f"{o.what} {o.path} ({d.source})")
        wl = [(automata.literal_split(w.path)[0], w) for w in writes]
        for x in runs:
            at = x
            lx = automata.literal_split(x.path)[0]
            for lw, w in wl:
                # two patterns can meet only if one literal prefix extends the other
                hit = _overlap(x.path, w.path) if lx.startswith(lw) or lw.startswith(lx) else None
                if hit is not None:
                    kind = "exec" if x.kind == "exec" else "mmap"
                    bad(x, f"allows {kind} ({x.exec_mode or 'm'}) on {hit}, which {w.profile} may write "
                           f"({w.source}: {w.text}): no path is both written and run")
                    break
    except automata.GlobError as exc:  # a pattern nobody can read is a pattern nobody checked
        if at is None:
            report.problems.append(f"{PARENT}//{hat}: cannot check {exc}")
        else:
            bad(at, f"cannot be checked ({exc})")
    report.problems = list(dict.fromkeys(report.problems))
    report.crossings = list(dict.fromkeys(report.crossings))
    report.local_code = list(dict.fromkeys(report.local_code))
    return report


# --- the whole plan -----------------------------------------------------------------------

def _where(e, key: str) -> str:
    origin = e.pool.origins.get(key)
    return f"{origin.file}:{origin.line}" if origin else e.pool.config_file


def check_plan(result) -> None:
    """The invariants over a generate.Plan: marks refused entries' `problem`, lists the
    admin's allowed crossings in their `crossings`."""
    from .policy import _first_word  # the one reading of sendmail_path

    # Child profiles are <hat>_<helper>: a hat named like another pool's child would
    # define one profile twice and fail the whole php-fpm profile.
    owners: dict[str, list] = {}
    for e in result.ready:
        for prof in e.policy.profiles:
            owners.setdefault(prof.name.lower(), []).append(e)
    for name, group in owners.items():
        if len(group) > 1:
            for e in group:
                names = ", ".join(o.pool.name for o in group if o is not e)
                e.problem = (f"{_where(e, 'apparmor_hat')}: pool {e.pool.name}: profile name "
                             f"{PARENT}//{name} is also defined for pool {names}; rename one apparmor_hat")
    entries = list(result.ready)
    all_roots: dict[str, list] = {}  # root -> the entries serving it
    for e in entries:
        for r in e.site.roots:
            all_roots.setdefault(r, []).append(e)

    def roots_around(path: str):
        """(root, entry) for every root that `path` lies in: its ancestors looked up, not
        every root compared (a host has a thousand)."""
        i = len(path)
        while i > 0:
            for o in all_roots.get(path[:i], ()):
                yield path[:i], o
            i = path.rfind("/", 0, i)
        for o in all_roots.get("/", ()):
            yield "/", o

    intruding: dict[int, set] = {}  # roots that lie in another pool's site: that site's, not this pool's
    for e in entries:
        # A root reached through a symlink that lands in another pool's site is that
        # site's files under another name, not a site of its own. Landing on the other's
        # root itself is one site served twice, unless a user's link leads there that the
        # other pool does not name (bob's public_html -> carol's).
        for root, configured in e.site.symlinked.items():
            for r, other in roots_around(root):
                if other is not e and (root != r or root in e.site.users_links
                                       and other.site.symlinked.get(root) != configured):
                    where = f"pool {other.pool.name}'s root" if root == r else \
                        f"inside pool {other.pool.name}'s root {r}"
                    e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: root {configured} is a "
                                 f"symlink to {root}, {where}")
                    intruding.setdefault(id(e), set()).add(root)
        # Likewise a vhost root inside another pool's site (`alias /var/www/blog/shop/;`
        # passing PHP to pool plain): that site's code would run in plain's hat. The vhost's
        # pool pays, not the site it reaches into, whose own configuration is right.
        if e.site.origin.startswith("from "):
            for root in e.site.roots:
                hit = next(((r, o) for r, o in roots_around(root) if o is not e and r != root), None)
                if hit:
                    e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: its root {root} ({e.site.origin}) "
                                 f"is inside pool {hit[1].pool.name}'s site {hit[0]}: that site's code would "
                                 f"run in {e.pool.name}'s hat; fix the vhost or set root = in {sites.CONFIG}")
                    intruding.setdefault(id(e), set()).add(root)
        # mail() runs sendmail_path in the children every pool shares: never a site's file.
        binary = _first_word(e.pool.ini("sendmail_path") or "")
        if binary:
            real = e.site.worker(binary)
            hit = next(roots_around(real), None)
            if hit:
                e.unsafe_sendmail = True
                e.problem = (f"{_where(e, 'php_admin_value[sendmail_path]')}: pool {e.pool.name}: "
                             f"sendmail_path {binary} is inside pool {hit[1].pool.name}'s root {hit[0]}: "
                             f"a site's file must not run as every pool's mail helper")
    entries = list(result.ready)
    _canonical.cache_clear()  # a run sees the disk as it is now
    # Every pool with a site owns its paths, also one refused here (it keeps its old file).
    owned = {id(e): [o for o in owned_paths(e) if not (o.what == "root" and o.path in intruding.get(id(e), ()))]
             for e in result.entries if e.site is not None and e.hat}
    index = Index(o for e in result.entries for o in owned.get(id(e), ()))
    from . import install

    try:
        present = set(os.listdir(install.at(result.sysroot, install.LOCAL_DIR)))
    except OSError:
        present = set()
    for e in entries:
        if not e.text:  # a pool kept as installed (plan(only=...)): in the index, not re-checked
            continue
        names = [f"{PARENT}//{p.name}" for p in e.policy.profiles]
        report = check(e.policy, e.text, index, owned[id(e)], local_lines(result.sysroot, names, present))
        if hasattr(e, "crossings"):
            e.crossings = report.crossings
            e.local_code = report.local_code
        if report.problems:
            uniq = report.problems
            e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: policy refused: "
                         + "; ".join(uniq[:5]) + (f" (+{len(uniq) - 5} more)" if len(uniq) > 5 else ""))
