"""Which web server vhosts pass PHP to which pool, and where their PHP files live.

Most admins never write chdir or doc_root into a pool: the web server knows the site.
nginx.py and apache.py read the web servers' own configs into Vhost records (one per
place that hands PHP to a FastCGI address); this module matches them with the pools'
listen addresses and turns them into findings for `check`.

Everything here is read-only and never raises on bad input: a problem is one line naming
file:line, and what cannot be known for sure (a root set by a variable) is reported, not
guessed.
"""

from __future__ import annotations

import glob as glob_mod
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from .errors import ConfigError
from .pools import NotRegular, read_regular

MAX_FILE = 8 << 20  # bytes read of one config file: a web server config is never that big
MAX_FILES = 5000  # files one server's config may pull in
TIMEOUT = 10  # seconds for `nginx -T` / `apache2ctl -D DUMP_INCLUDES`


@dataclass(slots=True)  # a panel's thousand vhosts make a hundred thousand of them
class Directive:
    """One directive of nginx or Apache, with where it was written (Apache's names lower-cased)."""

    name: str
    args: list[str]
    file: str
    line: int
    block: list | None = None  # the directives of its block, if it opens one

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Vhost:
    """One place in a web server config that passes PHP to a FastCGI address."""

    server: str  # "nginx" or "apache"
    names: list[str]  # server_name / ServerName + ServerAlias
    where: str  # file:line of fastcgi_pass / SetHandler / ProxyPassMatch
    address: str  # as written (after variables and upstreams): unix:/run/php/x.sock, 127.0.0.1:9000
    roots: list[tuple[str, str]] = field(default_factory=list)  # (system path, file:line that set it)
    problems: list[str] = field(default_factory=list)  # why a root could not be known
    php: bool = True  # looks like PHP (a .php location, a php socket): else fcgiwrap, a Python app...

    @property
    def label(self) -> str:
        return self.names[0] if self.names else f"{self.server} {self.where}"


@dataclass
class WebConfig:
    vhosts: list[Vhost] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, file:line first
    servers: list[str] = field(default_factory=list)  # servers whose config exists ("nginx", ...)
    # What the reading looked at: system path -> signature() as it was (webcache.py keeps the
    # result while these stay the same).
    seen: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def found(self) -> bool:
        return bool(self.servers)


# --- reading files the way a web server does, below --root ------------------------------

UNKNOWN = ""  # a key of Files.seen: the reading depended on something it cannot name
RACY_NS = 1_000_000_000


def signature(disk: str) -> list | None:
    """A file or directory's identity and state (None: absent): what changes when it is
    written, replaced, renamed or (a directory) gains or loses an entry."""
    try:
        st = os.stat(disk)
    except (OSError, ValueError):
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]


def digest(content: bytes | str) -> str:
    import hashlib

    return hashlib.sha256(content.encode("utf-8", "surrogateescape") if isinstance(content, str)
                          else content).hexdigest()


def listing(names) -> str:
    return digest("\0".join(sorted(names)))


