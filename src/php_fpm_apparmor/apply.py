"""Steps 6-8 as one transaction over candidate files: wanted -> diff -> compile -> write -> load.

Every pool's file is a candidate of its own. One that does not compile is left out with a
problem line naming the pool, the rule (and so the plugin) and the parser's message: its
previous file stays, and a pool with apparmor_hat that has none gets its core-only hat.
The other pools are written and loaded all the same.

Only what changed is compiled and loaded. A pool whose change stays inside its hat and
children is loaded alone, as top-level `profile php-fpm//<name>` blocks next to the loaded
parent (DESIGN.md 5: such a profile loads by itself and survives a parent reload), so the
other hats and their workers are untouched. A change of the parent's own rules in pool
files (a pool's socket or logs, a new or removed pool) replaces the parent with the changed
files and only the parent-level rules of the others: the kernel keeps their loaded hats.
A pool's own overrides are that pool's change (one that does not compile is left out of
that pool's file, so the other pools and the next boot go on); the main profile or the
master's overrides changed: the whole profile is reloaded. The files on disk stay the single
truth: a reboot or a full reload compiles exactly what was loaded piecewise.

The parser compiles one file's profiles one after another, so on a big host a whole
compile, and a load of many hats, goes in parts, one parser run per core: the parent with
every file's parent-level rules, then the hats as top-level profiles (_compile_whole,
_load_in_parts).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import forked, generate, install, load, render, validate
from .policy import PARENT

_HERE = Path(__file__).resolve()
TEMPLATES = ("/usr/share/php-fpm-apparmor/php-fpm.profile",
             # an installed package under another root (dpkg --root, an unpacked .deb):
             # <usr>/lib/python3/dist-packages/php_fpm_apparmor/apply.py
             str(_HERE.parents[min(4, len(_HERE.parents) - 1)] / "share/php-fpm-apparmor/php-fpm.profile"),
             # a source checkout: <repo>/src/php_fpm_apparmor/apply.py
             str(_HERE.parents[min(2, len(_HERE.parents) - 1)] / "etc/apparmor.d/php-fpm-apparmor.profile"))
_PROFILE_PHP_FPM = re.compile(r"^\s*profile\s+php-fpm\s", re.M)
# Above this many changed files one compile of the whole profile is cheaper than one
# parser run per file (each run pays for abstractions/base again).
PER_FILE_MAX = 16


@dataclass
class Candidate:
    """One file of php-fpm.d/ as this run wants it."""

    name: str  # a hat, or render.SHARED_FILE
    text: str
    entry: object = None  # generate.Entry (None for the shared file)
    core_only: bool = False  # the pool's fallback hat, not its real policy


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    loaded: bool = False  # something was loaded into the kernel
    reloaded: bool = False  # the parent was replaced (every hat with it)
    hats_loaded: list[str] = field(default_factory=list)  # hats loaded alone, parent untouched
    hats_kept: list[str] = field(default_factory=list)  # loaded hats a parent replacement kept as they were
    cache: str | None = None  # the boot-time cache after a partial load (load.refresh_cache)
    refused: list[str] = field(default_factory=list)  # files the parser refused (their old one stays)
    left_out: list[str] = field(default_factory=list)  # files installed without their broken overrides
    load_skipped: str | None = None


# --- the main profile -------------------------------------------------------------------

def main_profile(sysroot: str) -> tuple[Path | None, bool]:
    """(the file that defines profile php-fpm, whether it is ours to manage)."""
    stock = install.at(sysroot, install.STOCK_PROFILE)
    if stock.exists():
        return stock, False
    d = install.at(sysroot, "/etc/apparmor.d")
    ours_path = install.at(sysroot, install.MAIN_PROFILE)
    if d.is_dir():
        for p in sorted(d.iterdir()):
            if p.is_file() and p != ours_path and not p.name.startswith(".") and p.stat().st_size < 1 << 20:
                try:
                    if _PROFILE_PHP_FPM.search(p.read_text(errors="replace")):
                        return p, False
                except OSError:
                    continue
    return ours_path, True


def template() -> str:
    for t in TEMPLATES:
        if Path(t).is_file():
            return Path(t).read_text()
    raise FileNotFoundError("php-fpm profile template missing: " + " or ".join(TEMPLATES))


def main_text_for(result, ours_main: bool, main: Path) -> str:
    if not ours_main:
        return main.read_text()
    text = template()
    # A pool without apparmor_hat runs PHP in the master's profile: enforcing it would
    # break that site, so the master stays in complain mode until every pool has a hat.
    if any(not e.pool.hat for e in result.entries):
        text = re.sub(r"flags=\(([^)]*)\)", lambda m: f"flags=({m.group(1)},complain)", text, count=1)
    return text


# --- one pool file: its parent-level rules and its profiles -----------------------------

_BLOCK = re.compile(r"^  (\^|profile )(\S+)(.*)$")


def split(text: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """(the parent-level rules, {profile name: its block}) of a php-fpm.d file as render
    writes it: rules at column 0, each profile from `  ^x {`/`  profile x {` to `  }`."""
    return _split(text)[:2]


def _split(text: str) -> tuple[tuple[str, ...], dict[str, str], bool]:
    """split(), and whether every line found its place (False: a block never closed)."""
    master, blocks, name, lines = [], {}, None, []
    for line in text.splitlines():
        if name is None:
            m = _BLOCK.match(line)
            if m:
                name, lines = m.group(2), [line]
            elif line.strip() and not line.lstrip().startswith("#"):
                master.append(line.strip())
            continue
        lines.append(line)
        if line == "  }":
            blocks[name] = "\n".join(lines)
            name = None
    return tuple(master), blocks, name is None


def installed_profiles(sysroot: str, hat: str) -> list[str]:
    """The profile names in the pool's installed file of ours ([] if it has none)."""
    path = install.at(sysroot, install.POOL_DIR) / hat
    if not install.is_ours(path):
        return []
    try:
        return list(split(path.read_text())[1])
    except OSError:
        return []


