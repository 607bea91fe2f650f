"""The whole pipeline: pools -> sites -> apps -> policy -> render -> validate -> install -> load.

`plan()` is pure (reads the system tree, writes nothing); `apply()` is the only place that
changes the live system, and it changes nothing until every file it installs compiled.
A pool whose policy is wrong is skipped (its previous file, if any, stays) and reported;
the other pools still get theirs.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import apps as apps_mod
from . import evaluate, install, load, pools as pools_mod, render, sites, validate, webserver
from . import policy as policy_mod
from .errors import ConfigError
from .policy import SAFE_NAME

_HERE = Path(__file__).resolve()
TEMPLATES = ("/usr/share/php-fpm-apparmor/php-fpm.profile",
             # an installed package under another root (dpkg --root, an unpacked .deb):
             # <usr>/lib/python3/dist-packages/php_fpm_apparmor/generate.py
             str(_HERE.parents[min(4, len(_HERE.parents) - 1)] / "share/php-fpm-apparmor/php-fpm.profile"),
             # a source checkout: <repo>/src/php_fpm_apparmor/generate.py
             str(_HERE.parents[min(2, len(_HERE.parents) - 1)] / "etc/apparmor.d/php-fpm-apparmor.profile"))
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROFILE_PHP_FPM = re.compile(r"^\s*profile\s+php-fpm\s", re.M)


@dataclass
class Entry:
    """One pool's way through the pipeline."""

    pool: object
    hat: str | None = None
    site: object = None
    policy: object = None
    text: str | None = None
    problem: str | None = None  # why this pool gets no (new) hat
    note: str | None = None  # skipped harmlessly (no apparmor_hat and nothing to go on)
    unsafe_sendmail: bool = False  # its sendmail_path must not enter the shared profiles

    @property
    def needs_hat(self) -> bool:
        return bool(self.pool.hat)


@dataclass
class Plan:
    sysroot: str
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shared: str = ""  # text of php-fpm.d/_shared
    web: object = None  # webserver.WebConfig: the nginx/Apache vhosts found

    @property
    def ready(self) -> list[Entry]:
        return [e for e in self.entries if e.text is not None and not e.problem]

    @property
    def problems(self) -> list[str]:
        return [e.problem for e in self.entries if e.problem]


