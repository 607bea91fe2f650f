"""Apache: which VirtualHost passes PHP to which FastCGI address, with its DocumentRoot.

Handlers are `SetHandler "proxy:unix:/run/php/X.sock|fcgi://..."` (Debian's
conf-available/phpX.Y-fpm.conf, HestiaCP, ISPConfig, Virtualmin) and `ProxyPassMatch ...
unix:...|fcgi://host/path/$1` or `fcgi://127.0.0.1:9000/path/$1`. The files are read in
Apache's order (Include/IncludeOptional spliced in place, relative to ServerRoot), with
Define, Debian's envvars, IfModule and IfDefine evaluated as Apache does while reading.
On the live system `apache2ctl -t -D DUMP_INCLUDES` cross-checks the files read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .webserver import Directive, Files, Vhost, has_glob, read_envvars, run

SERVER_ROOT = "/etc/apache2"  # Debian's compiled-in ServerRoot
MAIN = "apache2.conf"
DEBIAN_MAIN = ("IncludeOptional mods-enabled/*.load\nIncludeOptional conf-enabled/*.conf\n"
               "IncludeOptional sites-enabled/*.conf\n")
MAX_DEPTH = 100
# Compiled into Debian's apache2 (`apache2 -l`): always "loaded".
STATIC = {"core.c", "mod_so.c", "mod_watchdog.c", "http_core.c", "mod_log_config.c", "mod_logio.c",
          "mod_version.c", "mod_unixd.c", "core_module", "so_module", "watchdog_module", "http_module",
          "log_config_module", "logio_module", "version_module", "unixd_module"}


_WORD = re.compile(r'"((?:\\.|[^"\\])*)"|\'((?:\\.|[^\'\\])*)\'|(\S+)')
_DQ_ESCAPE = re.compile(r'\\(["\\])')
_SQ_ESCAPE = re.compile(r"\\(['\\])")


def words(text: str) -> list[str]:
    """ap_getword_conf: whitespace-separated, "..." or '...' quoted, \\ escapes the quote."""
    if '"' not in text and "'" not in text:  # most lines: \S+ runs are str.split()'s words
        return text.split()
    out = []
    for m in _WORD.finditer(text):
        if m.group(1) is not None:
            out.append(_DQ_ESCAPE.sub(r"\1", m.group(1)))
        elif m.group(2) is not None:
            out.append(_SQ_ESCAPE.sub(r"\1", m.group(2)))
        else:
            out.append(m.group(3))
    return out


def parse(text: str, file: str, problems: list[str]) -> list[Directive]:
    root: list[Directive] = []
    stack: list[tuple[str, list]] = [("", root)]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):  # continuation line
            i += 1
            line = line[:-1] + lines[i]
        i += 1
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("</"):
            name = s[2:].rstrip(">").strip().lower()
            if len(stack) == 1 or stack[-1][0] != name:
                expected = f"</{stack[-1][0]}>" if len(stack) > 1 else "no closing section"
                problems.append(f"{file}:{start}: {s} where {expected} was expected")
                if any(n == name for n, _ in stack[1:]):
                    while stack[-1][0] != name:
                        stack.pop()
                    stack.pop()
                continue
            stack.pop()
            continue
        if s.startswith("<"):
            body = s[1:]
            if not body.endswith(">"):
                problems.append(f"{file}:{start}: section {s[:60]} lacks its closing \">\"")
                continue
            parts = body[:-1].split(None, 1)
            name = parts[0].lower() if parts else ""
            d = Directive(name, words(parts[1]) if len(parts) > 1 else [], file, start, [])
            stack[-1][1].append(d)
            if len(stack) > MAX_DEPTH:
                problems.append(f"{d.where}: sections nested more than {MAX_DEPTH} deep; not read")
                return root
            stack.append((name, d.block))
            continue
        parts = s.split(None, 1)
        stack[-1][1].append(Directive(parts[0].lower(), words(parts[1]) if len(parts) > 1 else [],
                                      file, start))
    if len(stack) > 1:
        problems.append(f"{file}: <{stack[-1][0]}> is never closed")
    return root


@dataclass
class _Host:
    names: list[str] = field(default_factory=list)
    docroot: tuple | None = None  # (path, where)
    aliases: list = field(default_factory=list)  # [(path, where)]
    handlers: list = field(default_factory=list)  # [(address, where, dir or None, fcgi path or None, php)]


class Reader:
    """Walks the config in Apache's reading order and collects vhosts and handlers."""

    def __init__(self, files: Files, problems: list[str], server_root: str = SERVER_ROOT):
        self.files = files
        self.problems = problems
        self.server_root = server_root
        self.env = read_envvars(files, f"{server_root}/envvars")
        self.loaded: set[str] = set()
        self.read_order: list[str] = []  # every file read, in order, as DUMP_INCLUDES lists them
        self.parsed: dict[str, list[Directive]] = {}
        self.main = _Host()
        self.hosts: list[_Host] = []
        self.workers: dict[str, list[str]] = {}  # fcgi://name or balancer://name -> addresses
        self.php_blocks = 0  # inside <FilesMatch \.php$> and the like

    # -- files and includes
    def load(self, main: str) -> None:
        self._file(main, main, [], self.main, None)

    def _file(self, path, where, stack, host, directory) -> None:
        if path in stack:
            chain = " -> ".join(stack[stack.index(path):] + [path])
            self.problems.append(f"{where}: Include loop ({chain}); not followed")
            return
        if len(stack) >= MAX_DEPTH:
            self.problems.append(f"{where}: Includes nested more than {MAX_DEPTH} deep; not followed")
            return
        if path not in self.parsed:  # the walk never changes a parsed file: parse each once
            text = self.files.read(path, where)
            if text is None:
                return
            self.parsed[path] = parse(text, path, self.problems)
        self.read_order.append(path)
        self._walk(self.parsed[path], stack + [path], host, directory)

    def _include(self, d: Directive, stack, host, directory) -> None:
        if not d.args:
            return
        name = self._subst(d.args[0], d)
        if not name.startswith("/"):
            name = os.path.join(self.server_root, name)
        optional = d.name == "includeoptional"
        if has_glob(name):
            paths = self.files.glob(name)
            if not paths and not optional:
                self.problems.append(f"{d.where}: Include {d.args[0]}: no file matches")
        elif self.files.isdir(name):
            paths = self.files.listdir(name)  # a directory: every file in it, sorted
        elif not self.files.exists(name):
            if not optional:
                self.problems.append(f"{d.where}: Include {d.args[0]}: no such file")
            return
        else:
            paths = [name]
        for p in paths:
            if self.files.isdir(p):
                if not has_glob(name) and len(stack) < MAX_DEPTH:  # Include DIR reads its subdirectories too
                    self._include(Directive(d.name, [p], d.file, d.line), stack + [p], host, directory)
                continue
            self._file(p, d.where, stack, host, directory)

    def _subst(self, value: str, d: Directive) -> str:
        def one(m):
            return self.env.get(m.group(1), m.group())
        return re.sub(r"\$\{([A-Za-z0-9_.:-]+)\}", one, value)

    def _if_module(self, arg: str) -> bool:
        negate = arg.startswith("!")
        name = arg.lstrip("!")
        if not self.loaded:  # no LoadModule read yet (a fragment, not a whole config): both ways
            return True
        return (name in self.loaded or name in STATIC) != negate

    # -- the walk
    def _walk(self, block, stack, host: _Host, directory) -> None:
        for d in block:
            n = d.name
            if d.block is not None:
                arg = self._subst(d.args[0], d) if d.args else ""
                if n == "ifmodule":
                    if self._if_module(arg):
                        self._walk(d.block, stack, host, directory)
                elif n == "ifdefine":
                    if (arg.lstrip("!") in self.env) != arg.startswith("!"):
                        self._walk(d.block, stack, host, directory)
                elif n == "virtualhost":
                    if host is not self.main:
                        self.problems.append(f"{d.where}: <VirtualHost> inside another one")
                        continue
                    vh = _Host()
                    self.hosts.append(vh)
                    self._walk(d.block, stack, vh, None)
                elif n in ("directory",):
                    path = self._subst(arg, d)
                    literal = path.startswith("/") and not has_glob(path)
                    self._walk(d.block, stack, host, path.rstrip("/") or "/" if literal else directory)
                elif n == "macro":  # mod_macro: the body is a template, expanded only by Use
                    self.problems.append(f"{d.where}: <Macro {arg}> is not expanded here; set root = "
                                         f"for the pools its vhosts serve")
                elif n == "proxy":
                    self._proxy(d, arg)
                    self._walk(d.block, stack, host, directory)
                else:  # Files(Match), Location(Match), DirectoryMatch, If/Else, IfVersion...
                    php = n in ("files", "filesmatch", "location", "locationmatch") and _phpish(arg)
                    self.php_blocks += php
                    self._walk(d.block, stack, host, directory)
                    self.php_blocks -= php
                continue
            args = [self._subst(a, d) for a in d.args]
            if n in ("include", "includeoptional"):
                self._include(d, stack, host, directory)
            elif n == "define" and args:
                self.env[args[0]] = args[1] if len(args) > 1 else ""
            elif n == "undefine" and args:
                self.env.pop(args[0], None)
            elif n == "loadmodule" and args:
                self._load_module(args)
            elif n == "serverroot" and args and host is self.main:
                self.server_root = args[0].rstrip("/") or "/"
            elif n == "servername" and args:
                host.names.insert(0, args[0])
            elif n == "serveralias":
                host.names.extend(args)
            elif n == "documentroot" and args:
                host.docroot = (args[0], d.where)
            elif n == "alias" and len(args) >= 2:
                host.aliases.append((args[1], d.where))
            elif n in ("sethandler", "addhandler") and args and args[0].lower().startswith("proxy:"):
                self._handler(args[0][6:], d, host, directory, _phpish(" ".join(args[1:])))
            elif n in ("proxypassmatch", "proxypass") and len(args) >= 2:
                self._handler(args[1], d, host, directory, _phpish(args[0]))

    def _load_module(self, args: list[str]) -> None:
        ident = args[0]
        self.loaded.add(ident)
        if ident.endswith("_module"):
            self.loaded.add(f"mod_{ident[:-7]}.c")
        # No aliases beyond that: PHP 8's php_module is mod_php.c, so Debian's <IfModule
        # !mod_php8.c> in phpX.Y-fpm.conf stays true with mod_php loaded (apache2 -D DUMP_CONFIG).

    def _proxy(self, d: Directive, arg: str) -> None:
        # <Proxy "unix:/run/php/x.sock|fcgi://php-x"> names a worker that
        # SetHandler "proxy:fcgi://php-x" then uses; <Proxy balancer://x> has members.
        if "|" in arg:
            sock, url = arg.split("|", 1)
            self.workers.setdefault(url.rstrip("/").lower(), []).append(sock)
        elif arg.lower().startswith("balancer://"):
            members = [self._subst(m.args[0], m) for m in d.block if m.name == "balancermember" and m.args]
            self.workers[arg.rstrip("/").lower()] = [m.split("|", 1)[0] if "|" in m else m for m in members]

    def _handler(self, target: str, d: Directive, host: _Host, directory, php: bool) -> None:
        """Record where this handler passes PHP to (address) and the script path it sends.

        php: it serves .php files (a FilesMatch for .php, a ProxyPassMatch for \\.php, a php
        socket); a FastCGI handler for anything else is some other application server."""
        php = php or bool(self.php_blocks) or "php" in target.lower()
        sock, url = (target.split("|", 1) + [""])[:2] if "|" in target else ("", target)
        m = re.match(r"^(fcgi|balancer)://([^/]*)(/.*)?$", url, re.I)
        if not sock and not m:
            return  # proxy to http:// and the like: not PHP-FPM
        path = m.group(3) if m else None
        if sock:
            address = sock
        elif m.group(1).lower() == "balancer" or f"fcgi://{m.group(2).lower()}" in self.workers:
            key = f"{m.group(1).lower()}://{m.group(2).lower()}"
            for a in self.workers.get(key, []):
                host.handlers.append((a, d.where, directory, path, php or "php" in a.lower()))
            if key in self.workers:
                return
            address = key
        else:
            hostport = m.group(2)
            address = hostport if re.search(r":\d+$", hostport) else f"{hostport}:8000"  # mod_proxy_fcgi's default
        host.handlers.append((address, d.where, directory, path, php))