def preamble(main_text: str) -> str:
    """What the main profile states before `profile php-fpm` (abi, tunables, variables)."""
    m = _PROFILE_PHP_FPM.search(main_text)
    head = main_text[: m.start()] if m else ""
    return "\n".join(line for line in head.splitlines()
                     if line.strip() and not line.lstrip().startswith("#")) + "\n"


def standalone(main_text: str, texts: list[str]) -> str:
    """The pools' profiles as top-level `profile php-fpm//<name>`: loadable without the
    parent's other hats (the kernel attaches them to the loaded parent)."""
    out = [preamble(main_text)]
    for text in texts:
        for name, block in split(text)[1].items():
            head, _, body = block.partition("\n")
            flags = _BLOCK.match(head).group(3)
            out.append(f"profile {PARENT}//{name}{flags}\n{body}\n")
    return "\n".join(out)


def _parts(main_text: str, texts: list[str], jobs: int) -> list[str]:
    """The files' profiles as `jobs` standalone texts, every file's profiles in one of them
    (a hat with its children), dealt out in turn so that the parts are of a size."""
    return [standalone(main_text, texts[i::jobs]) for i in range(jobs)]


# --- compile ----------------------------------------------------------------------------

# A whole profile with at least this many pool files per core is compiled in parts side by
# side (below it the parser's start-up in each part costs more than the cores save).
PART_MIN = 32


