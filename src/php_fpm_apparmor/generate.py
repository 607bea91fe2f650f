"""Steps 1-5 and their checks: pools -> sites -> apps -> policy -> render -> invariants.

`plan()` is pure (reads the system tree, writes nothing); apply.py validates, installs and
loads what it planned. A pool whose policy is wrong is reported with its problem; if it
sets apparmor_hat it also gets `fallback`, its core-only hat (no site files), so that
apply can leave it a loadable hat when it has none installed yet.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from . import apps as apps_mod
from . import pools as pools_mod, render, sites, webserver
from . import policy as policy_mod
from .errors import ConfigError
from .policy import SAFE_NAME

SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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
    crossings: list = field(default_factory=list)  # into other pools, allowed by the admin's share =
    local_code: list = field(default_factory=list)  # the admin's local rules that let it write code
    apps: list = field(default_factory=list)
    # The core-only hat (core rules, no site files) for a pool with apparmor_hat whose
    # policy failed: apply installs it only when the pool has no previous file.
    fallback: str | None = None
    core_site: object = None  # the site the core-only hat is built from (no roots)
    # plan(only=...): a pool not asked for keeps its installed file. Its text is "" and its
    # policy names only its profiles: enough for the checks of the pools that are planned.
    keep: bool = False
    claims: list = field(default_factory=list)  # [(root, plugins)] claimed, not named by the pool

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


def plan(sysroot: str = "/", plugins=None, environ=None, check: bool = True, build: bool = True,
         detect: bool = True, progress=None, only=None) -> Plan:
    """Read every pool and work out its hat. build=False stops after the sites and apps
    (detect=False: after the sites), what `status` shows: no policy, no text, no checks.
    progress(stage, done, total) is told how far.

    only: pool or hat names. Only those pools (and pools without an installed file) are
    planned; every other pool keeps its installed file (Entry.keep) and takes part in the
    checks with its site and profile names. What one pool's change costs is then that
    pool's work plus reading the pools, whatever their number."""
    from . import plugins as plugins_mod
    plugins = plugins or plugins_mod.load(sysroot=sysroot)
    tell = progress or (lambda *a: None)
    sites.forget_disk()
    result = Plan(sysroot)
    # php-fpm runs under systemd's environment, not the admin's shell: ${VAR} in a pool
    # must expand as the service sees it.
    if environ is None:
        environ = {"PATH": SERVICE_PATH}
    tell("reading pools", 0, 0)
    pools = pools_mod.read_all(sysroot, environ=environ)  # ConfigError: fatal, nothing changes
    conf = sites.load_config(sysroot)
    result.web = webserver.read(sysroot)  # never raises: its problems become warnings
    result.warnings.extend(result.web.problems)
    result.entries = [Entry(pool=p) for p in pools]
    assign_hats(result.entries)
    total = len(result.entries)
    with plugins.session():  # one SIGALRM handler for every hook call of the run
        for i, e in enumerate(result.entries, 1):
            tell("pools read, building hats" if build else "pools read, finding apps", i, total)
            if e.problem or e.note:
                continue
            try:
                e.site = sites.build(e.pool, e.hat, conf, sysroot, result.web)
                if "root" not in e.site.settings:  # the admin's root = wins over plugins
                    claimed, by = apps_mod.claimed_roots(e.site, plugins)
                    if claimed:
                        before = e.site
                        try:
                            e.site = sites.build(e.pool, e.hat, conf, sysroot, result.web,
                                                 claimed=(claimed, "claimed by plugin " + ", ".join(by)))
                        except ConfigError as exc:  # "/ is a system directory": whose claim it was
                            head = f"pool {e.pool.name}: "
                            exc.message = (head + f"plugin {', '.join(by)}: php_fpm_apparmor_roots: "
                                           + exc.message.removeprefix(head))
                            raise
                        e.claims = apps_mod.new_claims(before, e.site, by)
            except ConfigError as exc:
                e.problem = str(exc)
                # Whatever is wrong with its section, the pool's own settings still say what
                # any worker needs: the core-only hat is built from those.
                e.core_site = sites.Site(pool=e.pool, hat=e.hat, roots=[], sysroot=sysroot)
                continue
            except ValueError as exc:  # PluginError from the roots hook
                e.problem = f"{e.pool.config_file}: pool {e.pool.name}: {exc}"
                continue
            if not e.site.roots:
                message = f"{e.pool.config_file}: pool {e.pool.name}: {e.site.origin}"
                if e.needs_hat:
                    e.problem = message + "; it gets the core-only hat (no site files) until a root is found"
                    e.core_site = e.site
                else:
                    e.note = message
                continue
            if not build and not detect:
                continue
            if only is not None and build and not ({e.pool.name, e.hat} & set(only)):
                from .apply import installed_profiles

                names = installed_profiles(sysroot, e.hat)
                if names:
                    e.keep, e.text = True, ""
                    e.policy = policy_mod.PoolPolicy(hat=e.hat, pool=e.pool, site=e.site, profiles=[
                        policy_mod.Profile(name=n, kind="hat" if n == e.hat else "profile") for n in names])
                    continue
            try:
                e.apps = apps_mod.detect(e.site, plugins, result.warnings)
                if not build:
                    continue
                e.policy = policy_mod.build(e.site, e.apps, plugins)
                e.text = render.render(e.policy)
            except (ValueError, TypeError) as exc:
                e.problem = f"{e.pool.config_file}: pool {e.pool.name}: {exc}"
    apps_mod.refuse_foreign_claims(result.entries)
    result.warnings.extend(plugins.problems)
    if not build:
        return result
    if check:  # off only in benchmarks that time the text generation alone
        tell("checking hats", 0, 0)
        from . import invariants  # the automata: not for `status`

        invariants.check_plan(result)
    _fallbacks(result, plugins, check)
    # Every pool that has (or keeps) a hat may mail through the shared profiles, except one
    # whose sendmail_path was refused.
    result.shared = render.render_shared(policy_mod.shared_profiles(
        sorted({policy_mod.jailed(e.pool, e.pool.ini("sendmail_path") or policy_mod.DEFAULT_SENDMAIL)
                for e in result.entries if e.hat and (e.site or e.fallback) and not e.unsafe_sendmail})))
    return result


