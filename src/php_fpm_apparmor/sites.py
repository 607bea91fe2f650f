"""Step 2: where each pool's PHP code lives, canonicalised the way AppArmor sees paths.

Roots come from the tool's own config (/etc/php-fpm-apparmor/php-fpm-apparmor.conf, a
section per pool), else from the web server vhosts that pass PHP to the pool's listen
address (webserver.py: nginx, Apache), else are inferred from doc_root, chdir and
open_basedir. AppArmor
matches resolved paths, so every root is realpath'd inside the system root.
"""

from __future__ import annotations

import configparser
import functools
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

CONFIG = "/etc/php-fpm-apparmor/php-fpm-apparmor.conf"
MODES = ("enforce", "complain")
TRUE = ("1", "yes", "true", "on")
FALSE = ("0", "no", "false", "off", "")


@dataclass
class Site:
    pool: object  # pools.Pool
    hat: str
    roots: list[str]  # canonical system paths of the PHP code
    sysroot: str = "/"  # the --root the tool runs on ("/" on a live system)
    settings: dict = field(default_factory=dict)  # this pool's config section
    mode: str = "enforce"
    read_paths: list[str] = field(default_factory=list)  # extra canonical paths, read-only
    write_paths: list[str] = field(default_factory=list)  # extra canonical paths, writable
    # canonical paths of other pools this pool's `read =`/`write =` may reach (`share =`)
    share_paths: list[str] = field(default_factory=list)
    origin: str = ""  # where the roots came from (config section or inferred from which key)
    symlinked: dict = field(default_factory=dict)  # canonical root -> the configured path, if a link
    users_links: set = field(default_factory=set)  # of those roots, the ones a user (not root) links to
    vhosts: list[str] = field(default_factory=list)  # server names of the vhosts passing PHP here
    web_roots: list[str] = field(default_factory=list)  # every root those vhosts name, even refused ones

    def disk(self, path: str, *more: str) -> Path:
        """The file on disk for a system path. Below --root (tests, the demo, a DPKG_ROOT
        install) the tree's symlinks are resolved inside the tree first: the kernel would
        follow Debian's absolute wp-config.php link to the host's /etc."""
        if self.sysroot in ("/", "") or not path.startswith("/"):
            return _disk(self.sysroot, path, more)
        return _tree_disk(self.sysroot, posixpath.join(path, *more) if more else path)

    def entry(self, path: str) -> Path:
        """The directory entry itself on disk, a symlink not followed (its owner: lstat)."""
        return _disk(self.sysroot, path, ())

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.settings.get(name)
        if value is None:
            return default
        return value.strip().lower() in TRUE

    def canonical(self, path: str) -> str:
        """realpath of a system path, following symlinks inside the system root only."""
        return canonical(self.sysroot, path)

    def worker(self, path: str) -> str:
        """A path as the pool's worker names it, as AppArmor sees it: a chrooted worker's
        paths are below its chroot (profiles match namespace-relative paths)."""
        chroot = getattr(self.pool, "chroot", None)
        if chroot and path.startswith("/"):
            path = chroot.rstrip("/") + path
        return canonical(self.sysroot, path)


@functools.lru_cache(maxsize=65536)  # a Path is immutable; building one costs more than the lookup
def _disk(sysroot: str, path: str, more: tuple) -> Path:
    return Path(sysroot, path.lstrip("/"), *more)


@functools.lru_cache(maxsize=65536)
def _tree_disk(sysroot: str, path: str) -> Path:
    try:
        path = canonical(sysroot, path)
    except (ConfigError, ValueError):  # a loop: opening it fails, as it would on the system
        pass
    return Path(_real(sysroot), path.lstrip("/"))


@functools.lru_cache(maxsize=64)
def _real(sysroot: str) -> str:
    return os.path.realpath(sysroot)


@functools.lru_cache(maxsize=65536)
def _readlink(path: str) -> str | None:
    # One run sees the same /var, /var/www, /run/php... for every pool: ask the disk once.
    try:
        return os.readlink(path)
    except OSError:
        return None