def _phpish(pattern: str) -> bool:
    """A pattern for PHP files: php, or Debian's ".+\\.ph(?:ar|p|tml)$"."""
    low = pattern.lower()
    return "php" in low or ".ph" in low


def _holds_php(files: Files, path: str) -> bool:
    return path.startswith("/") and "$" not in path and bool(files.glob(path.rstrip("/") + "/*.php"))


def _script_root(path: str) -> str | None:
    """The directory of fcgi://host/var/www/site/$1: what php-fpm gets as SCRIPT_FILENAME."""
    cut = path.find("$")
    prefix = path if cut < 0 else path[:cut]
    if not prefix.startswith("/") or prefix == "/":
        return None
    # with a $1 after it the prefix is the directory (the match starts with "/" or follows one)
    return (prefix.rstrip("/") or None) if cut >= 0 else os.path.dirname(prefix)


def _vhosts(r: Reader, problems: list[str]) -> list[Vhost]:
    out = []
    hosts = r.hosts or [r.main]
    for h in hosts:
        handlers = h.handlers if h.handlers or h is r.main else r.main.handlers
        docroot = h.docroot or r.main.docroot
        # Server-config Aliases (Debian's phpmyadmin package: `Alias /phpmyadmin
        # /usr/share/phpmyadmin` in conf-enabled) reach PHP through the server-config
        # handler (`a2enconf php8.2-fpm`); only those holding PHP files, not /icons/.
        aliases = h.aliases if h is not r.main else []
        if handlers is r.main.handlers:
            aliases = aliases + [(p, at) for p, at in r.main.aliases if _holds_php(r.files, p)]
        for address, where, directory, path, php in handlers:
            roots, why = [], []
            if path and _script_root(path):
                roots = [(_script_root(path), where)]
            elif directory:
                roots = [(directory, where)]
            else:
                for value, at in ([docroot] if docroot else []) + aliases:
                    if "${" in value or "$" in value:
                        why.append(f"{at}: {value} is set by a variable Apache does not define here; "
                                   f"not guessed (set root = in the pool's section)")
                    elif value.startswith("/"):
                        roots.append((value.rstrip("/") or "/", at))
            problems.extend(why)
            out.append(Vhost("apache", list(dict.fromkeys(h.names)), where, _address(address), roots, why,
                             php=php))
    return out