def suggest_hat(pool, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", pool.name).strip("-._") or "pool"
    base = base[:40]
    for candidate in (base, f"{base}-php{pool.version}"):
        if candidate.lower() not in taken and SAFE_NAME.match(candidate) and not _SKIPPED.search(candidate):
            return candidate
    return f"{base}-php{pool.version}-{len(taken)}"


def where(pool, key: str) -> str:
    origin = pool.origins.get(key)
    return f"{origin.file}:{origin.line}" if origin else pool.config_file


# File names apparmor_parser's directory include skips: a hat named so would never load.
_SKIPPED = re.compile(r"^README$|\.(dpkg-(new|old|dist|bak|remove)|pacsave|pacnew|rpmnew|rpmsave|orig|rej)$|~$")


def assign_hats(entries: list[Entry]) -> None:
    """apparmor_hat, or the pool name; refuse unsafe names and collisions across versions."""
    by_hat: dict[str, list[Entry]] = {}
    for e in entries:
        pool = e.pool
        if pool.hat is not None:
            if not SAFE_NAME.match(pool.hat) or _SKIPPED.search(pool.hat):
                e.problem = (f"{where(pool, 'apparmor_hat')}: pool {pool.name}: apparmor_hat "
                             f"{pool.hat!r} is not a safe name (letters, digits, . _ -, at most 63); "
                             f"use e.g. apparmor_hat = {suggest_hat(pool, set())}")
                continue
            e.hat = pool.hat
        elif SAFE_NAME.match(pool.name) and not _SKIPPED.search(pool.name):
            e.hat = pool.name
        else:
            e.note = (f"{pool.config_file}: pool {pool.name!r} has a name AppArmor cannot use and no "
                      f"apparmor_hat; to confine it set apparmor_hat = {suggest_hat(pool, set())}")
            continue
        by_hat.setdefault(e.hat.lower(), []).append(e)
    for hat, group in by_hat.items():
        if len(group) < 2:
            continue
        explicit = [e for e in group if e.pool.hat]
        for e in group:
            if not e.pool.hat:  # a derived name yields: www in 7.4 and 8.2 -> www-php7.4, www-php8.2
                e.hat = f"{e.hat}-php{e.pool.version}"
                continue
            if len(explicit) < 2:
                continue
            others = ", ".join(f"{o.pool.name} (PHP {o.pool.version}, {o.pool.config_file})"
                               for o in group if o is not e)
            e.problem = (f"{where(e.pool, 'apparmor_hat')}: pool {e.pool.name}: hat {e.hat!r} is "
                         f"also used by {others}; one php-fpm profile covers every PHP version, "
                         f"so hats must be unique")


def plan(sysroot: str = "/", plugins=None, environ=None, check: bool = True) -> Plan:
    from . import plugins as plugins_mod

    plugins = plugins or plugins_mod.load(sysroot=sysroot)
    sites._readlink.cache_clear()  # a run sees the disk as it is now
    result = Plan(sysroot)
    # php-fpm runs under systemd's environment, not the admin's shell: ${VAR} in a pool
    # must expand as the service sees it.
    if environ is None:
        environ = {"PATH": SERVICE_PATH}
    pools = pools_mod.read_all(sysroot, environ=environ)  # ConfigError: fatal, nothing changes
    conf = sites.load_config(sysroot)
    result.web = webserver.read(sysroot)  # never raises: its problems become warnings
    result.warnings.extend(result.web.problems)
    result.entries = [Entry(pool=p) for p in pools]
    assign_hats(result.entries)
    for e in result.entries:
        if e.problem or e.note:
            continue
        try:
            e.site = sites.build(e.pool, e.hat, conf, sysroot, result.web)
            if "root" not in e.site.settings:  # the admin's root = wins over plugins
                claimed, by = apps_mod.claimed_roots(e.site, plugins)
                if claimed:
                    e.site = sites.build(e.pool, e.hat, conf, sysroot, result.web,
                                         claimed=(claimed, "claimed by plugin " + ", ".join(by)))
        except ConfigError as exc:
            e.problem = str(exc)
            continue
        except ValueError as exc:  # PluginError from the roots hook
            e.problem = f"{e.pool.config_file}: pool {e.pool.name}: {exc}"
            continue
        if not e.site.roots:
            message = f"{e.pool.config_file}: pool {e.pool.name}: {e.site.origin}"
            if e.needs_hat:
                e.problem = message
            else:
                e.note = message
            continue
        try:
            found = apps_mod.detect(e.site, plugins)
            e.policy = policy_mod.build(e.site, found, plugins)
            e.text = render.render(e.policy)
        except (ValueError, TypeError) as exc:
            e.problem = f"{e.pool.config_file}: pool {e.pool.name}: {exc}"
    result.warnings.extend(plugins.problems)
    if check:  # off only in benchmarks that time the text generation alone
        check_invariants(result)
    # Every pool that has (or keeps) a hat may mail through the shared profiles, except one
    # whose sendmail_path was refused.
    result.shared = render.render_shared(policy_mod.shared_profiles(
        sorted({policy_mod.jailed(e.pool, e.pool.ini("sendmail_path") or policy_mod.DEFAULT_SENDMAIL)
                for e in result.entries if e.hat and e.site and not e.unsafe_sendmail})))
    return result


# --- invariants on the rendered text ----------------------------------------------------

@functools.lru_cache(maxsize=65536)
def _literal_prefix(pattern: str) -> str:
    m = re.search(r"(?<!\\)[*?\[{]", pattern)
    return evaluate.decode(evaluate.encode_pattern(pattern[: m.start()] if m else pattern))


def check_invariants(result: Plan) -> None:
    # Child profiles are <hat>_<helper>: a hat named like another pool's child would
    # define one profile twice and fail the whole php-fpm profile.
    owners: dict[str, list[Entry]] = {}
    for e in result.ready:
        for prof in e.policy.profiles:
            owners.setdefault(prof.name.lower(), []).append(e)
    for name, group in owners.items():
        if len(group) > 1:
            for e in group:
                others = ", ".join(o.pool.name for o in group if o is not e)
                e.problem = (f"{where(e.pool, 'apparmor_hat')}: pool {e.pool.name}: profile name "
                             f"php-fpm//{name} is also defined for pool {others}; rename one apparmor_hat")
    entries = [e for e in result.ready]
    all_roots = [(r, e) for e in entries for r in e.site.roots]
    for e in entries:
        # A root reached through a symlink that lands in another pool's site is that
        # site's files under another name, not a site of its own.
        for root, configured in e.site.symlinked.items():
            for r, other in all_roots:
                if other is not e and root != r and evaluate.inside(root, r):
                    e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: root {configured} is a "
                                 f"symlink to {root}, inside pool {other.pool.name}'s root {r}")
        # mail() runs sendmail_path in the children every pool shares: never a site's file.
        binary = policy_mod._first_word(e.pool.ini("sendmail_path") or "")
        if binary:
            real = e.site.worker(binary)
            hit = next(((r, o) for r, o in all_roots if evaluate.inside(real, r)), None)
            if hit:
                e.unsafe_sendmail = True
                e.problem = (f"{where(e.pool, 'php_admin_value[sendmail_path]')}: pool {e.pool.name}: "
                             f"sendmail_path {binary} is inside pool {hit[1].pool.name}'s root {hit[0]}: "
                             f"a site's file must not run as every pool's mail helper")
    entries = [e for e in result.ready]
    roots = sorted(((r, e) for e in entries for r in e.site.roots), key=lambda t: t[0])
    keys = [r for r, _ in roots]
    for e in entries:
        problems = []
        try:
            profiles = evaluate.parse(e.text)
        except ValueError as exc:  # a rule nobody can evaluate is a rule nobody checked
            e.problem = f"{e.pool.config_file}: pool {e.pool.name}: {exc}"
            continue
        allowed = {x.path for x in e.policy.exceptions}
        for name, prof in profiles.items():
            for rule in prof.ours:
                pattern = rule.path.regex
                if rule.exec_perms and re.search(r"[uU]", rule.exec_perms):
                    problems.append(f"{name}: {pattern} runs unconfined ({rule.exec_perms})")
                if rule.deny:
                    continue
                if name != "php-fpm" and {"w", "a", "l"} & rule.perms and pattern not in allowed:
                    for w in evaluate.witnesses(pattern):
                        # Web-reachable code is what matters: a .php written under the
                        # site's roots can be requested or included; a mail queue file cannot.
                        # Appending to one or hard-linking one is writing it too.
                        if evaluate.is_forbidden_name(w) and any(evaluate.inside(w, r) for r in e.site.roots) \
                                and evaluate.matches(pattern, w) \
                                and any(evaluate.allows(prof, op, w) for op in ("write", "append", "link")):
                            problems.append(f"{name}: {pattern} would let PHP write {w}; no plugin "
                                            f"declared this exception")
                            break
                # Other pools' roots: only those the rule's literal prefix can lead into.
                prefix = _literal_prefix(pattern)
                lo = bisect.bisect_left(keys, prefix)
                hi = bisect.bisect_left(keys, prefix + "\uffff")
                candidates = roots[lo:hi]
                parts = prefix.split("/")
                for i in range(2, len(parts) + 1):
                    ancestor = "/".join(parts[:i])
                    j = bisect.bisect_left(keys, ancestor)
                    while j < len(keys) and keys[j] == ancestor:
                        candidates.append(roots[j])
                        j += 1
                for root, other in candidates:
                    if other is e or root in e.site.roots:
                        continue
                    if evaluate.reaches(pattern, root, e.site.roots):
                        problems.append(f"{name}: {pattern} reaches pool {other.pool.name}'s root {root}")
        if problems:
            uniq = list(dict.fromkeys(problems))
            e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: policy refused: "
                         + "; ".join(uniq[:5]) + (f" (+{len(uniq) - 5} more)" if len(uniq) > 5 else ""))