def _compile_whole(main_text: str, files: dict[str, str], includes: list[str], parts: bool = True,
                   tell=None) -> str | None:
    """Compile the php-fpm profile as it will be after install; None if it compiles.

    The parser compiles one file's profiles one after another (a minute and a half per
    thousand WordPress hats), so a big profile is compiled in parts, one parser run per
    core: the parent with every file's parent-level rules, and the files' profiles as
    top-level `profile php-fpm//<name>` blocks (what a one-pool change loads). These are
    the profiles of the whole, so the verdict is the same as long as each file is ours in
    render's shape and no name is defined twice; else (and with `parts` False: another
    main profile, whose preamble the parts might lack, or the admin's own files in
    php-fpm.d) the whole in one run, which refuses a name defined twice."""
    jobs = _jobs(len(files))
    shapes = {n: _split(t) for n, t in files.items()} if parts and jobs > 1 else {}
    names = [p for _, blocks, _ in shapes.values() for p in blocks]
    if not shapes or not all(whole for _, _, whole in shapes.values()) or len(names) != len(set(names)):
        with validate.staged(main_text, files) as (stage, whole):
            return validate.compile_file(whole, [stage] + includes)
    order = sorted(files)
    with validate.staged(main_text, {n: parent_part(files[n]) for n in order}) as (stage, parent):
        paths = [parent]
        for i, text in enumerate(_parts(main_text, [files[n] for n in order], jobs)):
            paths.append(str(Path(stage, f"part{i}")))
            Path(paths[-1]).write_text(text)
        done = []

        def step(i):
            done.append(i)
            if tell:
                tell("compiling the whole profile", len(done), len(paths))
        errors = validate.compile_files(paths, [stage] + includes, step)
    return next((e for e in errors if e), None)


def culprit_rule(text: str, includes: list[str]) -> str | None:
    """The first rule of a file that the parser refuses on its own, with the comment it is
    rendered under (`plugin: why`), found by halving; None if no single rule is to blame."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines)
             if line.strip() and not line.lstrip().startswith(("#", "include", "^", "profile "))
             and line.strip() != "}" and line.rstrip().endswith(",")]

    def fails(idx: list[int]) -> bool:
        body = "\n".join("  " + lines[i].strip() for i in idx)
        with tempfile.NamedTemporaryFile("w", suffix=".rules", delete=False) as f:
            f.write(f"abi <abi/3.0>,\ninclude <tunables/global>\nprofile culprit {{\n{body}\n}}\n")
        try:
            return validate.compile_file(f.name, includes) is not None
        finally:
            Path(f.name).unlink(missing_ok=True)

    if not rules or not fails(rules):
        return None
    while len(rules) > 1:
        half = rules[: len(rules) // 2]
        rules = half if fails(half) else rules[len(rules) // 2:]
    i = rules[0]
    why = next((lines[j].strip()[2:] for j in range(i - 1, -1, -1) if lines[j].lstrip().startswith("#")), "")
    return f"rule `{lines[i].strip()}`" + (f" (from {why})" if why else "")


# "... for FILE in profile INCLUDED at line N: MESSAGE" (AppArmor 3 and 4; older ones say "in")
_PARSER_ERROR = re.compile(r"^AppArmor parser error for \S+ in (?:profile )?(\S+) at line (\d+): (.*)$", re.M)


def _parser_where(error: str, overrides: list[str]) -> str:
    """The parser's error, one line, at the override it names (file:line), else at the
    overrides (a rule without its comma at an override's end is reported at the hat's
    closing brace)."""
    m = _PARSER_ERROR.search(error)
    if m and m.group(1) in overrides:
        return f"{m.group(1)}:{m.group(2)}: {m.group(3)}"
    first = next((line.strip() for line in error.splitlines() if line.strip()), error)
    return f"{', '.join(overrides)}: {m.group(3) if m else first}"


def _whose(c: Candidate) -> str:
    """Where a problem with this file is said to be: its pool's config, or the file."""
    return f"{c.entry.pool.config_file}: pool {c.entry.pool.name}" if c.entry else c.name


def _on_disk(local: Path, text: str) -> list[str]:
    """The overrides a rendered file includes that exist, as paths."""
    return [str(local / o) for o in render.local_overrides(text) if (local / o).is_file()]


def _left_out(c: Candidate, why: str) -> str:
    return (f"{_whose(c)}: {why}; the local overrides of {c.name} left out, its hat runs without them until "
            f"they compile")


def _refused(c: Candidate, error: str, includes: list[str]) -> str:
    rule = culprit_rule(c.text, includes)
    return (f"{_whose(c)}: apparmor_parser refused {'the core-only hat' if c.core_only else 'hat'} {c.name}"
            + (f": {rule}" if rule else "") + f": {error}")