def core_only(e: Entry, plugins, site=None) -> str:
    """The pool's core-only hat: the rules any worker needs, no site files and no app.
    Its requests fail visibly (audit log); nothing else about the host changes."""
    site = site or e.core_site or dataclasses.replace(e.site, roots=[], read_paths=[], write_paths=[],
                                                      symlinked={})
    first, _, rest = render.render(policy_mod.build(site, [], plugins)).partition("\n")
    return f"{first}\n{CORE_ONLY}\n{rest}"


CORE_ONLY = ("# core-only hat: this pool's own policy failed (php-fpm-apparmor check says why); "
             "no site files until it is fixed")


def _fallbacks(result: Plan, plugins, check: bool) -> None:
    """A core-only hat for each pool with apparmor_hat whose own policy failed, checked
    like any other hat (a core rule may be what failed)."""
    failed = [e for e in result.entries
              if e.needs_hat and e.hat and e.problem and not e.unsafe_sendmail
              and (e.core_site is not None or e.site is not None)]
    if not failed:
        return
    shadow = Plan(result.sysroot)
    for e in failed:
        try:
            site = e.core_site or dataclasses.replace(e.site, roots=[], read_paths=[], write_paths=[],
                                                      symlinked={})
            text = core_only(e, plugins, site)
            pol = policy_mod.build(site, [], plugins)
        except (ValueError, TypeError, ConfigError):
            continue  # not even the core rules can be built: no hat, the problem says why
        shadow.entries.append(Entry(pool=e.pool, hat=e.hat, site=site, policy=pol, text=text))
    # The pools that did get a hat, without their (already checked) text: their roots and
    # profile names are what a core-only hat must not collide with.
    shadow.entries += [dataclasses.replace(o, text="", problem=None) for o in result.ready]
    if check:
        from . import invariants

        invariants.check_plan(shadow)
    built = {id(s.pool): s for s in shadow.entries if s.text}
    for e in failed:
        s = built.get(id(e.pool))
        if s is not None and not s.problem:
            e.fallback = s.text
