"""Learn from the audit log what a site still needs, per pool, into local overrides.

records (auditlog: kernel forms only, aggregated) -> judged against the policy as it is
now (the rendered hat with its local override, through evaluate) -> a few rules per hat
or child, globbed like aa-logprof where that stays safe ->
/etc/apparmor.d/local/php-fpm.d/<name> (the admin's files, included by every generated
profile; written only when asked, validated with the whole profile before it stays).

Least privilege still holds for what is learned: anything another pool owns (its roots,
data, sessions, temp, logs, sockets), another user's file outside the site (the log's
ouid neither root nor the worker's fsuid), a write of code or server config, an exec or
a capability is never turned into a rule; it is listed with the reason.
"""

from __future__ import annotations

import functools
import posixpath
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from apparmor.common import convert_regexp

from . import automata, evaluate, install, invariants, render
from .auditlog import LOGS, Event, Seen, parse_line  # noqa: F401  (parse_line: the tests' entry)
from .policy import SHARED_SENDMAIL, SHARED_SH, FileRule, NetworkRule, lit

# requested_mask letters -> file rule permissions (c)reate and (d)elete need w
_PERMS = {"r": "r", "w": "w", "a": "a", "c": "w", "d": "w", "k": "k", "l": "l", "m": "m"}
_OP = {"r": "read", "w": "write", "a": "append", "k": "lock", "l": "link", "m": "mmap"}
_FAMILIES = {"inet", "inet6", "unix", "netlink"}
_TYPES = {"stream", "dgram", "raw", "seqpacket"}
_WRITES = set("wakl")
# Never a glob below these: they hold the system's and every user's files.
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
                "/dev", "/proc", "/sys", "/root", "/run", "/var/lib", "/var/log", "/var/spool",
                "/var/cache", "/var/mail", "/var/tmp", "/tmp", "/home", "/mnt", "/media", "/snap")
MARK = "# learned by php-fpm-apparmor"
_NET = re.compile(r"^\s*network(?:\s+(\w+))?(?:\s+(\w+))?\s*,", re.M)


# --- what the policy is now -------------------------------------------------------------

class PatternSet:
    """Many AARE patterns as one compiled regex, converted as evaluate.matches converts
    each (python3-apparmor's convert_regexp on the encoded pattern): one C-level match per
    path instead of one Python call per rule (a hat has hundreds, abstractions included)."""

    def __init__(self, patterns, everything: bool = False):
        parts = [convert_regexp(evaluate.encode_pattern(p)) for p in dict.fromkeys(patterns)]
        self.everything = everything  # a bare `file,` rule
        self.rx = re.compile("|".join(f"(?:{x})" for x in parts)) if parts else None

    def match(self, path: str) -> bool:
        return self.everything or bool(self.rx and self.rx.match(evaluate.encode_path(path)))


class Judge:
    """evaluate.allows for one profile, per permission: granted by an allow rule and by no
    deny rule (deny wins), with every rule of a permission in one PatternSet."""

    def __init__(self, profile: evaluate.Profile):
        self.sets = {}
        for perm in _OP:
            allow, deny, all_allow, all_deny = [], [], False, False
            for rule in profile.rules:
                if not evaluate._has(rule, perm):
                    continue
                if getattr(rule, "all_paths", False):
                    all_deny, all_allow = (True, all_allow) if rule.deny else (all_deny, True)
                else:
                    (deny if rule.deny else allow).append(rule.path.regex)
            self.sets[perm] = (PatternSet(allow, all_allow), PatternSet(deny, all_deny))

    def allows(self, perm: str, path: str) -> bool:
        allow, deny = self.sets[perm]
        return allow.match(path) and not deny.match(path)


@dataclass
class Owned:
    """A path another pool is granted (its root, or a pattern it may write or lock)."""

    pattern: str  # AARE (a root: the plain directory)
    hat: str
    what: str
    root: bool = False