# --- the transaction --------------------------------------------------------------------

def wanted(result, existing: dict[str, Path]) -> dict[str, Candidate]:
    """{file name: candidate}: each pool's hat; the core-only hat for a failed pool with
    apparmor_hat that has no file yet (a failed pool with a file keeps it)."""
    out = {}
    for e in result.entries:
        if not e.hat or e.keep:
            continue
        if e.text is not None and not e.problem:
            out[e.hat] = Candidate(e.hat, e.text, e)
        elif e.fallback is not None and e.hat not in existing:
            out[e.hat] = Candidate(e.hat, e.fallback, e, core_only=True)
    return out


def apply(result, dry_run: bool = False, want_main: bool = False, progress=None,
          wrote_overrides: frozenset = frozenset()) -> Outcome:
    """Compile, install and load what `result` (generate.plan) wants; see the module doc.
    `wrote_overrides`: the overrides (names in local/php-fpm.d) the caller just wrote
    (learn): a file including one of them is refused, not installed without its overrides.

    A real run also keeps its reading of the web servers' configs (webcache.py), whichever
    command applied (generate, enable, enforce, learn --write, check): the next `status`
    or one pool's change skips reading a thousand unchanged vhosts."""
    out = _apply(result, dry_run, want_main, progress, wrote_overrides)
    if not dry_run and result.web is not None:
        from . import webcache

        webcache.keep(result.sysroot, result.web)
    return out