class Files:
    """Config files by system path: from a dump (`nginx -T`) or from the disk below sysroot.

    Symlinks are resolved inside sysroot (Debian's sites-enabled links are absolute).
    Every file read and every directory listed or path tested is noted in `seen` with its
    signature, taken before it is looked at: what the result depends on (webcache.py). One
    changed less than a second ago may change again within the same timestamp tick, its
    signature the same: the hash of what was read (a file's bytes, a directory's names) is
    noted with it."""

    def __init__(self, sysroot: str, problems: list[str], dump: dict | None = None, seen: dict | None = None):
        self.sysroot = sysroot
        self.problems = problems
        self.dump = dump
        self.count = 0
        self.seen = {} if seen is None else seen

    def _saw(self, path: str) -> None:
        if path not in self.seen:
            self.seen[path] = signature(self.disk(path))

    def _racy(self, path: str) -> bool:
        sig = self.seen.get(path)
        return bool(sig) and len(sig) == 6 and max(sig[3], sig[4]) > time.time_ns() - RACY_NS

    def _vouch(self, path: str, made) -> None:
        """made(): the hash of what was read at `path`, noted if it changed just now."""
        if self._racy(path):
            self.seen[path] = self.seen[path] + [made()]

    def disk(self, path: str) -> str:
        from .sites import canonical
        try:
            real = canonical(self.sysroot, path)
        except (ConfigError, ValueError):
            real = path
        return os.path.join(self.sysroot, real.lstrip("/")) if self.sysroot not in ("/", "") else real

    def read(self, path: str, where: str) -> str | None:
        self._saw(path)
        self.count += 1
        if self.count > MAX_FILES:
            if self.count == MAX_FILES + 1:
                self.problems.append(f"{where}: more than {MAX_FILES} included files; the rest is not read")
            return None
        if self.dump is not None and path in self.dump:
            self._vouch(path, lambda: digest(self.dump[path]))
            return self.dump[path]
        disk = self.disk(path)
        try:  # non-blocking and regular files only: a panel may include a file a site's owner controls
            data, _ = read_regular(disk, MAX_FILE + 1)
        except NotRegular:
            kind = "a directory" if os.path.isdir(disk) else "not a regular file"
            self.problems.append(f"{where}: {path} is {kind}")
            return None
        except ValueError:  # a NUL byte: no file has that name
            self.problems.append(f"{where}: cannot read {path!r}: not a file name")
            return None
        except OSError as exc:
            self.problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
            return None
        if len(data) > MAX_FILE:
            self.problems.append(f"{where}: {path} is larger than {MAX_FILE >> 20} MiB; not read")
            return None
        self._vouch(path, lambda: digest(data))
        return data.decode("utf-8", errors="replace")

    def exists(self, path: str) -> bool:
        self._saw(path)
        if self.dump is not None and path in self.dump:
            return True
        return "\0" not in path and os.path.exists(self.disk(path))

    def isdir(self, path: str) -> bool:
        self._saw(path)
        return "\0" not in path and os.path.isdir(self.disk(path))

    def glob(self, pattern: str) -> list[str]:
        """System paths matching a glob(3) pattern, sorted; wildcards skip dot files."""
        if "\0" in pattern:
            return []
        head, tail = os.path.split(pattern)
        wild_dirs = has_glob(head)
        if wild_dirs:
            self.seen[UNKNOWN] = None  # which directories were listed is glob's business
        else:
            self._saw(head or "/")  # the listing: a file added or removed changes the directory
        if self.dump is not None:
            rx = _glob_regex(pattern)
            hits = sorted(p for p in self.dump if rx.match(p))
            if hits:
                if self._racy(head or "/"):  # nginx listed it: vouched for by ours if they agree
                    names = self._names(head or "/")
                    rx = _glob_regex(tail)
                    if names is not None and sorted(os.path.join(head, n) for n in names if rx.match(n)) == hits:
                        self._vouch(head or "/", lambda: listing(names))
                    else:
                        self.seen[UNKNOWN] = None
                return hits
        if not wild_dirs:
            names = self._names(head or "/")
            if names is None:
                return []
            self._vouch(head or "/", lambda: listing(names))
            rx = _glob_regex(tail)
            return sorted(os.path.join(head, n) for n in names if rx.match(n))
        # Wildcards in directories too (rare): the OS glob below sysroot.
        prefix = self.sysroot.rstrip("/") if self.sysroot not in ("/", "") else ""
        return sorted(p[len(prefix):] for p in glob_mod.glob(prefix + pattern))

    def _names(self, path: str) -> list[str] | None:
        try:
            return os.listdir(self.disk(path))
        except (OSError, ValueError):
            return None

    def listdir(self, path: str) -> list[str]:
        self._saw(path)
        names = self._names(path)
        if names is None:
            return []
        self._vouch(path, lambda: listing(names))
        return sorted(os.path.join(path, n) for n in names if not n.startswith("."))