def _others(plan, entry, owned=None) -> list[Owned]:
    """Everything the other pools own: what invariants.owned_paths says (roots, data dirs,
    sessions, temp, logs, sockets), and every path their rules let them write or lock.
    What this pool owns or is granted as well (a shared /tmp/*, a common session dir) is
    not another's.
    owned: every pool's [(entry, Owned)], when the caller already listed them."""
    mine = set()
    if entry is not None and entry.policy:
        mine = {r.path for r in _file_rules(entry.policy) if set(r.perms) & _WRITES}
    if entry is not None and entry.site:
        mine |= {o.pattern for o in _owned_of(entry)}
    owned = _all_owned(plan) if owned is None else owned
    return [o for e, o in owned if e is not entry and (o.what == "root" or o.pattern not in mine)]


def _owned_of(e) -> list[Owned]:
    """invariants.owned_paths in learn's terms: a tree is a plain directory (root=True)."""
    if not e.policy:
        return [Owned(r, e.hat, "root", root=True) for r in e.site.roots]
    return [Owned(o.path, e.hat, o.what, root=True) if o.tree else Owned(lit(o.path), e.hat, o.what)
            for o in invariants.owned_paths(e) if not (o.tree and o.path in invariants.SHARED_DIRS)]


def _all_owned(plan) -> list[tuple]:
    out = []
    for e in plan.entries:
        if not e.site:
            continue
        out += [(e, o) for o in _owned_of(e)]
        if not e.policy or e.problem:
            continue
        for r in _file_rules(e.policy):
            if set(r.perms) & _WRITES:
                out.append((e, Owned(r.path, e.hat, r.why or "files")))
    return out


def _file_rules(policy):
    rules = list(policy.master)
    for prof in policy.profiles:
        rules += prof.rules
    return [r for r in rules if isinstance(r, FileRule) and not r.deny]


@dataclass
class Target:
    """One profile learn can add to: a hat, a child, or a shared child."""

    name: str  # its local file name
    entry: object  # generate.Entry, None for the shared children
    profile: evaluate.Profile  # the rendered rules with the local override, as evaluated
    nets: set = field(default_factory=set)  # (family, type) granted
    owned: list = field(default_factory=list)  # [Owned] of the other pools
    note: str = ""

    @functools.cached_property
    def judge(self) -> Judge:  # built for the profiles the log names only
        return Judge(self.profile)

    @functools.cached_property
    def owned_index(self) -> dict:
        """The others' non-root patterns by the directory their literal part starts with
        (at most 3 levels deep): a path is matched against the few under its own dirs."""
        index: dict[str, list] = {}
        for o in self.owned:
            if not o.root:
                index.setdefault(_key(_prefix(o.pattern)), []).append(o)
        return index


def _with_local(text: str, sysroot: str) -> tuple[str, dict]:
    locals_ = {}

    def sub(m):
        path = install.at(sysroot, f"{install.LOCAL_DIR}/{m.group(2)}")
        body = path.read_text(errors="replace") if path.is_file() else ""
        locals_[m.group(2)] = body
        return body

    return render.LOCAL_INCLUDE.sub(sub, text), locals_


def _parse(text: str, sysroot: str) -> tuple[dict, dict, str]:
    """Profiles of a rendered file with the local overrides pasted in (as the parser does)."""
    full, locals_ = _with_local(text, sysroot)
    try:
        return evaluate.parse(full), locals_, ""
    except ValueError as exc:  # a local rule we cannot evaluate: judge the generated part
        return evaluate.parse(render.LOCAL_INCLUDE.sub("", text)), locals_, f"local override not evaluated: {exc}"