def _apply(result, dry_run: bool, want_main: bool, progress, wrote_overrides: frozenset) -> Outcome:
    tell = progress or (lambda *a: None)
    sysroot = result.sysroot
    out = Outcome(problems=list(result.problems))
    with (install.lock(sysroot) if not dry_run else contextlib.nullcontext()):
        includes = validate.search_dirs(sysroot)
        existing = install.ours(sysroot)
        old = {h: p.read_text() for h, p in existing.items()}
        want = wanted(result, existing)
        claimed = {e.hat for e in result.entries if e.hat}
        # The shared children exist only while some hat may point into them.
        if want or any(h in claimed for h in existing):
            claimed.add(render.SHARED_FILE)
            want[render.SHARED_FILE] = Candidate(render.SHARED_FILE, result.shared)
        stale = {h: p for h, p in existing.items() if h not in claimed}
        main, ours_main = main_profile(sysroot)
        main_text = main_text_for(result, ours_main, main)
        pool_dir = install.at(sysroot, install.POOL_DIR)
        # The admin's own files in php-fpm.d are part of the profile too: never overwritten,
        # and compiled with ours (a hat they define twice must fail here, not at boot).
        theirs = {p.name: p.read_text(errors="replace") for p in sorted(pool_dir.iterdir())
                  if p.is_file() and not p.name.startswith(".") and p.name not in existing}\
            if pool_dir.is_dir() else {}
        for name in [n for n in want if n in theirs]:
            e = want.pop(name).entry
            e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: {pool_dir / name} exists and "
                         f"was not written by php-fpm-apparmor: move it to "
                         f"{install.LOCAL_DIR}/{name} or choose another apparmor_hat")
            out.problems.append(e.problem)
        # Until some pool uses a hat (or `enable` asks), confining the master would only
        # change what runs today: our profile stays out; the hat files wait, unloaded.
        install_main = ours_main and (want_main or main.exists() or any(e.pool.hat for e in result.entries))
        main_changed = install_main and not (main.exists() and main.read_text() == main_text)
        # The admin's overrides count as a change too: a hat's own or its children's (learn
        # --write) is the change of the file that includes it alone; the master's, or one
        # another file includes (a pool not planned now, the admin's own files), is the whole
        # profile's. One that nothing includes (the README, an editor's backup) is no policy.
        local, before = install.local_digests(sysroot), install.read_state(sysroot)
        known = before or {}
        touched = {n for n in local.keys() | known.keys() if local.get(n) != known.get(n)}
        # (every file read for its includes only when an override changed: most runs none)
        includer = {f"php-fpm.d/{o}": n for n, c in want.items() for o in render.local_overrides(c.text)} \
            if touched else {}
        unplaced = touched - includer.keys()
        local_changed = before is None or any(not n.startswith("php-fpm.d/") for n in unplaced) or bool(
            unplaced and (theirs or unplaced & {f"php-fpm.d/{o}" for t in old.values() for o in render.local_overrides(t)}))
        relocal = set() if local_changed else {includer[n] for n in touched if n in includer}
        changed = {n: c for n, c in want.items() if old.get(n) != c.text or n in relocal}
        for name, problem in _still_left_out(sysroot, changed, old, touched).items():
            del changed[name]
            out.left_out.append(name)
            out.problems.append(problem)
        foreign_main = not ours_main and install.at(sysroot, install.MAIN_PROFILE).exists()
        if changed or stale or main_changed or local_changed or foreign_main:
            keep = {n: t for n, t in old.items() if n not in stale}
            # The whole profile is compiled when more than pool files changed, and while
            # the admin keeps files of their own in php-fpm.d (they may clash with ours).
            if not _compile(sysroot, changed, want, old, keep, theirs, main_text, includes,
                            whole=(main_changed or local_changed or bool(theirs) or foreign_main
                                   or len(changed) > PER_FILE_MAX),
                            parts=ours_main and not theirs, out=out, tell=tell, strict=wrote_overrides):
                if not dry_run:
                    _rescue(sysroot, main, includes, theirs, old, out)
                return out
            broken = sorted(relocal & set(out.refused))
            if broken:
                # An override refused with its file (learn's, or a hat that does not compile
                # without it either) is on disk whatever we install: the whole profile (a
                # boot, the next full reload) cannot compile until it is fixed.
                out.problems.append(f"the php-fpm profile with all pools does not compile (the local overrides "
                                    f"of {', '.join(broken)}), nothing was changed")
                if not dry_run:
                    _rescue(sysroot, main, includes, theirs, old, out)
                return out
        if dry_run:
            return out
        if sysroot in ("/", "") and not load.enabled(sysroot):
            # Policy for a kernel that will not load it is policy nobody checked in use;
            # at boot with AppArmor on, php-fpm's ExecStartPre runs generate again.
            out.problems.append("AppArmor is not enabled in the running kernel: validated only, nothing "
                                "installed or loaded (boot with apparmor=1 security=apparmor)")
            return out
        # --- write
        install.clean_temp(sysroot)
        if install_main and install.write_atomic(main, main_text):
            out.written.append(str(main))
        elif not ours_main:
            mine = install.at(sysroot, install.MAIN_PROFILE)
            if mine.exists() and install.is_ours(mine):  # another php-fpm profile arrived
                mine.unlink()
                out.removed.append(str(mine))
        # The shared children first: hats that run helpers point into them.
        for name in sorted(changed, key=lambda n: (n != render.SHARED_FILE, n)):
            if install.write_atomic(pool_dir / name, changed[name].text):
                out.written.append(str(pool_dir / name))
        for h, p in sorted(stale.items()):
            p.unlink()
            out.removed.append(str(p))
        for key in [k for k in touched if includer.get(k) in relocal - set(changed)]:
            # its file was refused with it: tried again next run
            if key in known:
                local[key] = known[key]
            else:
                local.pop(key, None)
        install.write_state(sysroot, local)
        # --- load
        if not main.exists():
            out.load_skipped = "no pool uses a hat yet (php-fpm-apparmor enable POOL): nothing loaded"
            return out
        if not load.enabled(sysroot):
            out.load_skipped = "--root is not /: files installed, nothing loaded"
            return out
        tell("loading", 0, 0)
        installed = {**theirs, **{n: t for n, t in old.items() if n not in stale},
                     **{n: c.text for n, c in changed.items()}}
        _load(main, main_text, changed, want, old, stale, main_changed or local_changed, out,
              installed, set(theirs), includes, parts=ours_main)
    return out


