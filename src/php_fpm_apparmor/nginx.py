"""nginx: which server/location passes PHP to which FastCGI address, with its root.

The configuration is read the way nginx reads it: on the live system from `nginx -T`
(nginx itself expands every include and prints each file after a
`# configuration file PATH:` marker, so file:line stay exact); below --root by expanding
the includes here, relative to that root. The tokenizer follows ngx_conf_read_token.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .webserver import Directive, Files, Vhost, has_glob, parse_address, run

MAIN = "/etc/nginx/nginx.conf"
DEBIAN_MAIN = "http {\n\tinclude /etc/nginx/conf.d/*.conf;\n\tinclude /etc/nginx/sites-enabled/*;\n}\n"
PREFIX = "/usr/share/nginx"  # Debian's compiled-in prefix: a relative root is below it
MAX_DEPTH = 100  # nested blocks and includes
MAX_DIRECTIVES = 1_000_000  # after include expansion: a file included 100 x 100 x 100 times stops here


# One match per token, the space and comments before it skipped in the same match (a match
# per blank and a generator per token were two thirds of reading a panel's vhosts). Atomic
# groups, not possessive quantifiers: Debian 12's Python 3.11.2 mismatches those on groups
# (CPython gh-100061, gh-106052).
_TOKEN = re.compile(r"""
    (?>(?:[ \t\r\n]+|\#[^\n]*)*)  # skipped
    (?: (?P<special>[;{}])
      | "(?P<dq>(?>(?:[^"\\]+|\\[\s\S])*))"
      | '(?P<sq>(?>(?:[^'\\]+|\\[\s\S])*))'
      | (?P<bad>["'][\s\S]*)
      | (?P<word>(?>(?:[^ \t\r\n;{\\$]+|\\[\s\S]|\$\{?)+))
      | (?P<stray>\\)  # a backslash that ends the file: what nginx cannot read either
      | \Z)
""", re.X)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
# A whole directive of plain words (no quote, backslash, comment sign, ${, brace or Unicode
# space in them), as most of a panel's vhost is: one match and a str.split() instead of a
# match per word. Any other directive is read token by token (_TOKEN).
_PLAIN_WORD = r"(?>(?:[^\s;{}\"'\\\#$]+|\$(?!\{))+)"
_PLAIN = re.compile(r"""
    (?>(?:[ \t\r\n]+|\#[^\n]*)*)  # skipped
    (?P<words>""" + _PLAIN_WORD + r"(?:[ \t\r\n]+" + _PLAIN_WORD + r""")*)
    [ \t\r\n]*(?P<end>[;{])
""", re.X)


def _unescape(text: str) -> str:
    # nginx turns \" \' \\ \t \r \n into the character and keeps any other backslash.
    if "\\" not in text:
        return text
    return re.sub(r"\\([\"'\\trn])", lambda m: _ESCAPES[m.group(1)], text)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse(text: str, file: str, problems: list[str]) -> list[Directive]:
    """The directive tree of one file (includes not expanded). The tokens follow
    ngx_conf_read_token; a directive's line is counted only once it starts one."""
    root: list[Directive] = []
    stack = [root]
    block = root  # stack[-1]
    words: list[str] = []
    first = 0  # the line of words[0]
    line, counted = 1, 0  # newlines counted up to offset `counted`
    pos = 0
    while True:
        m = None if words else _PLAIN.match(text, pos)
        if m:  # a whole directive of plain words: on to its end below
            pos, start = m.end(), m.start("words")
            line += text.count("\n", counted, start)
            counted, first = start, line
            words, special = m.group("words").split(), m.group("end")
        else:
            m = _TOKEN.match(text, pos)
            pos = m.end()
            kind = m.lastgroup
            if kind is None:  # the end
                break
            if kind != "special":
                if kind == "bad":
                    problems.append(f"{file}:{_line(text, m.start(kind))}: unexpected end of file, "
                                    f"expecting a closing quote")
                    break
                if kind == "stray":
                    problems.append(f"{file}:{_line(text, m.start(kind))}: unexpected character '\\\\'")
                    break
                if not words:
                    start = m.start(kind)
                    line += text.count("\n", counted, start)
                    counted, first = start, line
                value = m.group(kind)
                words.append(_unescape(value) if "\\" in value else value)
                continue
            special = m.group(kind)
            if special == "}":
                if words:
                    problems.append(f"{file}:{first}: unexpected \"}}\" after {words[0]}")
                    words = []
                if len(stack) == 1:
                    problems.append(f"{file}:{_line(text, m.start(kind))}: unexpected \"}}\"")
                    continue
                stack.pop()
                block = stack[-1]
                continue
            if not words:
                if special == "{":
                    at = _line(text, m.start(kind))
                    problems.append(f"{file}:{at}: block without a directive name")
                    block.append(Directive("", [], file, at, []))
                    block = block[-1].block
                    stack.append(block)
                continue
        d = Directive(words[0], words[1:], file, first)
        words = []
        block.append(d)
        if special == "{":
            if len(stack) > MAX_DEPTH:
                problems.append(f"{d.where}: blocks nested more than {MAX_DEPTH} deep; not read")
                return root
            block = d.block = []
            stack.append(block)
    if words:
        problems.append(f"{file}:{first}: unexpected end of file, expecting \";\" or \"}}\"")
    if len(stack) > 1:
        problems.append(f"{file}: unexpected end of file, expecting \"}}\"")
    return root


class Reader:
    """Parses the main file and splices every include in place, as nginx does."""

    def __init__(self, files: Files, problems: list[str], main: str = MAIN):
        self.files = files
        self.problems = problems
        self.main = main
        self.prefix = os.path.dirname(main)  # nginx's conf prefix: relative includes start here
        self.read_order: dict[str, None] = {}  # every file read, first time only (as nginx -T lists them)
        self.parsed: dict[str, list[Directive]] = {}  # a snippet included by 1,000 sites is parsed once
        self.count = 0

    def load(self) -> list[Directive]:
        return self._file(self.main, self.main, [])

    def _file(self, path: str, where: str, stack: list[str]) -> list[Directive]:
        if path in stack:
            chain = " -> ".join(stack[stack.index(path):] + [path])
            self.problems.append(f"{where}: include loop ({chain}); not followed")
            return []
        if len(stack) >= MAX_DEPTH:
            self.problems.append(f"{where}: includes nested more than {MAX_DEPTH} deep; not followed")
            return []
        if path not in self.parsed:
            text = self.files.read(path, where)
            if text is None:
                return []
            self.read_order[path] = None
            self.parsed[path] = parse(text, path, self.problems)
        return self._expand(self.parsed[path], stack + [path])

    def _expand(self, directives: list[Directive], stack: list[str]) -> list[Directive]:
        out = []
        for d in directives:
            self.count += 1
            if self.count > MAX_DIRECTIVES:
                if self.count == MAX_DIRECTIVES + 1:
                    self.problems.append(f"{d.where}: more than {MAX_DIRECTIVES} directives after "
                                         f"expanding includes; the rest is not read")
                break
            if d.name == "include" and d.block is None:
                if len(d.args) != 1:
                    self.problems.append(f"{d.where}: include takes one file name")
                    continue
                name = d.args[0]
                if not name.startswith("/"):
                    name = os.path.join(self.prefix, name)
                if has_glob(name):
                    paths = self.files.glob(name)  # nothing matched is fine for nginx
                else:
                    paths = [name]
                for p in paths:
                    out.extend(self._file(p, d.where, stack))
                continue
            if d.block is not None:  # a copy: the parsed file stays as read, for its next include
                d = Directive(d.name, d.args, d.file, d.line, self._expand(d.block, stack))
            out.append(d)
        return out


def split_dump(text: str) -> tuple[str | None, dict]:
    """`nginx -T` output -> (main file, {path: text})."""
    files: dict[str, str] = {}
    main = None
    current, lines = None, []
    for line in text.splitlines(True):
        m = re.match(r"^# configuration file (/.*):\n?$", line)
        if m:
            if current is not None:
                files.setdefault(current, _strip_last_newline("".join(lines)))
            current, lines = m.group(1), []
            main = main or current
            continue
        if current is not None:
            lines.append(line)
    if current is not None:
        files.setdefault(current, _strip_last_newline("".join(lines)))
    return main, files


def _strip_last_newline(text: str) -> str:
    # nginx -T prints a newline after each file's contents
    return text[:-1] if text.endswith("\n") else text


def load(sysroot: str, problems: list[str], seen: dict | None = None) -> tuple[list[Directive], list[str]] | None:
    """The expanded configuration and the files read; None if nginx is not configured."""
    dump = None
    main = MAIN
    if sysroot in ("/", ""):
        got = run(["nginx", "-T"])
        if got is not None:
            rc, out, err = got
            if rc == 0:
                main, dump = split_dump(out)
                main = main or MAIN
            elif "syntax is ok" not in err:
                # A sandboxed service cannot open nginx's logs ("syntax is ok", then "test
                # failed"): that is no problem of the config, and reading it here gives the same.
                last = next((l for l in err.strip().splitlines() if "[emerg]" in l), "failed")
                problems.append(f"nginx -T: {last.split('] ', 1)[-1]}; reading {MAIN} directly")
    files = Files(sysroot, problems, dump, seen)
    if dump is None and not files.exists(main):
        # A tree with sites but no nginx.conf (a copied /etc/nginx/sites-*): read them as
        # Debian's nginx.conf does.
        if not any(files.exists(d) for d in ("/etc/nginx/sites-enabled", "/etc/nginx/conf.d")):
            return None
        files.dump = {main: DEBIAN_MAIN}
    reader = Reader(files, problems, main)
    return reader.load(), reader.read_order


# --- who passes PHP where -----------------------------------------------------------------

@dataclass
class Scope:
    """What a block inherits from the blocks around it."""

    names: list[str] = field(default_factory=list)
    root: tuple | None = None  # (value, where, is_alias)
    sets: dict = field(default_factory=dict)  # $var -> (value, where): `set` in this or an outer block
    params: list | None = None  # [(name, value, where)] of the innermost level that has any
    php: bool = False  # a location for .php, or fastcgi_index *.php: PHP, not fcgiwrap & co


_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
# Variables whose value is the effective root (or alias-mapped file) of the location.
_ROOT_VARS = ("document_root", "realpath_root", "request_filename")
# Variables that stand for the URI's path: a literal prefix before them is a directory.
_URI_VARS = ("fastcgi_script_name", "uri", "document_uri", "fastcgi_path_info", "request_uri")


def substitute(value: str, sets: dict, depth: int = 0) -> str:
    """Replace $vars that a `set` in scope gives a value; others stay."""
    if depth > 5 or "$" not in value:
        return value

    def one(m):
        name = m.group(1) or m.group(2)
        if name in sets:
            return substitute(sets[name][0], sets, depth + 1)
        return m.group()
    return _VAR.sub(one, value)


def vhosts(tree: list[Directive], problems: list[str]) -> list[Vhost]:
    upstreams: dict[str, list[tuple[str, str]]] = {}
    out: list[Vhost] = []
    for http in (d for d in tree if d.name == "http" and d.block is not None):
        for d in http.block:
            if d.name == "upstream" and d.block is not None and d.args:
                upstreams[d.args[0]] = [(s.args[0], s.where) for s in d.block
                                        if s.name == "server" and s.args]
        top = _level(http.block, Scope(), problems)
        for server in (d for d in http.block if d.name == "server" and d.block is not None):
            scope = _level(server.block, top, problems)
            scope.names = next((d.args for d in server.block if d.name == "server_name"), [])
            _walk(server.block, scope, upstreams, out, problems)
    return out


def _level(block: list[Directive], outer: Scope, problems: list[str]) -> Scope:
    scope = Scope(names=outer.names, root=outer.root, sets=dict(outer.sets), params=outer.params,
                  php=outer.php)
    params = []
    for d in block:
        if d.block is not None:
            continue
        if d.name in ("root", "alias") and d.args:
            scope.root = (d.args[0], d.where, d.name == "alias")
        elif d.name == "set" and len(d.args) >= 2 and d.args[0].startswith("$"):
            scope.sets[d.args[0][1:].strip("{}")] = (d.args[1], d.where)
        elif d.name == "fastcgi_param" and len(d.args) >= 2:
            params.append((d.args[0], d.args[1], d.where))
        elif d.name == "fastcgi_index" and d.args and ".php" in d.args[0].lower():
            scope.php = True
    if params:  # nginx: a level with any fastcgi_param inherits none from outside
        scope.params = params
    return scope


def _walk(block: list[Directive], scope: Scope, upstreams: dict, out: list, problems: list[str]) -> None:
    for d in block:
        if d.name == "fastcgi_pass" and d.block is None and d.args:
            out.extend(_passes(d, scope, upstreams, problems))
    for d in block:
        if d.block is not None and d.name in ("location", "if", "limit_except"):
            inner = _level(d.block, scope, problems)
            where = " ".join(d.args).lower()
            inner.php = inner.php or (d.name == "location" and ("php" in where or ".ph" in where))
            _walk(d.block, inner, upstreams, out, problems)


def _passes(d: Directive, scope: Scope, upstreams: dict, problems: list[str]) -> list[Vhost]:
    target = substitute(d.args[0], scope.sets)
    if "$" in target:
        problems.append(f"{d.where}: fastcgi_pass {d.args[0]} is set by a variable nginx resolves per "
                        f"request; not followed (set root = in the pool's section instead)")
        return []
    addresses = [(target, d.where)]
    if parse_address(target) is None and target in upstreams:
        addresses = [(a, f"{where} (upstream {target}, {d.where})") for a, where in upstreams[target]]
    roots, why = _roots(scope)
    problems.extend(why)
    return [Vhost("nginx", list(scope.names), where, address, list(roots), list(why),
                  php=scope.php or "php" in address.lower())
            for address, where in addresses]


def _roots(scope: Scope) -> tuple[list[tuple[str, str]], list[str]]:
    """([(root, where)], [problem]) for a fastcgi_pass in this scope."""
    script = None
    for name, value, where in scope.params or []:
        if name == "SCRIPT_FILENAME":
            script = (value, where)  # php-fpm keeps the last one sent
    if script is not None:
        value = substitute(script[0], scope.sets)
        m = _VAR.match(value)
        if m and (m.group(1) or m.group(2)) in _ROOT_VARS:
            pass  # the effective root, below
        elif value.startswith("/"):
            cut = value.find("$")
            if cut < 0:
                return [(os.path.dirname(value) or "/", script[1])], []  # one front controller
            prefix, after = value[:cut], _VAR.match(value, cut)
            var = after and (after.group(1) or after.group(2))
            path = prefix.rstrip("/") if prefix.endswith("/") or var in _URI_VARS else os.path.dirname(prefix)
            return [(path or "/", script[1])], []
        else:
            return [], [f"{script[1]}: fastcgi_param SCRIPT_FILENAME {script[0]} is set by a variable; "
                        f"its root is not guessed (set root = in the pool's section)"]
    if scope.root is None:
        return [], []  # nginx's default root (html below its prefix): no site of its own
    value, where, _alias = scope.root
    resolved = substitute(value, scope.sets)
    if "$" in resolved:
        return [], [f"{where}: root {value} is set by a variable; its PHP files are not guessed "
                    f"(set root = in the pool's section)"]
    if not resolved.startswith("/"):
        resolved = f"{PREFIX}/{resolved}"
    return [(resolved.rstrip("/") or "/", where)], []


def read(sysroot: str, problems: list[str], seen: dict | None = None) -> list[Vhost] | None:
    loaded = load(sysroot, problems, seen)
    if loaded is None:
        return None
    tree, _files = loaded
    return vhosts(tree, problems)