class Targets:
    """The profiles learn can add to, by local name; each pool's text is parsed (and its
    others' paths listed) only when the log names one of its profiles."""

    def __init__(self, plan):
        self.plan = plan
        self.built: dict[str, Target] = {}
        self.owner = {p.name: e for e in plan.ready for p in e.policy.profiles}
        if plan.shared:
            self.owner.update({SHARED_SH: None, SHARED_SENDMAIL: None})
        self._owned = None

    def __contains__(self, name) -> bool:
        return name in self.owner

    def __getitem__(self, name) -> Target:
        if name not in self.built:
            self._build(self.owner[name])
        return self.built[name]

    def values(self):
        return list(self.built.values())

    def _build(self, e) -> None:
        if self._owned is None:
            self._owned = _all_owned(self.plan)
        owned = _others(self.plan, e, self._owned)
        if e is not None:
            profiles, locals_, note = _parse(e.text, self.plan.sysroot)
            for prof in e.policy.profiles:
                nets = {(r.domain, r.type) for r in prof.rules if isinstance(r, NetworkRule)}
                nets |= set(_NET.findall(locals_.get(prof.name, "")))
                self.built[prof.name] = Target(prof.name, e, profiles[f"php-fpm//{prof.name}"], nets, owned, note)
            return
        shared = self.plan.shared
        profiles, locals_, note = _parse(shared, self.plan.sysroot)
        for name in (SHARED_SH, SHARED_SENDMAIL):
            body = shared.split(f"profile {name} ", 1)[-1].split("\n  }", 1)[0]
            nets = set(_NET.findall(body)) | set(_NET.findall(locals_.get(name, "")))
            self.built[name] = Target(name, None, profiles[f"php-fpm//{name}"], nets, owned, note)


def targets(plan) -> Targets:
    return Targets(plan)


def _local_name(profile: str, known) -> str | None:
    """The local override that profile includes, or None if it is not one of ours."""
    if not profile.startswith("php-fpm//"):
        return None
    name = profile.split("//", 1)[1].split("//", 1)[0]  # php-fpm//a//null-x: the hat a
    return name if name in known else None


def _owner(t: Target, path: str) -> Owned | None:
    own_roots = t.entry.site.roots if t.entry else []
    for o in t.owned:
        if o.root:
            # a pool nested in another's root keeps its own subtree
            if evaluate.inside(path, o.pattern) and not any(
                    evaluate.inside(path, r) for r in own_roots if evaluate.inside(r, o.pattern)):
                return o
    parts = path.split("/")
    listing = path.endswith("/")
    for depth in range(1, min(len(parts), 5)):
        for o in t.owned_index.get("/".join(parts[:depth]) + "/", ()):
            if evaluate.matches(o.pattern, path):
                return o
            # Listing the directory of another pool's sess_* or temp files shows their
            # names: session ids (Debian's /var/lib/php/sessions is 1733 for that reason).
            if listing and _prefix(o.pattern) != o.pattern and _lists(path.rstrip("/"), o.pattern):
                return o
    return None


def _lists(directory: str, pattern: str) -> bool:
    """Whether listing `directory` shows names `pattern` matches: its own directory, or one
    below it for a pattern with **."""
    d = _dir_of(pattern)
    return directory == d or ("**" in pattern and evaluate.inside(directory, d))


def _key(prefix: str) -> str:
    """The directory (at most 3 levels: /a/b/c/) a literal pattern prefix starts in."""
    parts = prefix.split("/")[:-1][:4]
    return "/".join(parts) + "/"


# --- globs ------------------------------------------------------------------------------

def code_name(path: str) -> bool:
    """evaluate's code-name test, case-folded: a server may run x.PHP too."""
    return evaluate.is_forbidden_name(path.lower())


def _esc(text: str) -> str:
    return lit("/" + text)[1:]  # a literal part of a path, its AARE specials escaped


def _ext(path: str) -> str | None:
    base = path.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return ext if dot and stem and re.fullmatch(r"[A-Za-z0-9]{1,8}", ext) else None


def _dir_of(pattern: str) -> str:
    """The literal directory a pattern's glob starts in."""
    m = re.search(r"(?<!\\)[*?\[{]", pattern)
    head = pattern[: m.start()] if m else pattern
    return evaluate.decode(evaluate.encode_pattern(head.rsplit("/", 1)[0])) or "/"