def _still_left_out(sysroot: str, changed: dict[str, Candidate], old: dict, touched: set) -> dict[str, str]:
    """{file: problem} for the files installed without their overrides on an earlier run
    (they did not compile) whose pool and overrides are unchanged since: said again, not
    compiled again (a host with many broken overrides would compile them all every run)."""
    local = install.at(sysroot, install.LOCAL_DIR)
    out = {}
    for name, c in changed.items():
        was = old.get(name, "")
        if render.LEFT_OUT not in was[:400] or was != render.without_local(c.text):
            continue
        if any(f"php-fpm.d/{o}" in touched for o in render.local_overrides(c.text)):
            continue  # edited since: compiled again
        out[name] = _left_out(c, f"{', '.join(_on_disk(local, c.text))}: unchanged since an earlier run found it "
                                 f"does not compile")
    return out


def _compile(sysroot: str, changed: dict[str, Candidate], want, old, keep, theirs, main_text, includes,
             whole: bool, out: Outcome, tell, strict: frozenset = frozenset(), parts: bool = False) -> bool:
    """Compile what changed; a file the parser refuses leaves `changed` and `want` (its old
    file stays, or its core-only hat takes its place), unless its overrides are what the
    parser refused (then it is installed without them). False: nothing may be installed.
    parts: the whole may be compiled in parts (_compile_whole: our main profile, no file
    of the admin's in php-fpm.d)."""
    local = install.at(sysroot, install.LOCAL_DIR)

    def unlocal(errors: dict[str, str | None]) -> dict[str, str | None]:
        """Refused files that include an override that exists are compiled again without
        their overrides; those that then compile are installed so. An admin's typo in one
        pool's override costs that pool its additions, not every pool its changes (nor, at
        the next boot, the whole php-fpm profile); every run says so until it compiles.
        The override just written by learn (`strict`) is refused instead: learn undoes it."""
        texts = {}
        for name, error in errors.items():
            text = changed[name].text if name in changed else keep.get(name)
            if error and text and not strict.intersection(render.local_overrides(text)) and _on_disk(local, text):
                texts[name] = render.without_local(text)
        for name, error in (validate.compile_pools(texts, includes) if texts else {}).items():
            if error:
                continue  # it does not compile without them either: refused as any other
            c = changed.get(name) or want.get(name) or Candidate(name, keep[name])
            out.problems.append(_left_out(c, _parser_where(errors[name], _on_disk(local, c.text))))
            out.left_out.append(name)
            errors[name] = None
            if texts[name] == old.get(name):
                changed.pop(name, None)  # installed so on an earlier run
            else:
                changed[name] = Candidate(name, texts[name], c.entry, c.core_only)
                if name in want:
                    want[name] = changed[name]
        return errors

    def drop(errors: dict[str, str | None]) -> list[str]:
        """Take the refused candidates out; returns the core-only hats that replace some."""
        retry = []
        for name, error in errors.items():
            if not error:
                continue
            out.refused.append(name)
            if name not in changed:  # an installed file (its local additions changed): report
                out.problems.append(_refused(want.get(name) or Candidate(name, keep[name]), error, includes))
                continue
            c = changed.pop(name)
            want.pop(name, None)
            out.problems.append(_refused(c, error, includes))
            e = c.entry
            if e is not None:
                e.problem = e.problem or out.problems[-1]
                if not c.core_only and name not in old and e.needs_hat:
                    if e.fallback is None:
                        # Its policy passed the checks, so its core rules did: the core-only
                        # hat is a subset of what was checked (no plugin is asked).
                        try:
                            e.fallback = generate.core_only(e, None)
                        except (ValueError, TypeError):
                            continue
                    changed[name] = want[name] = Candidate(name, e.fallback, e, core_only=True)
                    retry.append(name)
        return retry

    def per_file(names: list[str]) -> dict[str, str | None]:
        done = []

        def step(name):
            done.append(name)
            tell("compiling hats", len(done), len(names))
        texts = {n: changed[n].text if n in changed else keep[n] for n in names}
        return validate.compile_pools(texts, includes, step)

    def files() -> dict[str, str]:
        # php-fpm.d as it will be: a pool whose new policy failed keeps its previous file
        # (its hat must stay loaded), removed pools' files are gone.
        return {**theirs, **keep, **{n: c.text for n, c in changed.items()}}

    def settle(names) -> None:
        retry = drop(unlocal(per_file(sorted(names))))
        if retry:
            drop(unlocal(per_file(retry)))

    if not whole:
        settle(changed)
        return True
    tell("compiling the whole profile", 0, 0)
    error = _compile_whole(main_text, files(), includes, parts, tell)
    if error:
        # Which files? The changed ones, and those whose local additions exist (an edit
        # there changes an installed file's meaning without changing the file).
        settle(set(changed) | {n for n, t in keep.items() if _on_disk(local, t)})
        error = _compile_whole(main_text, files(), includes, parts, tell)
    if error:
        out.problems.append(f"the php-fpm profile with all pools does not compile, nothing was "
                            f"changed: {error}")
        return False
    return True