@functools.lru_cache(maxsize=4096)
def system_file(disk: Path) -> bool:
    """Is there a regular file at `disk` (a system program, say)? The helpers a plugin
    looks for are the same for each of a thousand sites: asked of the disk once a run."""
    return disk.is_file()


def forget_disk() -> None:
    """A run sees the disk as it is now: drop what an earlier run in this process resolved."""
    _readlink.cache_clear()
    canonical.cache_clear()
    _tree_disk.cache_clear()
    system_file.cache_clear()


def inside(path: str, root: str) -> bool:
    """Is `path` the directory `root` or below it (plain path comparison, no globs)?"""
    return path == root or path.startswith(root.rstrip("/") + "/")


@functools.lru_cache(maxsize=65536)  # plugins and checks ask for the same paths again and again
def canonical(sysroot: str, path: str) -> str:
    """Resolve `path` as the live system would, treating `sysroot` as "/" (on the live
    system too: one readlink per new component, where realpath lstats every component of
    every path again; and a symlink loop is an error, not a path)."""
    root = "" if sysroot in ("/", "") else _real(sysroot)
    # The common case, a plain path whose directory holds no symlink (a thousand pool
    # files in one pool.d): that directory's answer is cached, one readlink is left.
    head, _, tail = path.rpartition("/")
    if head.startswith("/") and tail not in ("", ".", "..") and "/." not in head and "//" not in head:
        if canonical(sysroot, head) == head and _readlink(root + path) is None:
            return path
    return _resolve(root, path)


def _resolve(root: str, path: str, links: list | None = None) -> str:
    """canonical()'s walk: one readlink per component; `links` gets the system path of each
    symlink followed."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        here = "/" + "/".join(resolved + [part])
        target = _readlink(root + here)
        if target is not None:
            hops += 1
            if hops > 40:  # same bound as the kernel's symlink loop limit
                raise ConfigError(path, None, "too many levels of symbolic links")
            if links is not None:
                links.append(here)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return "/" + "/".join(resolved)


def symlinks(sysroot: str, path: str) -> list[str]:
    """The system path of each symlink on the way from `path` to its canonical form (each
    one's directory is canonical)."""
    links: list[str] = []
    _resolve("" if sysroot in ("/", "") else _real(sysroot), path, links)
    return links


# Directories that appear in open_basedir for PHP's own sake, never a site's code.
SYSTEM_DIRS = ("/tmp", "/var/tmp", "/usr", "/dev", "/etc", "/proc", "/var/lib/php", "/bin",
               "/lib", "/run", "/var/run", "/var/log", "/sbin", "/sys", "/boot", "/root",
               "/var/spool", "/var/cache", "/var/mail")
# Parents of sites: never a root when inferred from open_basedir (panels list them).
_PARENTS = ("/opt", "/home", "/srv", "/var/www", "/var/lib")
# Too broad or too dangerous to be written to by a pool (`write =`), whatever is below.
NO_WRITE = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/boot", "/root", "/proc", "/sys", "/dev",
            "/var/spool/cron", "/var/lib/dpkg", "/var/lib/apt", "/var/log", "/run/systemd")


def load_config(sysroot: str = "/") -> configparser.ConfigParser:
    """The tool's own INI; a missing file is an empty config, a broken one a ConfigError."""
    conf = configparser.ConfigParser(interpolation=None, default_section="defaults")
    path = Path(sysroot, CONFIG.lstrip("/"))
    try:
        with open(path, encoding="utf-8") as f:
            conf.read_file(f, source=str(path))
    except FileNotFoundError:
        pass
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        raise ConfigError(path, line, str(exc).splitlines()[0]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, None, f"cannot read: {exc}") from None
    conf.lines = _key_lines(path)  # configparser forgets where a value was: errors need it
    conf.path = str(path)
    return conf