@functools.lru_cache(maxsize=65536)
def _prefix(pattern: str) -> str:
    enc = evaluate.encode_pattern(pattern)
    m = re.search(r"[*?\[{@]", enc)
    return evaluate.decode(enc[: m.start()] if m else enc)


def _overlaps(pattern: str, other: Owned, own_roots) -> bool:
    # Both match only strings that start with their literal prefix: if neither prefix
    # starts the other, they share no path (the cheap test that settles most pairs).
    mine, prefix = _prefix(pattern), (other.pattern + "/" if other.root else _prefix(other.pattern))
    if not (mine.startswith(prefix) or prefix.startswith(mine)):
        return False
    # Decided on automata (invariants.py's engine), never by sampling spellings.
    if other.root:
        nested = {(r, True) for r in own_roots if r != other.pattern and evaluate.inside(r, other.pattern)}
        return automata.intersect(automata.compile(pattern), automata.Under({(other.pattern, True)}),
                                  avoid=[automata.Under(nested)] if nested else []) is not None
    return automata.intersect(automata.compile(pattern), automata.compile(other.pattern)) is not None


def glob_problem(pattern: str, perms: str, t: Target) -> str | None:
    """Why a glob must not be offered, or None."""
    d = _dir_of(pattern)
    if d.count("/") < 2 or any(evaluate.inside(d, s) for s in SYSTEM_TREES):
        return f"{d} is a system directory"
    if set(perms) & _WRITES:
        w = invariants.code_witness(pattern)
        if w is not None:
            return f"it would let PHP write {w}"
    own_roots = t.entry.site.roots if t.entry else []
    for o in t.owned:
        if _overlaps(pattern, o, own_roots):
            return f"it reaches pool {o.hat}'s {o.what}"
    return None


@dataclass
class Offer:
    """One proposed rule: narrowest first, wider safe globs after it (the "glob" choice)."""

    name: str  # local file
    options: list  # rule lines
    paths: list  # what was seen (shown, and covered by every option)
    count: int
    first: float
    last: float
    choice: int = 0

    @property
    def rule(self) -> str:
        return self.options[self.choice]


def _candidates(paths: list[str], perms: str, t: Target) -> list[str]:
    """Patterns covering every path, narrowest first, the unsafe ones left out."""
    parents = {posixpath.dirname(p) for p in paths}
    exts = {_ext(p) for p in paths}
    ext = exts.pop() if len(exts) == 1 else None
    out = [lit(paths[0])] if len(paths) == 1 else []
    if len(parents) == 1:
        d = _esc(parents.pop())
        out += ([f"{d}/*.{_esc(ext)}"] if ext else []) + [f"{d}/*"]
        out += ([f"{d}/**.{_esc(ext)}"] if ext else []) + [f"{d}/**"]
    else:
        common = _esc(posixpath.commonpath(sorted({posixpath.dirname(p) for p in paths})))
        out += ([f"{common}/**.{_esc(ext)}"] if ext else []) + [f"{common}/**"]
    return [p for p in dict.fromkeys(out) if "*" not in p or not glob_problem(p, perms, t)]


def _groups(paths: list[str]) -> list[list[str]]:
    """Several names of one extension in sibling dirs (uploads/2026/10, uploads/2026/11) or
    in one dir are one group; anything else stays one path per group."""
    left = sorted(set(paths))
    groups = []
    for level in (2, 1):  # grandparent (dir/**.ext) first, then parent (dir/*.ext)
        by: dict[tuple, list] = {}
        for p in left:
            ext = _ext(p)
            if ext:
                key = posixpath.dirname(posixpath.dirname(p)) if level == 2 else posixpath.dirname(p)
                by.setdefault((key, ext), []).append(p)
        for ps in by.values():
            many_dirs = len({posixpath.dirname(p) for p in ps}) > 1
            if len(ps) > 1 and (many_dirs or level == 1):
                groups.append(ps)
        taken = {p for g in groups for p in g}
        left = [p for p in left if p not in taken]
    return groups + [[p] for p in left]