def _glob_regex(pattern: str) -> re.Pattern:
    """glob(3) as a regex: * and ? never cross "/" nor match a leading dot."""
    out, i = [], 0
    start = True  # at the start of a path component
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("(?!\\.)[^/]*" if start else "[^/]*")
        elif c == "?":
            out.append("(?!\\.)[^/]" if start else "[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        start = c == "/"
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def has_glob(path: str) -> bool:
    return bool(re.search(r"[*?\[]", path))


def run(argv: list[str]) -> tuple[int, str, str] | None:
    """Run a web server's own config dump; None if it is not installed or hangs."""
    if not shutil.which(argv[0]):
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=TIMEOUT,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.returncode, proc.stdout, proc.stderr


# --- addresses ---------------------------------------------------------------------------

LOCAL = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
ANY = {"", "*", "0.0.0.0", "::", "[::]"}


def parse_address(text: str) -> tuple | None:
    """("unix", path) or ("tcp", host, port) from php-fpm's listen or a server's address."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[5:].split("|", 1)[0]
        return ("unix", path) if path.startswith("/") else None
    if text.startswith("/"):
        return ("unix", text)
    if text.isdigit():
        return ("tcp", "*", int(text))
    m = re.match(r"^\[([0-9A-Fa-f:.]*)\]:(\d+)$", text) or re.match(r"^([^\s:/]*):(\d+)$", text)
    if m:
        return ("tcp", m.group(1).lower(), int(m.group(2)))
    return None


def socket_path(path: str, canon) -> str:
    """A unix socket's canonical path; /var/run is /run on every Debian (a tree may lack the link)."""
    path = canon(path)
    return "/run" + path[8:] if path == "/var/run" or path.startswith("/var/run/") else path


def same_address(pool_addr: tuple, web_addr: tuple, canon) -> bool:
    if pool_addr[0] != web_addr[0]:
        return False
    if pool_addr[0] == "unix":
        return socket_path(pool_addr[1], canon) == socket_path(web_addr[1], canon)
    _, ph, pp = pool_addr
    _, wh, wp = web_addr
    if pp != wp:
        return False
    return ph in ANY or ph == wh or (ph in LOCAL and wh in LOCAL)


def is_local(addr: tuple) -> bool:
    return addr[0] == "unix" or addr[1] in LOCAL or addr[1] in ANY


# --- the whole picture -------------------------------------------------------------------

def read(sysroot: str = "/") -> WebConfig:
    """Every vhost of nginx and Apache found below sysroot (live: their own dumps), or
    what the last `generate` read when none of the files it looked at changed since."""
    from . import webcache

    kept = webcache.kept(sysroot)
    if kept is not None and not os.environ.get(webcache.CHECK):
        return kept
    web = fresh(sysroot)
    if kept is not None and webcache.as_data(kept) != webcache.as_data(web):
        raise AssertionError(f"{webcache.CHECK}: the kept reading of {sysroot} differs from a fresh one")
    return web


def fresh(sysroot: str = "/") -> WebConfig:
    """read(), from the files themselves."""
    from . import apache, nginx

    web = WebConfig()
    for name, module in (("nginx", nginx), ("apache", apache)):
        try:
            found = module.read(sysroot, web.problems, web.seen)
        except RecursionError:
            web.problems.append(f"{name}: configuration nested too deeply; not read")
            continue
        if found is None:
            continue
        web.servers.append(name)
        web.vhosts.extend(found)
    # One line each, whatever a hostile file or path name holds.
    web.problems = [one_line(p) for p in dict.fromkeys(web.problems)]
    for v in web.vhosts:
        v.problems = [one_line(p) for p in v.problems]
    return web


def one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _canon(sysroot: str):
    from .sites import canonical

    def canon(path: str) -> str:
        try:
            return canonical(sysroot, path)
        except (ConfigError, ValueError):  # a loop, a NUL byte: compare as written
            return path
    return canon


def serving(web: WebConfig | None, pool, sysroot: str = "/") -> list[Vhost]:
    """The vhosts that pass PHP to this pool's listen address."""
    if not web or not web.vhosts or not pool.listen:  # no vhost: no socket path to resolve
        return []
    mine = parse_address(pool.listen)
    if mine is None:
        return []
    canon = _canon(sysroot)
    if mine[0] == "unix":  # one dict lookup per pool: 1,000 pools x 1,000 vhosts stay cheap
        return list(_unix_index(web, sysroot).get(socket_path(mine[1], canon), []))
    return [v for v in _tcp(web) if same_address(mine, parse_address(v.address), canon)]


def _unix_index(web: WebConfig, sysroot: str) -> dict:
    cached = getattr(web, "_unix", None)
    if cached is None or cached[0] != sysroot:
        canon = _canon(sysroot)
        index: dict[str, list[Vhost]] = {}
        for v in web.vhosts:
            a = parse_address(v.address)
            if a and a[0] == "unix":
                index.setdefault(socket_path(a[1], canon), []).append(v)
        cached = web._unix = (sysroot, index)
    return cached[1]


def _tcp(web: WebConfig) -> list[Vhost]:
    return [v for v in web.vhosts if (a := parse_address(v.address)) and a[0] == "tcp"]


def names(vhosts: list[Vhost]) -> list[str]:
    return list(dict.fromkeys(v.label for v in vhosts))


def findings(result, sysroot: str = "/") -> list[str]:
    """`check` lines: dead FastCGI targets, pools no vhost reaches, roots in another pool's site."""
    web = getattr(result, "web", None)
    if not web or not web.found:
        return []
    from .sites import inside

    out = []
    canon = _canon(sysroot)
    entries = result.entries
    reached: dict[int, list[Vhost]] = {id(e): serving(web, e.pool, sysroot) for e in entries}
    hit = {id(v) for vs in reached.values() for v in vs}
    listens = ", ".join(sorted({e.pool.listen for e in entries if e.pool.listen})) or "none"
    for v in web.vhosts:
        if id(v) in hit:
            continue
        addr = parse_address(v.address)
        if not v.php:
            out.append(f"note: {v.where}: {v.server} {v.label} passes FastCGI to {v.address}, where no "
                       f"pool listens: not PHP, it seems (fcgiwrap, another application server)")
        elif addr and not is_local(addr):
            out.append(f"note: {v.where}: {v.server} {v.label} passes PHP to {v.address}, not a local "
                       f"address: another machine's php-fpm is not confined here")
        else:
            out.append(f"{v.where}: {v.server} {v.label} passes PHP to {v.address}, where no pool "
                       f"listens (pools listen on: {listens}); fix the address or the pool's listen")
    for e in entries:
        if not reached[id(e)] and e.pool.listen:
            out.append(f"note: {e.pool.config_file}: pool {e.pool.name} ({e.pool.listen}): no "
                       f"{' or '.join(web.servers)} vhost passes PHP to it")
    # A vhost whose files lie in another pool's site runs that site's PHP in the wrong hat.
    sites = [(r, e) for e in entries if e.site for r in e.site.roots]
    for e in entries:
        for v in reached[id(e)]:
            for raw, where in v.roots:
                root = canon(raw)
                own = (e.site.roots + e.site.read_paths) if e.site and e.site.roots else []
                if own and not any(inside(root, r) for r in own):
                    out.append(f"{where}: {v.server} {v.label} passes PHP below {root} to pool "
                               f"{e.pool.name}, outside its site {', '.join(e.site.roots)} "
                               f"({e.site.origin}): its hat would deny those files")
                for r, other in sites:
                    if other is e or (e.site and r in e.site.roots):
                        continue
                    if inside(root, r):
                        out.append(f"{where}: {v.server} {v.label} passes PHP below {root} to pool "
                                   f"{e.pool.name}, but that is inside pool {other.pool.name}'s site "
                                   f"{r}: its code would run in {e.pool.name}'s hat")
                    elif inside(r, root):
                        out.append(f"{where}: {v.server} {v.label} passes PHP below {root} to pool "
                                   f"{e.pool.name}, and pool {other.pool.name}'s site {r} is inside it: "
                                   f"that code is reachable there and would run in {e.pool.name}'s hat")
    return out


def read_envvars(files: Files, path: str) -> dict:
    """`export NAME=value` lines of Debian's /etc/apache2/envvars (literal values only)."""
    out = {}
    text = files.read(path, path) if files.exists(path) else None
    for line in (text or "").splitlines():
        line = line.replace("$SUFFIX", "")  # Debian's: empty for the default instance
        m = re.match(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(['\"]?)([^'\"$`]*)\2\s*$", line)
        if m:
            out[m.group(1)] = m.group(3)
    return out