def _key_lines(path: Path) -> dict:
    """{(section lower-case, key lower-case): line number} of the tool's config."""
    lines, section = {}, "defaults"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return lines
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*\[([^\]]*)\]", line)
        if m:
            section = m.group(1).strip().lower()
            lines.setdefault((section, ""), n)
            continue
        m = re.match(r"^\s*([^#;=:\s][^=:]*?)\s*[=:]", line)
        if m:
            lines[(section, m.group(1).strip().lower())] = n
    return lines


def section_for(conf, pool) -> str | None:
    """A pool's section: "[X.Y/name]" wins over "[name]" (names as php-fpm compares them)."""
    wanted = [f"{pool.version}/{pool.name}".lower(), pool.name.lower()]
    names = {s.lower(): s for s in conf.sections()}
    for w in wanted:
        if w in names:
            return names[w]
    return None


def _paths(value: str) -> list[str]:
    return [p.strip() for chunk in value.splitlines() for p in chunk.split(":") if p.strip()]


# Below these a site may live (/var/www/site, /home/u/public_html, /srv/app); the dirs
# themselves, and everything below the others, are never a site's code.


_SYSTEM_SET = frozenset(SYSTEM_DIRS)


def _is_system(path: str) -> bool:
    """"/", a parent of sites, or a SYSTEM_DIRS directory or below one (its ancestors looked
    up, not every system directory compared: this runs for each pool's roots)."""
    if path == "/" or path in _PARENTS:
        return True
    while path:
        if path in _SYSTEM_SET:
            return True
        path = path.rpartition("/")[0]
    return False


def infer_roots(pool) -> tuple[list[str], str]:
    """Roots from doc_root, then chdir, then open_basedir; ([], why-not) when none says."""
    doc_root = pool.ini("doc_root")
    if doc_root and doc_root.startswith("/") and not _is_system(doc_root.rstrip("/") or "/"):
        return [doc_root], "inferred from doc_root"
    if pool.chdir and pool.chdir.startswith("/") and not _is_system(pool.chdir.rstrip("/") or "/"):
        return [pool.chdir], "inferred from chdir"
    basedir = pool.ini("open_basedir")
    if basedir:
        # open_basedir also lists the pool's own temp and session dirs (HestiaCP, Froxlor,
        # ISPConfig): those are PHP's scratch space, not code.
        from .policy import runtime_dirs
        scratch = set(runtime_dirs(pool).values())
        roots = [p.rstrip("/") for p in basedir.split(":") if p.startswith("/")]
        roots = [p for p in roots if p and not _is_system(p)
                 and not any(p == d or p.startswith(d + "/") for d in scratch)]
        if roots:
            return roots, "inferred from open_basedir"
    return [], "no root: set root = in the pool's section of " + CONFIG


# Pool values that end up as paths in the policy.
PATH_KEYS = ("listen", "access.log", "slowlog", "chdir", "chroot")
PATH_INI = ("doc_root", "open_basedir", "upload_tmp_dir", "sys_temp_dir", "session.save_path",
            "error_log", "opcache.file_cache", "sendmail_path")


def _control(value: str) -> bool:
    from .policy import CONTROL
    return bool(CONTROL.search(value))


def check_paths(pool) -> None:
    """A control character (newline above all) in a path cannot be written as a rule:
    refuse it here, where the file and line that set it are known."""
    values = [(k, pool.directives.get(k)) for k in PATH_KEYS]
    for kind, table in (("php_admin_value", pool.php_admin_values), ("php_value", pool.php_values)):
        values += [(f"{kind}[{k}]", table.get(k)) for k in PATH_INI if k in table]
    values += [(f"env[{k}]", v) for k, v in pool.env.items() if k == "TMPDIR"]
    if not _control(" ".join(v for _, v in values if v)):  # the common case: one search
        return
    for key, value in values:
        if value and _control(value):
            origin = pool.origins.get(key)
            raise ConfigError(origin.file if origin else pool.config_file, origin.line if origin else None,
                              f"pool {pool.name}: {key} {value!r} contains a control character, "
                              "which no AppArmor rule can match safely")


FLAGS = ("code_writes", "config_writes")  # the first-party plugins' yes/no switches