# --- judging the log --------------------------------------------------------------------

@dataclass
class Proposal:
    offers: list = field(default_factory=list)  # [Offer]
    refused: list = field(default_factory=list)  # (profile, what, why, count): never rules
    allowed: int = 0  # events the policy already allows (replayed complain-mode records)
    notes: list = field(default_factory=list)

    @property
    def rules(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for o in self.offers:
            out.setdefault(o.name, []).append(o.rule)
        return {k: sorted(dict.fromkeys(v)) for k, v in sorted(out.items())}


def _pool_match(e, pools) -> bool:
    if not pools:
        return True
    if e is None:
        return False  # the shared children are no single pool's
    return any(p in (e.hat, e.pool.name, f"{e.pool.version}/{e.pool.name}") for p in pools)


def propose(seen, plan, pools=()) -> Proposal:
    """Seen events (auditlog.Counter.seen(), or plain Events) -> offers and refusals."""
    tg = targets(plan)
    result = Proposal()
    refused: dict[tuple, int] = {}
    files: dict[tuple, list] = {}  # (name, perms) -> [(path, Seen)]
    nets: dict[tuple, list] = {}
    for s in seen:
        if isinstance(s, Event):
            s = Seen(s, 1, 0.0, 0.0)
        ev = s.event
        name = _local_name(ev.profile, tg)
        if name is None or not _pool_match(tg.owner[name], pools):
            continue
        t = tg[name]

        def refuse(what, why):
            key = (ev.profile, what, why)
            refused[key] = refused.get(key, 0) + s.count

        if ev.family:
            fam = ev.family if ev.family in _FAMILIES else ""
            kind = ev.sock_type if ev.sock_type in _TYPES else ""
            if not fam:
                continue
            if (fam, kind) in t.nets or (fam, "") in t.nets or ("", "") in t.nets:
                result.allowed += s.count
                continue
            nets.setdefault((name, f"network {fam}{' ' + kind if kind else ''},"), []).append(s)
            continue
        if ev.operation == "capable":
            refuse(f"capability {ev.name}", "a worker needs no capability: find out why it asks "
                   "before granting one by hand")
            continue
        if not ev.name.startswith("/"):
            continue
        if "x" in ev.requested or ev.operation == "exec":
            refuse(f"exec {ev.name}", "a program needs a child profile: add it with a plugin or by "
                   "hand in the local file")
            continue
        perms = "".join(sorted({_PERMS[c] for c in ev.requested if c in _PERMS}, key="rwaklm".index))
        if not perms:
            continue
        missing = "".join(p for p in perms if not t.judge.allows(p, ev.name))
        if not missing:
            result.allowed += s.count
            continue
        o = _owner(t, ev.name)
        if o is not None:
            refuse(f"{missing} {ev.name}", f"inside pool {o.hat}'s root" if o.what == "root"
                   else f"pool {o.hat}'s {o.what}")
            continue
        if ev.foreign and not any(evaluate.inside(ev.name, r) for r in (t.entry.site.roots if t.entry else ())):
            # a hacked site probing during the learning period must not have it offered
            refuse(f"{missing} {ev.name}", f"another user's file (uid {ev.ouid}; the pool runs as uid "
                   f"{ev.fsuid}): add it by hand if this pool is meant to have it")
            continue
        if set(missing) & {"w", "a", "l"} and code_name(ev.name):
            refuse(f"{missing} {ev.name}", "writes code or server config: only a plugin's named "
                   "exception may allow that")
            continue
        try:
            lit(ev.name)
        except ValueError as exc:
            refuse(f"{missing} {ev.name!r}", str(exc))
            continue
        files.setdefault((name, missing), []).append((ev.name, s))
    for (name, line), ss in sorted(nets.items()):
        result.offers.append(Offer(name, [line], [], sum(x.count for x in ss),
                                   min(x.first for x in ss), max(x.last for x in ss)))
    for (name, perms), items in sorted(files.items()):
        t = tg[name]
        by_path: dict[str, list] = {}
        for path, s in items:
            by_path.setdefault(path, []).append(s)
        todo = _groups(list(by_path))
        while todo:
            group = todo.pop(0)
            pats = _candidates(group, perms, t)
            parents = {posixpath.dirname(p) for p in group}
            if not pats and len(parents) > 1:  # no safe dir/**.ext: try dir/*.ext per directory
                todo[:0] = [[p for p in group if posixpath.dirname(p) == d] for d in sorted(parents)]
                continue
            if not pats:  # no safe glob covers them all: one rule per path
                for p in group:
                    ss = by_path[p]
                    result.offers.append(Offer(name, _rules(_candidates([p], perms, t) or [lit(p)], perms),
                                               [p], sum(x.count for x in ss), min(x.first for x in ss),
                                               max(x.last for x in ss)))
                continue
            ss = [x for p in group for x in by_path[p]]
            result.offers.append(Offer(name, _rules(pats, perms), group, sum(x.count for x in ss),
                                       min(x.first for x in ss), max(x.last for x in ss)))
    result.refused = [(p, w, y, n) for (p, w, y), n in sorted(refused.items())]
    result.notes = sorted({t.note for t in tg.values() if t.note})
    return result


def _rules(patterns, perms) -> list[str]:
    return [f"{render.quote(p)} {perms}," for p in patterns]


def when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


# --- asking on a terminal ---------------------------------------------------------------

def ask(proposal: Proposal, read=input, say=print) -> bool:
    """aa-logprof's loop: per offer (A)llow, (G)lob (next wider safe option), (S)kip, s(T)op.
    Keeps the allowed offers in proposal.offers; False if the admin stopped before the end."""
    kept = []
    for i, o in enumerate(proposal.offers, 1):
        say(f"\n[{i}/{len(proposal.offers)}] profile {o.name}: {o.count} event(s), "
            f"first {when(o.first)}, last {when(o.last)}")
        for p in o.paths[:5]:
            say(f"  seen: {p}")
        if len(o.paths) > 5:
            say(f"  ... and {len(o.paths) - 5} more")
        while True:
            for j, rule in enumerate(o.options):
                say(f"  {'>' if j == o.choice else ' '} {j + 1}. {rule}")
            keys = "(A)llow / (G)lob / (S)kip / s(T)op" if len(o.options) > 1 else "(A)llow / (S)kip / s(T)op"
            try:
                answer = read(f"{keys}: ").strip().lower()
            except EOFError:
                answer = "t"
            if answer in ("a", "allow"):
                kept.append(o)
                break
            if answer in ("g", "glob") and len(o.options) > 1:
                o.choice = (o.choice + 1) % len(o.options)
                continue
            if answer in ("s", "skip"):
                break
            if answer in ("t", "stop"):
                proposal.offers = kept
                return False
            if answer.isdigit() and 1 <= int(answer) <= len(o.options):
                o.choice = int(answer) - 1
    proposal.offers = kept
    return True


# --- writing ----------------------------------------------------------------------------

def write(proposal: Proposal, sysroot: str, source: str) -> dict[str, tuple[Path, str | None]]:
    """Append new rules to the local files; return {name: (path, previous text)} to undo."""
    backup = {}
    stamp = time.strftime("%Y-%m-%d %H:%M")
    for name, lines in proposal.rules.items():
        path = install.at(sysroot, f"{install.LOCAL_DIR}/{name}")
        old = path.read_text() if path.exists() else None
        have = set((old or "").splitlines())
        new = [l for l in lines if l not in have]
        if not new:
            continue
        text = (old or "") + ("" if not old or old.endswith("\n") else "\n")
        text += f"{MARK} on {stamp} from {source}\n" + "".join(l + "\n" for l in new)
        backup[name] = (path, old)
        install.write_atomic(path, text)
    return backup


def undo(backup) -> None:
    for path, old in backup.values():
        if old is None:
            path.unlink(missing_ok=True)
        else:
            install.write_atomic(path, old)


# --- complain -> enforce ----------------------------------------------------------------

def complain_events(seen, names) -> list[Seen]:
    """The complain-mode (ALLOWED) events of the given local names (a hat and its children)."""
    return [s for s in seen if s.event.status == "ALLOWED" and _local_name(s.event.profile, names)]


def profile_names(entry) -> set[str]:
    """The pool's hat and its children: from its policy, else (status plans no policy)
    from its installed file."""
    if entry.policy:
        return {p.name for p in entry.policy.profiles}
    from .apply import installed_profiles

    return {entry.hat, *installed_profiles(entry.site.sysroot, entry.hat)} if entry.site else {entry.hat}


def quiet_check(sysroot: str, entry, days: float, logs=None) -> tuple[bool, str]:
    """(quiet, what was seen): no complain-mode event of the pool's hat or children in the
    last `days`, in every source with its rotations (the whole period is read)."""
    from . import auditlog

    since = time.time() - days * 86400
    counter, sources = auditlog.read(sysroot, logs, since)
    found = complain_events(counter.seen(), profile_names(entry))
    read_from = ", ".join(sources) or "no log found"
    if not found and (counter.reaches is None or counter.reaches > since + 60):
        # Quiet means no event *for the whole period*: logs that begin later prove nothing.
        begins = f"begin {when(counter.reaches)}" if counter.reaches else "tell no time"
        return False, (f"pool {entry.pool.name}: no complain-mode event for hat {entry.hat} in the logs, but they "
                       f"{begins} (read {read_from}), not {days:g} day(s) back: it stays in complain. Wait, "
                       f"or ask for fewer days (--if-quiet).")
    if not found:
        return True, f"no complain-mode event for hat {entry.hat} since {when(since)} (read {read_from})"
    found.sort(key=lambda s: -s.last)
    total = sum(s.count for s in found)
    lines = [f"pool {entry.pool.name}: {total} complain-mode event(s) for hat {entry.hat} since "
             f"{when(since)}, the last at {when(found[0].last)}; it stays in complain. Newest:"]
    for s in found[:5]:
        ev = s.event
        lines.append(f"  {ev.profile} {ev.operation} {ev.name or ev.family} {ev.requested} "
                     f"({s.count}x, last {when(s.last)})")
    lines.append(f"Add what it needs with `php-fpm-apparmor learn --pool {entry.pool.name}`, then "
                 f"wait until it is quiet (read {read_from}).")
    return False, "\n".join(lines)


STATUS_TAIL = 8 << 20  # bytes read from the end of each current log by `status`
STATUS_JOURNAL = 20000  # newest kernel journal lines read by `status`


def quiet_since(sysroot: str, entries) -> dict[str, str]:
    """For `status`: since when each pool in complain mode logged no complain event.

    Bounded so that status stays fast and read-only: nothing is read when no pool is in
    complain mode; otherwise only the last STATUS_TAIL bytes of the current audit.log and
    kern.log (no rotations) and the newest STATUS_JOURNAL journal lines. With nothing found
    there the answer is "before" the oldest record read (`enforce --if-quiet` reads all)."""
    from . import auditlog

    complain = [e for e in entries if e.site and e.site.mode == "complain" and e.hat]
    if not complain:
        return {}
    counter, _ = auditlog.read(sysroot, tail=STATUS_TAIL)
    seen = counter.seen()
    oldest = min((s.first for s in seen), default=None)
    out = {}
    for e in complain:
        found = complain_events(seen, profile_names(e))
        if found:
            out[e.hat] = f"quiet since {when(max(s.last for s in found))}"
        elif oldest:
            out[e.hat] = f"quiet since before {when(oldest)}"
        else:
            out[e.hat] = "quiet: no complain event in the newest log records"
    return out