def _address(text: str) -> str:
    text = text.strip()
    if text.lower().startswith("unix:"):
        return "unix:" + text[5:]
    return text


def load(sysroot: str, problems: list[str], seen: dict | None = None) -> Reader | None:
    files = Files(sysroot, problems, seen=seen)
    main = f"{SERVER_ROOT}/{MAIN}"
    if not files.exists(main):
        # Sites but no apache2.conf (a copied /etc/apache2/sites-*): read them as Debian's does.
        if not any(files.exists(f"{SERVER_ROOT}/{d}") for d in ("sites-enabled", "conf-enabled")):
            return None
        files.dump = {main: DEBIAN_MAIN}
    r = Reader(files, problems)
    r.load(main)
    if sysroot in ("/", ""):
        _cross_check(r, problems)
    return r


def dump_includes(text: str) -> list[str]:
    """The files `apache2ctl -t -D DUMP_INCLUDES` lists, in its order."""
    return [m.group(1) for m in re.finditer(r"^\s*\((?:\*|\d+)\)\s+(/\S.*?)\s*$", text, re.M)]


def _cross_check(r: Reader, problems: list[str]) -> None:
    got = run(["apache2ctl", "-t", "-D", "DUMP_INCLUDES"])
    if got is None or got[0] != 0:
        return
    theirs = dump_includes(got[1])
    missed = [p for p in theirs if p not in r.read_order]
    if missed:
        problems.append(f"apache2ctl -D DUMP_INCLUDES: Apache also reads {', '.join(missed[:5])}"
                        f"{' ...' if len(missed) > 5 else ''}, which php-fpm-apparmor did not follow")


def read(sysroot: str, problems: list[str], seen: dict | None = None) -> list[Vhost] | None:
    r = load(sysroot, problems, seen)
    if r is None:
        return None
    return _vhosts(r, problems)