def web_roots(pool, vhosts, sysroot: str) -> tuple[list[str], str, list[str]]:
    """(raw roots, origin, why-not lines) from the vhosts serving a pool.

    A root that is a system directory or a parent of sites (`root /var/www;`) is not a
    site: it is left out and said why."""
    roots, why = [], []
    chroot = (getattr(pool, "chroot", None) or "").rstrip("/")
    for v in vhosts:
        why += v.problems
        for path, where in v.roots:
            if chroot and not (path == chroot or path.startswith(chroot + "/")):
                path = chroot + path  # the web server names host paths; a literal SCRIPT_FILENAME jailed ones
            if _control(path):
                why.append(f"{where}: root {path!r} contains a control character")
            elif _is_system(path.rstrip("/") or "/"):
                why.append(f"{where}: {v.server} root {path} is a system directory or a parent of sites, "
                           f"not pool {pool.name}'s site")
            elif not _exists(sysroot, path):  # not deployed (yet), or a panel's optional dir
                why.append(f"{where}: {v.server} root {path} does not exist")
            else:
                roots.append((path, where, v.server))
    origin = ""
    if roots:
        origin = "from " + ", ".join(dict.fromkeys(f"{s} {w}" for _, w, s in roots))
    return list(dict.fromkeys(p for p, _, _ in roots)), origin, why


def _exists(sysroot: str, path: str) -> bool:
    try:
        return Path(sysroot, canonical(sysroot, path).lstrip("/")).exists()
    except ConfigError:
        return True  # a symlink loop: build() says so with the file and line