# --- applying ---------------------------------------------------------------------------

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


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    loaded: bool = False
    load_skipped: str | None = None


def _compile_whole(main_text: str, files: dict[str, str], includes: list[str]) -> str | None:
    """Compile the php-fpm profile as it will be after install; None if it compiles."""
    with tempfile.TemporaryDirectory(prefix="php-fpm-apparmor-stage-") as stage:
        staged = Path(stage, "php-fpm.d")
        staged.mkdir()
        for name, text in files.items():
            (staged / name).write_text(text)
        whole = Path(stage, "php-fpm-main")
        whole.write_text(main_text)
        return validate.compile_file(str(whole), [stage] + includes)


def main_text_for(result: Plan, ours_main: bool, main: Path) -> str:
    if not ours_main:
        return main.read_text()
    text = template()
    # A pool without apparmor_hat runs PHP in the master's profile: enforcing it would
    # break that site, so the master stays in complain mode until every pool has a hat.
    if any(not e.pool.hat for e in result.entries):
        text = re.sub(r"flags=\(([^)]*)\)", lambda m: f"flags=({m.group(1)},complain)", text, count=1)
    return text


def apply(result: Plan, dry_run: bool = False, want_main: bool = False) -> Outcome:
    """Validate, install and load. Nothing live changes unless the whole profile compiles.

    The whole profile is compiled once (compile time is what costs on big hosts); only
    when it fails are the pools compiled one by one, to name the culprits and leave
    them out (a culprit's previous file, if any, stays).
    """
    sysroot = result.sysroot
    out = Outcome(problems=list(result.problems))
    with (install.lock(sysroot) if not dry_run else contextlib.nullcontext()):
        includes = validate.search_dirs(sysroot)
        existing = install.ours(sysroot)
        claimed = {e.hat for e in result.entries if e.hat}
        # The shared children exist only while some hat may point into them.
        if result.ready or any(h in claimed for h in existing):
            claimed.add(render.SHARED_FILE)
        stale = {h: p for h, p in existing.items() if h not in claimed}
        main, ours_main = main_profile(sysroot)
        main_text = main_text_for(result, ours_main, main)
        pool_dir = install.at(sysroot, install.POOL_DIR)
        # The admin's own files in php-fpm.d are part of the profile too: never overwritten,
        # and compiled with ours (a hat they define twice must fail here, not at boot).
        theirs = {p.name: p.read_text(errors="replace") for p in sorted(pool_dir.iterdir())
                  if p.is_file() and not p.name.startswith(".") and p.name not in existing}\
            if pool_dir.is_dir() else {}
        for e in result.ready:
            if e.hat in theirs:
                e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: {pool_dir / e.hat} exists and "
                             f"was not written by php-fpm-apparmor: move it to "
                             f"{install.LOCAL_DIR}/{e.hat} or choose another apparmor_hat")
                out.problems.append(e.problem)
        # Until some pool uses a hat (or `enable` asks), confining the master would only
        # change what runs today: our profile stays out; the hat files wait, unloaded.
        install_main = ours_main and (want_main or main.exists() or any(e.pool.hat for e in result.entries))
        ready = list(result.ready)

        def files() -> dict[str, str]:
            # A pool we could not generate keeps its previous file: its hat must stay loaded.
            fresh = {e.hat: e.text for e in ready}
            kept = {h: p.read_text() for h, p in existing.items() if h in claimed and h not in fresh}
            shared = {render.SHARED_FILE: result.shared} if render.SHARED_FILE in claimed else {}
            return {**theirs, **kept, **fresh, **shared}

        changed = [e for e in ready if not (e.hat in existing and existing[e.hat].read_text() == e.text)]
        shared_path = install.at(sysroot, install.POOL_DIR) / render.SHARED_FILE
        if render.SHARED_FILE in claimed and not (shared_path.exists() and shared_path.read_text() == result.shared):
            changed.append(None)
        main_changed = install_main and not (main.exists() and main.read_text() == main_text)
        local = install.local_digest(sysroot)  # the admin's overrides count as a change too
        if (not changed and not stale and not main_changed and local == install.read_state(sysroot)
                and (ours_main or not install.at(sysroot, install.MAIN_PROFILE).exists())):
            pass  # everything installed is what we would install: it compiled when installed
        else:
            error = _compile_whole(main_text, files(), includes)
            if error:
                errors = validate.compile_pools({e.hat: e.text for e in ready}, includes)
                for e in ready:
                    if errors[e.hat]:
                        e.problem = (f"{e.pool.config_file}: pool {e.pool.name}: apparmor_parser refused "
                                     f"hat {e.hat}: {errors[e.hat]}")
                        out.problems.append(e.problem)
                ready = [e for e in ready if not e.problem]
                error = _compile_whole(main_text, files(), includes) if len(ready) < len(result.ready) else error
            if error:
                out.problems.append(f"{main}: the php-fpm profile with all pools does not compile, "
                                    f"nothing was changed: {error}")
                return out
        if dry_run:
            return out
        if sysroot in ("/", "") and not load.enabled(sysroot):
            # Policy for a kernel that will not load it is policy nobody checked in use;
            # at boot with AppArmor on, php-fpm's ExecStartPre runs generate again.
            out.problems.append("AppArmor is not enabled in the running kernel: validated only, nothing "
                                "installed or loaded (boot with apparmor=1 security=apparmor)")
            return out
        install.clean_temp(sysroot)
        if install_main and install.write_atomic(main, main_text):
            out.written.append(str(main))
        elif not ours_main:
            mine = install.at(sysroot, install.MAIN_PROFILE)
            if mine.exists() and install.is_ours(mine):  # another php-fpm profile arrived
                mine.unlink()
                out.removed.append(str(mine))
        # The shared children first: hats that run helpers point into them.
        if render.SHARED_FILE in claimed and install.write_atomic(pool_dir / render.SHARED_FILE, result.shared):
            out.written.append(str(pool_dir / render.SHARED_FILE))
        for e in sorted(ready, key=lambda e: e.hat):
            if install.write_atomic(pool_dir / e.hat, e.text):
                out.written.append(str(pool_dir / e.hat))
        for h, p in sorted(stale.items()):
            p.unlink()
            out.removed.append(str(p))
        local_changed = local != install.read_state(sysroot)
        install.write_state(sysroot, local)
        if not main.exists():
            out.load_skipped = "no pool uses a hat yet (php-fpm-apparmor enable POOL): nothing loaded"
            return out
        if not load.enabled(sysroot):
            out.load_skipped = "--root is not /: files installed, nothing loaded"
            return out
        present = load.loaded()
        missing = [e.hat for e in ready if f"{load.PARENT}//{e.hat}" not in present]
        if out.written or out.removed or missing or local_changed:
            error = load.reload(str(main))
            if error:
                out.problems.append(f"loading {main} failed: {error}")
                return out
            out.loaded = True
        error = load.unload(sorted(set(stale) | set(_children_loaded(stale))))
        if error:
            out.problems.append(f"unloading removed hats failed: {error}")
    return out


def _children_loaded(stale: dict) -> list[str]:
    names = []
    for name in load.loaded():
        for h in stale:
            if name.startswith(f"{load.PARENT}//{h}_"):
                names.append(name.split("//", 1)[1])
    return names