def _rescue(sysroot: str, main: Path, includes: list, theirs: dict, old: dict, out: Outcome) -> None:
    """Nothing was installed because an admin's override does not compile. If the kernel
    has no php-fpm profile either (a boot: apparmor.service could not compile it), no pool
    would have its hat and php-fpm would not start, every site down for one typo: load the
    installed files with the refused pools' overrides left out, so each pool has its hat.
    The files on disk stay as they are (the admin's to fix); every run says so."""
    refused = sorted(set(out.refused))
    if not refused or not main.exists() or not load.enabled(sysroot) or PARENT in load.loaded():
        return
    staged = {**theirs, **{n: render.without_local(t) if n in refused else t for n, t in old.items()}}
    error = load.replace_parent(main.read_text(), staged, includes)
    names = ", ".join(refused)
    if error:
        out.problems.append(f"loading {main} without the local overrides of {names} failed too: {error}")
        return
    out.loaded = out.reloaded = True
    out.problems.append(f"the kernel had no php-fpm profile: loaded the installed one with the local overrides "
                        f"of {names} left out, so every pool has its hat; fix them and run generate")


def parent_part(text: str) -> str:
    """A pool file reduced to its parent-level rules (its socket, logs): what a parent
    replaced without recompiling this pool's hat needs of it."""
    return "".join(line + "\n" for line in split(text)[0])