def build(pool, hat: str, conf, sysroot: str = "/", web=None, claimed: tuple | None = None) -> Site:
    """The Site for one pool: its canonical roots and settings. Raises ConfigError.

    web: the web servers' vhosts (webserver.read), or None.
    `claimed`: (roots, origin) an app plugin named for it, used unless the admin set root =."""
    check_paths(pool)
    name = section_for(conf, pool)
    settings = dict(conf.defaults())
    if name:
        settings.update(conf[name])
    cfile = getattr(conf, "path", None) or str(Path(sysroot, CONFIG.lstrip("/")))
    where = f"[{name}]" if name else "[defaults]"

    def conf_error(key: str, message: str) -> ConfigError:
        lines = getattr(conf, "lines", {})
        line = lines.get(((name or "defaults").lower(), key)) or lines.get(("defaults", key))
        return ConfigError(cfile, line, f"{where} {key}: {message}")

    def canon(path: str, key: str | None) -> str:
        try:
            return canonical(sysroot, path)
        except ConfigError as exc:
            if key:
                raise conf_error(key, f"{path}: {exc.message}") from None
            o = pool.origins.get("chdir") or pool.origins.get("php_admin_value[open_basedir]")
            raise ConfigError(o.file if o else pool.config_file, o.line if o else None,
                              f"pool {pool.name}: {path}: {exc.message}") from None

    values = {k: _paths(settings.get(k, "")) for k in ("root", "read", "write", "share")}
    for key, paths in values.items():
        for p in paths:
            if _control(p):
                raise conf_error(key, f"{p!r} contains a control character")
            if not p.startswith("/"):
                raise conf_error(key, f"path {p!r} is not absolute")
    mode = settings.get("mode", "enforce").strip().lower()
    if mode not in MODES:
        raise conf_error("mode", f"must be enforce or complain, not {mode!r}")
    for flag in FLAGS:
        if flag in settings and settings[flag].strip().lower() not in TRUE + FALSE:
            raise conf_error(flag, f"must be yes or no, not {settings[flag]!r}")
    from . import webserver
    served = webserver.serving(web, pool, sysroot)
    web_raw, web_origin, web_why = web_roots(pool, served, sysroot)
    if "root" in settings:
        raw, origin, key = values["root"], f"root = in {where}", "root"
    elif web_raw and not claimed:  # a plugin that recognised its app knows better
        raw, origin, key = web_raw, web_origin, None
    else:
        raw, origin = claimed if claimed else infer_roots(pool)
        key = None
        chroot = (getattr(pool, "chroot", None) or "").rstrip("/")
        if chroot:  # inferred roots are chroot-relative, like php-fpm's
            raw = [chroot + p for p in raw]
        if not raw and web_why:  # say what the web server had, not only "set root ="
            origin += " (" + "; ".join(web_why) + ")"
    if raw is web_raw:
        resolved = {p: _canon_web(sysroot, p, served) for p in raw}
    else:
        resolved = {p: canon(p, key) for p in raw}
    roots = sorted(set(resolved.values()))
    for r in roots:
        if r == "/" or r in SYSTEM_DIRS:
            raise ConfigError(pool.config_file, None,
                              f"pool {pool.name}: site root {r} is a system directory; set root = in {CONFIG}")
    users_links = set()  # canonical roots reached through a user's symlink
    for p, r in resolved.items():
        if p.rstrip("/") == r:
            continue
        from .whose import link_tellers  # only for a root reached through a symlink

        # Whoever chose where the root leads: each link's owner, and whoever may move or
        # replace one (root's link in bob's directory is bob's to rename onto his root).
        users = [(uid, role) for uid, role in link_tellers(Site(pool=pool, hat=hat, roots=[], sysroot=sysroot), p)
                 if uid != 0]
        if not users:
            continue
        try:
            owner = os.stat(_disk(sysroot, r, ())).st_uid
        except OSError:
            owner = None
        for uid, role in users:
            if uid is None or uid != owner:  # a site user's `ln -s` onto another site, /etc or a packaged app
                raise ConfigError(pool.config_file, None,
                                  f"pool {pool.name}: site root {p} leads to {r}, owned by "
                                  f"{'nobody' if owner is None else f'uid {owner}'}, on the word of "
                                  f"{role if uid is None else f'uid {uid}, {role}'}: a user's symlink may lead "
                                  f"only into what that user owns; set root = in {CONFIG}")
        users_links.add(r)
    writes = sorted({canon(p, "write") for p in values["write"]})
    for w in writes:
        if w == "/" or w in SYSTEM_DIRS or w in _PARENTS or any(w == d or w.startswith(d + "/") for d in NO_WRITE):
            raise conf_error("write", f"{w} is a system directory: a pool must never write there")
    return Site(
        pool=pool, hat=hat, roots=roots, sysroot=sysroot, settings=settings, mode=mode,
        read_paths=sorted({canon(p, "read") for p in values["read"]}),
        write_paths=writes, origin=origin,
        share_paths=sorted({canon(p, "share") for p in values["share"]}),
        symlinked={r: p for p, r in resolved.items() if p.rstrip("/") != r},
        users_links=users_links,
        vhosts=webserver.names(served),
        web_roots=list(dict.fromkeys(p for v in served for p, _ in v.roots)),
    )


def _canon_web(sysroot: str, path: str, vhosts) -> str:
    try:
        return canonical(sysroot, path)
    except ConfigError as exc:
        where = next((w for v in vhosts for p, w in v.roots if p == path or p.endswith(path)), None)
        raise ConfigError(where, None, f"root {path}: {exc.message}") from None


def symlink_notes(entries) -> list[str]:
    """`check` notes: a root reached through a symlink is confined at its target. Deploy tools
    (Deployer, Capistrano: root .../current/public -> releases/N/public) switch the link on
    each release, and the hat would still name the old one until the next generate."""
    out = []
    for e in entries:
        site = getattr(e, "site", None)
        for real, configured in sorted((site.symlinked if site else {}).items()):
            common = posixpath.commonpath([configured.rstrip("/"), real])
            hint = "run php-fpm-apparmor generate after each switch"
            if common.count("/") >= 3 and not _is_system(common):
                hint += f", or set root = {common} in the pool's section of {CONFIG}"
            out.append(f"note: pool {e.pool.name}: root {configured} is a symlink to {real}, and the "
                       f"hat allows {real} only: when the link moves (a deploy), {hint}")
    return out