def _jobs(files: int) -> int:
    """Parser runs side by side for this many files: one per core this process may use,
    PART_MIN files each."""
    return min(forked.cpus(), files // PART_MIN)


def _load_alone(main_text: str, texts: list[str]) -> str | None:
    """Load the files' profiles next to the loaded parent (load.replace_text): many in parts,
    one parser run per core, as _compile_whole compiles them (a package upgrade rewrites
    every hat: a thousand are a minute and a half of one parser run). Each part's profiles
    replace theirs, as one run would; an error in any part is the load's error."""
    jobs = _jobs(len(texts))
    if jobs < 2:
        return load.replace_text(standalone(main_text, texts))
    from concurrent.futures import ThreadPoolExecutor  # the parser runs are the processes

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = list(pool.map(load.replace_text, _parts(main_text, texts, jobs)))
    return next((e for e in errors if e), None)


def _load_in_parts(main_text: str, installed: dict, full: list[str], includes: list) -> str | None:
    """The parent with every file's parent-level rules (the loaded hats kept), then the
    `full` files' profiles in parts (_load_alone): what one parser run of the parent with
    those files in full loads, with one run per core for the hats."""
    error = load.replace_parent(main_text, {n: parent_part(t) for n, t in installed.items()}, includes)
    return error or _load_alone(main_text, [installed[n] for n in full])


def _load(main: Path, main_text: str, changed: dict, want: dict, old: dict, stale: dict,
          whole: bool, out: Outcome, installed: dict, theirs: set, includes: list, parts: bool = False) -> None:
    """Load what changed: its hats alone, else the parent with the changed files and the
    others' parent-level rules (their loaded hats kept), else (`whole`: the main profile or
    the admin's overrides changed, or no parent is loaded) the whole profile. `parts`: our
    main profile and no file of the admin's in php-fpm.d, so that many files' hats may load
    in parts after their parent (_load_in_parts); with no parent loaded the whole is one
    load (a php-fpm started between a parent loaded alone and its hats would find none)."""
    parts = parts and not theirs
    present = load.loaded()
    parent_changed = whole or bool(stale)
    # Profiles a pool no longer defines stay in the kernel until unloaded (replacing the
    # parent keeps them): a removed pool's, and a child a pool dropped.
    gone = set()
    for name, text in old.items():
        if name in stale:
            gone |= set(split(text)[1])
        elif name in changed:
            gone |= set(split(text)[1]) - set(split(changed[name].text)[1])
    # An unchanged file whose profiles the kernel lacks: the parent must be reloaded (a
    # changed file's new profiles, e.g. a child it gained, load with it).
    lacking = {n for n, t in installed.items() if n not in theirs and n not in changed
               and any(f"{PARENT}//{p}" not in present for p in split(t)[1])}
    missing = lacking & want.keys()  # a wanted file's (not one a failed pool keeps)
    alone = PARENT in present and not parent_changed and not missing and all(
        n in old and n != render.SHARED_FILE and split(old[n])[0] == split(c.text)[0]
        for n, c in changed.items())
    if changed and alone:
        error = _load_alone(main_text, [c.text for c in changed.values()])
        if not error:
            out.loaded = True
            out.hats_loaded = sorted(p for c in changed.values() for p in split(c.text)[1])
            out.cache = load.refresh_cache(str(main))  # a load of a part writes no cache
        else:  # the parent's way is slower but the same policy
            out.problems.append(f"loading the changed hats alone failed, reloading {main}: {error}")
            alone = False
    if not alone and (changed or stale) and PARENT in present and not whole:
        # The parent's own rules changed (a pool added or removed, a socket or log path):
        # the parent is replaced with the changed files, and only the parent-level rules of
        # the others. The kernel keeps the loaded hats a new parent does not define (DESIGN.md
        # 5), so one new pool's socket does not compile a thousand hats again (a minute of
        # parser time, and systemd gives `systemctl reload` 90 s). The boot-time cache is not
        # written from this partial text: it is refreshed from the files in the background.
        kept = {n for n in installed if n not in changed and n not in lacking and n not in theirs}
        full = sorted(set(installed) - kept)
        if parts and _jobs(len(full)) > 1:  # a PHP upgrade moves every pool's socket
            error = _load_in_parts(main_text, installed, full, includes)
        else:
            staged = {n: parent_part(t) if n in kept else t for n, t in installed.items()}
            error = load.replace_parent(main_text, staged, includes)
        if not error:
            out.loaded = out.reloaded = True
            out.hats_kept = sorted(p for n in kept for p in split(installed[n])[1])
            out.cache = load.refresh_cache(str(main))
            alone = True
        else:  # the whole profile: slower, the same policy
            out.problems.append(f"loading the parent with the changed files alone failed, reloading {main}: "
                                f"{error}")
    compiles = bool(changed or parent_changed or stale)
    if not alone and whole and parts and PARENT in present and _jobs(len(installed)) > 1:
        # The main profile or the admin's overrides changed on a big host: every file's
        # hats again, after their parent, one parser run per core; the cache refreshed after.
        error = _load_in_parts(main_text, installed, sorted(installed), includes)
        if not error:
            out.loaded = out.reloaded = True
            out.cache = load.refresh_cache(str(main))
            alone = True
        else:
            out.problems.append(f"loading the whole profile in parts failed, reloading {main}: {error}")
    if not alone and (compiles or missing):
        # Nothing written, only profiles missing from the kernel (a failed boot-time load):
        # the cache of the last full load is still valid and saves the whole compile.
        error = load.reload(str(main), use_cache=not compiles)
        if error:
            out.problems.append(f"loading {main} failed: {error}")
            return
        out.loaded = out.reloaded = True
    error = load.unload(sorted(gone))
    if error:
        out.problems.append(f"unloading removed hats failed: {error}")
