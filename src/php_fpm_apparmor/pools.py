"""Step 1: read every PHP-FPM pool exactly as php-fpm 8.2 reads it (sapi/fpm/fpm/fpm_conf.c).

php-fpm feeds its config to the Zend INI parser ONE LINE AT A TIME, so the reader below
is a line-wise port of Zend/zend_ini_scanner.l (longest match, ties to the earlier rule,
like re2c) and zend_ini_parser.y, followed by fpm_conf.c's directive tables, include
handling and post-processing. `php-fpm8.2 -tt` is the test oracle (tests/test_pools_*.py).

Deliberate differences, all in the refusing direction: NUL/control bytes, invalid UTF-8,
lines over MAX_LINE bytes, files that are not regular files (a FIFO would hang php-fpm)
and a pool name containing "$pool" (php-fpm loops forever expanding it) are refused.
"""

from __future__ import annotations

import errno
import fnmatch
import grp
import os
import pwd
import re
import stat
from collections import namedtuple
from dataclasses import dataclass, field

from .discover import Installation, disk, find_installations
from .errors import ConfigError
from .sites import canonical

MAX_LINE = 64 * 1024  # bytes; real configs stay far below, and it bounds parse time
MAX_FILE = 16 * 1024 * 1024
MAX_NESTING = 5  # fpm_conf_load_ini_file: "failed to include more than 5 files recursively"


# Where a setting was made: file is the path on disk as opened (i.e. with the sysroot).
# A named tuple: one is made per config line, and a frozen dataclass costs three times as much.
Origin = namedtuple("Origin", "file line")


@dataclass
class Pool:
    version: str
    name: str  # first-declared spelling
    config_file: str  # on-disk file where the pool's section was first opened
    hat: str | None
    user: str | None
    group: str | None
    listen: str | None
    listen_owner: str | None
    listen_group: str | None
    listen_mode: str | None
    listen_acl_users: str | None
    listen_acl_groups: str | None
    chdir: str | None
    chroot: str | None
    access_log: str | None
    slowlog: str | None
    php_values: dict[str, str]
    php_admin_values: dict[str, str]
    env: dict[str, str]
    directives: dict[str, str]
    origins: dict[str, Origin]
    installation: Installation | None = None
    php_ini: dict[str, str] = field(default_factory=dict)

    def ini(self, key: str) -> str | None:
        """Effective PHP setting: php_admin_value beats php_value beats php.ini."""
        for source in (self.php_admin_values, self.php_values, self.php_ini):
            if key in source:
                return source[key]
        return None


# ---------------------------------------------------------------------------------------
# Zend INI scanner (one buffer = one line for php-fpm, a whole file for php.ini)

INITIAL, VALUE, SECTION, OFFSET, DQ, VARNAME = range(6)
_LABEL = r"[^=\n\r\t;&|^$~(){}!\"\[\]\x00]+"
_NL = r"(?:\r\n|\r|\n)"
_LITERAL_DOLLAR = r"\$(?:\\[\s\S]|[^{\x00])"  # longer alternative first = re2c's longest
# (rule name, states, regex) in zend_ini_scanner.l's order: ties go to the earlier rule.
_RULES = [
    ("SECTION_START", {INITIAL}, r"\["),
    ("RAW", {VALUE, SECTION, OFFSET}, r"'[^']+'"),
    ("SECTION_END", {SECTION}, r"\][ \t]*" + _NL + "?"),
    ("OFFSET_START", {INITIAL}, _LABEL + r"\[[ \t]*"),
    ("OFFSET_END", {OFFSET}, r"[ \t]*\]"),
    ("DOLLAR_CURLY", {DQ, SECTION, VALUE, OFFSET}, r"\$\{"),
    ("VARNAME", {VARNAME}, _LABEL),
    ("VAR_END", {VARNAME}, r"\}"),
    ("TRUE", {INITIAL, VALUE}, r"(?i:true|on|yes)[ \t]*"),
    ("FALSE", {INITIAL, VALUE}, r"(?i:false|off|none|no)[ \t]*"),
    ("NULL", {INITIAL, VALUE}, r"(?i:null)[ \t]*"),
    ("LABEL", {INITIAL}, _LABEL),
    ("EQ", {INITIAL}, r"[ \t]*=[ \t]*"),
    ("EOL", {VALUE}, r"[ \t]*" + _NL),
    ("CONSTANT", {SECTION, VALUE, OFFSET}, r"[a-zA-Z_][a-zA-Z0-9_]*"),
    ("NUMBER", {SECTION, VALUE, OFFSET}, r"-?[0-9]+"),
    ("NUMBER", {SECTION, VALUE, OFFSET}, r"[0-9]*\.[0-9]+"),
    ("NUMBER", {SECTION, VALUE, OFFSET}, r"[0-9]+\.[0-9]*"),
    ("CHAR", {INITIAL}, r"[:,.\[\]\"'()&|^+,\-./*=%$!~<>?@{}]"),
    ("OP", {VALUE}, r"[&|^~()!][ \t]*"),
    ("EQ_IN_VALUE", {VALUE}, r"="),
    ("STRING", {VALUE}, r"(?:[^$= \t\n\r;&|^~()!\"'\x00]|" + _LITERAL_DOLLAR + ")+"),
    ("STRING", {SECTION, OFFSET}, r"(?:[^$\n\r;\"'\]\\]|\\[\s\S]|" + _LITERAL_DOLLAR + ")+"),
    ("DQ_START", {SECTION, VALUE, OFFSET}, r"[ \t]*\""),
    ("DQ_END", {DQ}, r"\"[ \t]*"),
    ("QUOTED", {DQ}, r"[\s\S]"),
    ("WHITESPACE", {SECTION, VALUE, OFFSET}, r"[ \t]+"),
    ("SKIP", {INITIAL}, r"[ \t]+"),
    ("EOL", {INITIAL}, r"[ \t]*" + _NL),
    ("EOL", {INITIAL, VALUE}, r"[ \t]*;[^\r\n]*" + _NL),
]
_BY_STATE = {
    s: [(name, re.compile(rx).match) for name, states, rx in _RULES if s in states]
    for s in (INITIAL, VALUE, SECTION, OFFSET, DQ, VARNAME)
}


class _Syntax(Exception):
    pass


def _quoted_end(buf: str, pos: int) -> int:
    """The double-quoted run starting at pos, as the ST_DOUBLE_QUOTES action scans it."""
    n = len(buf)
    s = pos
    while s < n:
        c = buf[s]
        s += 1
        if c == '"':
            return s - 1
        if c == "$":
            if s < n and buf[s] == "{":
                return s - 1
            continue
        if c == "\\" and s < n:
            escaped = buf[s]
            s += 1
            # The Windows-path special case: key="C:\path\" ends the string.
            if escaped == '"' and (s >= n or buf[s] in "\n\r"):
                return s - 1
    return n


def _unescape(text: str) -> str:
    """zend_ini_escape_string for '"': only \\" \\\\ \\$ lose their backslash."""
    if "\\" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                out.append("\\")
                break
            nxt = text[i + 1]
            out.append(nxt if nxt in '"\\$' else "\\" + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _lex(buf: str) -> list[tuple[str, str]]:
    tokens = []
    stack = [INITIAL]
    pos, n = 0, len(buf)
    while True:
        state = stack[-1]
        if pos >= n:
            if state == VALUE:  # <ST_VALUE><<EOF>>: the value ends with the buffer
                tokens.append(("EOL", ""))
                stack[-1] = INITIAL
                continue
            break
        best, best_len = None, 0
        for name, match in _BY_STATE[state]:
            m = match(buf, pos)
            if m and len(m.group()) > best_len:
                best, best_len = name, len(m.group())
        if best is None:
            # Observed with php-fpm 8.2: an empty '' in a value ends it and leaves the
            # quotes as a bare label, which fpm rejects ("value is NULL").
            if state == VALUE and buf.startswith("''", pos):
                raise _Syntax("empty single-quoted string ('') in a value")
            break  # `<*>[^] { return 0; }`: the parser sees the end of input here
        text = buf[pos : pos + best_len]
        if best == "SKIP":
            pass
        elif best == "SECTION_START":
            stack[-1] = SECTION
            tokens.append(("[", text))
        elif best == "RAW":
            tokens.append(("RAW", text[1:-1]))
        elif best == "SECTION_END":
            stack[-1] = INITIAL
            tokens.append(("]", text))
        elif best == "OFFSET_START":
            stack[-1] = OFFSET
            tokens.append(("OFFSET", text.strip(" \t").rstrip(" \t\r\n[")))
        elif best == "OFFSET_END":
            stack[-1] = INITIAL
            tokens.append(("]", text))
        elif best == "DOLLAR_CURLY":
            stack.append(VARNAME)
            tokens.append(("${", text))
        elif best == "VARNAME":
            tokens.append(("VARNAME", text.strip(" \t").rstrip(" \t\r\n")))
        elif best == "VAR_END":
            stack.pop()
            tokens.append(("}", text))
        elif best in ("TRUE", "FALSE", "NULL"):
            tokens.append((best, "1" if best == "TRUE" else ""))
        elif best == "LABEL":
            tokens.append(("LABEL", text.strip(" \t").rstrip(" \t\r\n")))
        elif best == "EQ":
            stack[-1] = VALUE
            tokens.append(("=", text))
        elif best == "EOL":
            stack[-1] = INITIAL
            tokens.append(("EOL", text))
        elif best in ("CONSTANT", "NUMBER", "STRING", "WHITESPACE"):
            tokens.append((best, text))
        elif best == "CHAR":
            tokens.append(("CHAR" + text, text))
        elif best == "OP":
            tokens.append((text[0], text))
        elif best == "EQ_IN_VALUE":  # yyless(0): the '=' is rescanned in INITIAL
            stack[-1] = INITIAL
            tokens.append(("EOL", ""))
            continue
        elif best == "DQ_START":
            stack.append(DQ)
            tokens.append(('"', text))
        elif best == "DQ_END":
            stack.pop()
            tokens.append(('"', text))
        elif best == "QUOTED":
            end = _quoted_end(buf, pos)
            tokens.append(("QUOTED", _unescape(buf[pos:end])))
            pos = end
            continue
        pos += best_len
    return tokens


# ---------------------------------------------------------------------------------------
# Zend INI parser: statements are (kind, name, key, value); kind is "section", "entry"
# (value None for a bare label, which php-fpm rejects) or "array".

_STRINGISH = ("CONSTANT", "RAW", "NUMBER", "STRING", "WHITESPACE")


class _Parser:
    def __init__(self, tokens, getvar, constants):
        self.t = tokens
        self.i = 0
        self.getvar = getvar
        self.constants = constants

    def peek(self):
        return self.t[self.i][0] if self.i < len(self.t) else None

    def take(self, kind=None):
        if self.i >= len(self.t) or (kind and self.t[self.i][0] != kind):
            raise _Syntax(f"syntax error, unexpected {self.describe()}")
        tok = self.t[self.i]
        self.i += 1
        return tok

    def describe(self):
        if self.i >= len(self.t):
            return "end of line"
        kind, text = self.t[self.i]
        return repr(text) if text and text.strip() else kind.lower().replace("char", "")

    def statements(self, sink):
        while self.i < len(self.t):
            kind = self.peek()
            if kind == "EOL":
                self.i += 1
            elif kind == "[":
                self.i += 1
                name = self.var_list(section=True) if self.peek() != "]" else ""
                self.take("]")
                sink("section", name, None, None)
            elif kind == "LABEL":
                name = self.take()[1]
                if self.peek() == "=":
                    self.i += 1
                    sink("entry", name, None, self.string_or_value())
                else:
                    sink("entry", name, None, None)
            elif kind == "OFFSET":
                name = self.take()[1]
                key = self.var_list() if self.peek() != "]" else ""
                self.take("]")
                self.take("=")
                sink("array", name, key, self.string_or_value())
            else:
                raise _Syntax(f"syntax error, unexpected {self.describe()}")

    def string_or_value(self):
        kind = self.peek()
        if kind in ("TRUE", "FALSE", "NULL"):
            return self.take()[1]
        if kind == "EOL":
            self.i += 1
            return ""
        return self.expr()

    def expr(self):
        # bison: %left '|' '&' '^' (one level), prefix '~' '!' bind tighter.
        left = self.unary()
        while self.peek() in ("|", "&", "^"):
            op = self.take()[0]
            right = self.unary()
            left = _do_op(op, left, right)
        return left

    def unary(self):
        kind = self.peek()
        if kind in ("~", "!"):
            self.i += 1
            return _do_op(kind, self.unary(), None)
        if kind == "(":
            self.i += 1
            value = self.expr()
            self.take(")")
            return value
        return self.var_list()

    def var_list(self, section=False):
        parts = []
        start = self.i
        while True:
            kind = self.peek()
            if kind == "${":
                parts.append(self.var_ref())
            elif kind in _STRINGISH:
                text = self.take()[1]
                if kind == "CONSTANT" and not section:
                    text = self.constants.get(text, text)
                parts.append(text)
            elif kind == '"':
                self.i += 1
                while self.peek() in ("QUOTED", "${"):
                    parts.append(self.take()[1] if self.peek() == "QUOTED" else self.var_ref())
                self.take('"')
            else:
                break
        if self.i == start:  # ("" is a value, nothing at all is not)
            raise _Syntax(f"syntax error, unexpected {self.describe()}")
        return "".join(parts)

    def var_ref(self):
        self.take("${")
        name = self.take("VARNAME")[1]
        self.take("}")
        return self.getvar(name)


_ATOI = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)")
_INT = re.compile(r"-?[0-9]*\Z")


def _atoi(text: str) -> int:
    m = _ATOI.match(text)
    if not m:
        return 0
    value = int(m.group(1))
    return max(min(value, 2**31 - 1), -(2**31))


def _do_op(op, a, b):
    x = _atoi(a)
    y = _atoi(b) if b is not None else 0
    result = {"|": x | y, "&": x & y, "^": x ^ y, "~": ~x, "!": int(not x)}[op]
    # C int arithmetic: wrap to 32 bits like the zend code does.
    result &= 0xFFFFFFFF
    if result >= 2**31:
        result -= 2**32
    return str(result)


# Fast path for the lines real configs are made of; anything unusual takes the full lexer.
_FAST_BLANK = re.compile(r"[ \t]*(?:;[^\r\n]*)?\r?\Z")
_FAST_SECTION = re.compile(r"\[([A-Za-z0-9_.:@+,/-]+)\][ \t]*(?:;[^\r\n]*)?\r?\Z")
# A value is either plain VALUE_CHARS (a "$" only before a name character, where it is
# literal) or one double-quoted run without escapes or ${}. Atomic: what may follow a value
# (blank, ";", "\r", the end) is never a value character, so nothing is given back, and a
# long line that fails costs one pass, not one per split of it. (An atomic group, not a
# possessive repeat: Debian 12's Python 3.11.2 mismatches those on groups, CPython gh-106052.)
_FAST_ENTRY = re.compile(
    r"[ \t]*([A-Za-z_][A-Za-z0-9_.]*)(?:\[([A-Za-z0-9_./:-]+)\])?[ \t]*=[ \t]*"
    r"(?:\"([^\"\\$\r\n]*)\"|((?>(?:[^$= \t\n\r;&|^~()!\"'\x00]+|\$[A-Za-z0-9_])*)))"
    r"[ \t]*(?:;[^\r\n]*)?\r?\Z"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOOLS = {"true": "1", "on": "1", "yes": "1", "false": "", "off": "", "no": "", "none": "", "null": ""}


def fast_statement(line: str, constants) -> tuple | None:
    """The statement (kind, name, key, value) of a plain line, () for a blank or comment
    line, None when the full lexer must decide. Depends on nothing but its arguments."""
    if not line or line[0] == ";":
        return ()
    m = _FAST_ENTRY.match(line)
    if m and m.group(1).lower() not in _BOOLS:
        name, key, quoted, value = m.groups()
        if key is not None and _IDENT.match(key):
            key = constants.get(key, key)
        if quoted is not None:
            value = quoted
        elif _IDENT.match(value):
            low = value.lower()
            value = _BOOLS[low] if low in _BOOLS else constants.get(value, value)
        return ("entry", name, None, value) if key is None else ("array", name, key, value)
    m = _FAST_SECTION.match(line)
    if m:
        return ("section", m.group(1), None, None)
    if _FAST_BLANK.match(line):
        return ()
    return None


def parse_line(line: str, getvar, constants, sink) -> None:
    """Parse one buffer of Zend INI text, calling sink(kind, name, key, value)."""
    st = fast_statement(line, constants)
    if st is None:
        _Parser(_lex(line + "\n"), getvar, constants).statements(sink)
    elif st:
        sink(*st)


# Constants zend_ini_get_constant would find. Only the ones with a fixed value on every
# Debian/RHEL build; any other identifier stays literal (a documented gap).
E = {
    "E_ERROR": 1, "E_WARNING": 2, "E_PARSE": 4, "E_NOTICE": 8, "E_CORE_ERROR": 16,
    "E_CORE_WARNING": 32, "E_COMPILE_ERROR": 64, "E_COMPILE_WARNING": 128,
    "E_USER_ERROR": 256, "E_USER_WARNING": 512, "E_USER_NOTICE": 1024, "E_STRICT": 2048,
    "E_RECOVERABLE_ERROR": 4096, "E_DEPRECATED": 8192, "E_USER_DEPRECATED": 16384,
    "E_ALL": 32767,
}


SUN_PATH = 108  # sizeof(struct sockaddr_un.sun_path) on Linux


def _at_least(version: str, wanted: tuple) -> bool:
    """An installation's "X.Y" is at least `wanted` (False for "default", the RHEL layout
    whose version is not known here)."""
    m = re.match(r"^([0-9]+)\.([0-9]+)$", version)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= wanted


def constants_for(version: str) -> dict[str, str]:
    table = {k: str(v) for k, v in E.items()}
    table.update(
        PHP_OS="Linux", PHP_OS_FAMILY="Linux", DIRECTORY_SEPARATOR="/", PATH_SEPARATOR=":",
        PHP_EOL="\n", PHP_INT_SIZE="8", PHP_INT_MAX=str(2**63 - 1), PHP_INT_MIN=str(-(2**63)),
        PHP_SHLIB_SUFFIX="so", PHP_MAXPATHLEN="4096", PHP_DEBUG="0", PHP_ZTS="0",
    )
    if re.match(r"^[0-9]+\.[0-9]+$", version):
        major, minor = version.split(".")
        table.update(PHP_MAJOR_VERSION=major, PHP_MINOR_VERSION=minor)
        if _at_least(version, (8, 4)):  # PHP 8.4 dropped E_STRICT from E_ALL
            table["E_ALL"] = str(E["E_ALL"] & ~E["E_STRICT"])
    return table


# ---------------------------------------------------------------------------------------
# fpm_conf.c tables (PHP 8.2, built with AppArmor and ACL support as Debian's is)

GLOBAL_OPTIONS = {
    "pid": "string", "error_log": "string", "syslog.ident": "string",
    "syslog.facility": "facility", "log_buffering": "bool", "log_level": "log_level",
    "log_limit": "int", "emergency_restart_threshold": "int",
    "emergency_restart_interval": "time", "process_control_timeout": "time",
    "process.max": "int", "process.priority": "int", "daemonize": "bool",
    "rlimit_files": "int", "rlimit_core": "rlimit_core", "events.mechanism": "string",
    "systemd_interval": "time",
}
POOL_OPTIONS = {
    "prefix": "string", "user": "string", "group": "string", "listen": "string",
    "listen.backlog": "int", "listen.acl_users": "string", "listen.acl_groups": "string",
    "listen.owner": "string", "listen.group": "string", "listen.mode": "string",
    "listen.allowed_clients": "string", "process.priority": "int",
    "process.dumpable": "bool", "pm": "pm", "pm.max_children": "int",
    "pm.start_servers": "int", "pm.min_spare_servers": "int",
    "pm.max_spare_servers": "int", "pm.max_spawn_rate": "int",
    "pm.process_idle_timeout": "time", "pm.max_requests": "int",
    "pm.status_path": "string", "pm.status_listen": "string", "ping.path": "string",
    "ping.response": "string", "access.log": "string", "access.format": "string",
    "slowlog": "string", "request_slowlog_timeout": "time",
    "request_slowlog_trace_depth": "int", "request_terminate_timeout": "time",
    "request_terminate_timeout_track_finished": "bool", "rlimit_files": "int",
    "rlimit_core": "rlimit_core", "chroot": "string", "chdir": "string",
    "catch_workers_output": "bool", "decorate_workers_output": "bool",
    "clear_env": "bool", "security.limit_extensions": "string", "apparmor_hat": "string",
}
_FACILITIES = {
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", *(f"local{i}" for i in range(8)),
}
# FPM_PHP_INI_TO_EXPAND: php_value/php_admin_value keys made absolute against the prefix.
PHP_INI_TO_EXPAND = {
    "error_log", "extension_dir", "mime_magic.magicfile", "sendmail_path",
    "session.cookie_path", "session_pgsql.sem_file_name", "soap.wsdl_cache_dir",
    "uploadprogress.file.filename_template", "xdebug.output_dir",
    "xdebug.profiler_output_dir", "xdebug.trace_output_dir", "xmms.path",
    "axis2.client_home", "blenc.key_file", "coin_acceptor.device",
}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ci(text: str) -> str:
    """strcasecmp's view of a string (ASCII only, like the C locale)."""
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


def _check_value(kind: str, value: str) -> str | None:
    """The error fpm_conf.c's setter would return for `value`, or None."""
    if kind == "string":  # most options: nothing to check
        return None
    if kind == "bool":
        return None if value in ("1", "", "0") else "invalid boolean value"
    if kind == "int":
        if _INT.match(value) is None:
            return "is not a valid number (greater or equal than zero)"
        return None
    if kind == "time":
        if not value:
            return "invalid time value"
        if value[-1] not in "smhd0123456789":
            return "unknown suffix used in time value"
        return None
    if kind == "pm":
        return None if _ci(value) in ("static", "dynamic", "ondemand") else (
            "invalid process manager (static, dynamic or ondemand)")
    if kind == "rlimit_core":
        if _ci(value) == "unlimited":
            return None
        err = _check_value("int", value)
        if err:
            return err
        return "must be greater than zero or 'unlimited'" if _atoi(value) < 0 else None
    if kind == "log_level":
        ok = _ci(value) in ("debug", "notice", "warning", "warn", "error", "alert")
        return None if ok else "invalid value for 'log_level'"
    if kind == "facility":
        return None if _ci(value) in _FACILITIES else "invalid value"
    return None


_FORMAT_ARGS = {
    "C": {"total", "user", "system"},
    "d": {"seconds", "milliseconds", "mili", "microseconds", "micro"},
    "M": {"bytes", "kilobytes", "kilo", "megabytes", "mega"},
}


def access_format_invalid(fmt: str) -> bool:
    """fpm_log.c's check of access.format (verified case by case against php-fpm 8.2)."""
    i, n = 0, len(fmt)
    while i < n:
        if fmt[i] != "%":
            i += 1
            continue
        i += 1
        if i >= n:
            return False  # a trailing '%' is printed as is
        arg = None
        if fmt[i] == "{":
            end = fmt.find("}", i + 1)
            if end < 0:
                return True
            arg, i = fmt[i + 1 : end], end + 1
            if i >= n:
                return True
        c = fmt[i]
        i += 1
        if c in _FORMAT_ARGS:
            if arg and arg not in _FORMAT_ARGS[c]:
                return True
        elif c in "eo":
            if not arg:
                return True
        elif c in "tT":
            pass
        elif c in "%flmnpPqQrRsu":
            if arg:
                return True
        else:
            return True
    return False


def time_seconds(value: str) -> int:
    """fpm_conf_set_time's result for an accepted value."""
    mult = {"m": 60, "h": 3600, "d": 86400, "s": 1}.get(value[-1])
    return _atoi(value[:-1]) * mult if mult else _atoi(value)


# ---------------------------------------------------------------------------------------
# The reader


@dataclass
class _PoolState:
    name: str
    file: str  # on-disk
    line: int
    scalars: dict = field(default_factory=dict)  # canonical name -> value
    origins: dict = field(default_factory=dict)
    # lists in file order of (key, value, Origin); first occurrence wins at runtime
    php_values: list = field(default_factory=list)
    php_admin_values: list = field(default_factory=list)
    env: list = field(default_factory=list)


class _Reader:
    def __init__(self, inst: Installation, sysroot: str, environ, php_ini: dict):
        self.inst = inst
        self.sysroot = sysroot
        self.environ = os.environ if environ is None else environ
        self.php_ini = php_ini
        self.constants = constants_for(inst.version)
        self.globals: dict[str, str] = {}
        self.global_origins: dict[str, Origin] = {}
        self.pools: list[_PoolState] = []
        self.by_name: dict[str, _PoolState] = {}
        self.current: _PoolState | None = None
        self.depth = 0
        self.include = None
        self._users = None
        self._groups = None
        # line -> its statement (fast_statement): a panel writes the same lines into every
        # pool, and a thousand pools repeat most of them
        self.memo: dict[str, tuple] = {}
        # include= glob matches the directory listing showed to be plain files (neither a
        # symlink nor a directory): system path -> on-disk path, no readlink or stat again
        self.listed: dict[str, str] = {}

    # -- files -----------------------------------------------------------------------
    def disk(self, path: str) -> str:
        return disk(self.sysroot, path)

    def real(self, path: str) -> str:
        """On-disk path with symlinks resolved inside the system root, never on the host."""
        if self.sysroot in ("", "/"):
            return path
        listed = self.listed.get(path)
        if listed is not None:
            return listed
        return disk(self.sysroot, canonical(self.sysroot, path))

    def getvar(self, name: str) -> str:
        value = self.php_ini.get(name)
        if isinstance(value, str):
            return value
        return self.environ.get(name, "")

    def load(self, path: str, from_file: str | None = None, from_line: int = 0):
        """fpm_conf_load_ini_file for system path `path`."""
        where = self.disk(path)
        data = read_config_bytes(self.real(path), from_file, from_line, shown=where)
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise ConfigError(
                    from_file or where, from_line,
                    f"failed to include more than {MAX_NESTING} files recursively "
                    f"(include loop?) at {where}",
                )
            getvar, constants, sink, memo = self.getvar, self.constants, self.statement, self.memo
            for lineno, line in enumerate(decode_lines(data, where), 1):
                if not line:
                    continue
                if len(line) > MAX_LINE:
                    raise ConfigError(where, lineno, f"line longer than {MAX_LINE} bytes")
                self.include = None
                self.at = Origin(where, lineno)  # the statement's (set again after an include)
                st = memo.get(line)
                if st is None:
                    st = fast_statement(line, constants)
                    if st is not None:
                        memo[line] = st
                try:
                    if st is None:
                        _Parser(_lex(line + "\n"), getvar, constants).statements(sink)
                    elif st:
                        sink(*st)
                except _Syntax as e:
                    raise ConfigError(where, lineno, str(e)) from None
                if self.include is not None:
                    pattern, self.include = self.include, None
                    self.do_include(pattern, where, lineno)
        finally:
            self.depth -= 1

    def do_include(self, pattern: str, where: str, lineno: int):
        pattern = self.full_path(pattern, None)
        status, paths = self.glob(pattern)
        if status == "nomatch":
            return  # php-fpm only warns
        if status == "abort":
            raise ConfigError(where, lineno, f"include={pattern}: directory does not exist or is unreadable")
        for path in paths:
            if path not in self.listed and os.path.isdir(self.real(path)):
                continue  # GLOB_MARK'd directories are skipped
            self.load(path, where, lineno)

    def glob(self, pattern: str):
        """glibc glob(GLOB_ERR|GLOB_MARK) on the system root: (status, sorted paths)."""
        if not pattern:
            return "nomatch", []
        if not glob_magic(pattern):
            return ("ok", [pattern]) if os.path.lexists(self.disk(pattern)) else ("nomatch", [])
        parts = pattern.split("/")
        bases = [parts[0]]  # "" for an absolute pattern
        seen_magic = False
        for i, part in enumerate(parts[1:], 1):
            last = i == len(parts) - 1
            if glob_magic(part):
                seen_magic = True
                found = []
                for base in bases:
                    try:
                        with os.scandir(self.real(base or "/")) as it:
                            entries = list(it)
                    except OSError as e:
                        if e.errno == errno.ENOTDIR:
                            continue
                        return "abort", []
                    for entry in entries:
                        name = entry.name
                        if name.startswith(".") and not part.startswith("."):
                            continue
                        if fnmatch.fnmatchcase(name, part):
                            found.append(f"{base}/{name}")
                            if last and not entry.is_symlink() and not entry.is_dir(follow_symlinks=False):
                                self.listed[found[-1]] = entry.path
                bases = found
            elif part == "" and not last:
                continue  # "//" in a pattern
            else:
                bases = [f"{b}/{part}" for b in bases]
                if seen_magic or last:
                    bases = [b for b in bases if os.path.lexists(self.disk(b))]
            if not bases:
                return "nomatch", []
        return "ok", sorted(bases)

    # -- statements ------------------------------------------------------------------
    def statement(self, kind, name, key, value):
        origin = self.at
        file, line = origin
        if kind == "section":
            if _ci(name) == "global":
                self.current = None
                return
            pool = self.by_name.get(_ci(name))
            if pool is None:
                pool = _PoolState(name=name, file=file, line=line)
                self.by_name[_ci(name)] = pool
                self.pools.append(pool)
            self.current = pool
            return
        if value is None:
            raise ConfigError(file, line, f"'{name}' has no '=' and no value")
        if kind == "entry":
            if name == "include":  # strcmp: "Include" is an unknown entry
                self.include = value
                return
            table = POOL_OPTIONS if self.current else GLOBAL_OPTIONS
            canon = _ci(name)
            if canon not in table:
                section = f"pool [{self.current.name}]" if self.current else "[global]"
                raise ConfigError(file, line, f"unknown entry '{name}' in {section}")
            err = _check_value(table[canon], value)
            if err:
                raise ConfigError(file, line, f"unable to parse value for entry '{canon}': {err}")
            if table[canon] == "string":
                value = self.expand_pool(value, file, line)
            if self.current:
                self.current.scalars[canon] = value
                self.current.origins[canon] = origin
            else:
                self.globals[canon] = value
                self.global_origins[canon] = origin
            return
        # array: name[key] = value
        if name == "access.suppress_path":
            if not self.current:
                raise ConfigError(file, line, "arrays are not allowed in the global section")
            return
        if not key:
            raise ConfigError(file, line, f"you must provide a key for field '{name}'")
        if not self.current:
            raise ConfigError(file, line, "arrays are not allowed in the global section")
        pool = self.current
        if name == "env":
            if not value:
                raise ConfigError(file, line, f"env[{key}] has an empty value")
            target, label = pool.env, "env"
        elif name in ("php_value", "php_flag"):
            target, label = pool.php_values, "php_value"
        elif name in ("php_admin_value", "php_admin_flag"):
            target, label = pool.php_admin_values, "php_admin_value"
        else:
            raise ConfigError(file, line, f"unknown directive '{name}'")
        if name.endswith("_flag"):
            if value not in ("1", "", "0"):
                raise ConfigError(file, line, f"error while parsing '{name}[{key}]': invalid boolean value")
            value = "1" if value == "1" else "0"
        else:
            value = self.expand_pool(value, file, line)
        target.append((key, value, origin, label))

    def expand_pool(self, value: str, file, line) -> str:
        if "$pool" not in value:
            return value
        if not self.current:
            raise ConfigError(file, line, "can't use '$pool' outside a pool section")
        if "$pool" in self.current.name:
            raise ConfigError(file, line, "pool name contains '$pool' (php-fpm would loop forever)")
        return value.replace("$pool", self.current.name)

    # -- post-processing (fpm_conf_process_all_pools) ----------------------------------
    def full_path(self, path, pool: _PoolState | None, expand=False):
        """fpm_evaluate_full_path (an empty value becomes "<prefix>/", as in C)."""
        if path is None or path.startswith("/"):
            return path
        prefix = None
        if pool is not None:
            prefix = pool.scalars.get("prefix")
        if prefix is None:
            prefix = self.inst.prefix
        if expand and "$prefix" in path:
            if not path.startswith("$prefix"):
                raise ValueError("'$prefix' must be use at the beginning of the value")
            path = path[len("$prefix"):] or None
        full = f"{prefix}/{path}" if path is not None else prefix
        if not full.startswith("/") and pool is not None:
            return self.full_path(full, None, expand)
        return full

    def isdir(self, path):
        try:
            return os.path.isdir(self.real(path))
        except ConfigError:  # a symlink loop: php-fpm's chdir() fails with ELOOP
            return False

    def finish(self) -> list[Pool]:
        g, go = self.globals, self.global_origins
        where = lambda key: go.get(key, Origin(self.disk(self.inst.config), 0))  # noqa: E731
        if "process.priority" in g and not -19 <= _atoi(g["process.priority"]) <= 20:
            o = where("process.priority")
            raise ConfigError(o.file, o.line, "process.priority must be within [-19,20]")
        if "events.mechanism" in g and _ci(g["events.mechanism"]) not in ("epoll", "poll", "select", ""):
            o = where("events.mechanism")
            raise ConfigError(o.file, o.line, f"event mechanism '{g['events.mechanism']}' is not available")
        if not self.pools:
            raise ConfigError(self.disk(self.inst.config), 0, "no pool defined: at least one pool section is required")
        listens = {}
        result = []
        for p in self.pools:
            result.append(self.finish_pool(p, listens))
        return result

    def finish_pool(self, p: _PoolState, listens) -> Pool:
        s = p.scalars

        def fail(key, message):
            o = p.origins.get(key) or Origin(p.file, p.line)
            raise ConfigError(o.file, o.line, f"[pool {p.name}] {message}")

        if s.get("prefix"):
            s["prefix"] = self.full_path(s["prefix"], None)
            if not self.isdir(s["prefix"]):
                fail("prefix", f"the prefix '{s['prefix']}' does not exist or is not a directory")
        if "user" not in s:
            fail("user", "user has not been defined")
        listen = s.get("listen")
        if not listen:
            fail("listen", "no listen address has been defined")
        unix = ":" not in listen and not listen.isdigit()  # fpm_sockets_domain_from_address
        if unix and not listen.startswith("/"):
            s["listen"] = listen = self.full_path(listen, p)
        # fpm_unix_check_listen_address (PHP 8.4; 8.2 truncated the path at bind time):
        # a unix socket path must fit sockaddr_un.sun_path with its NUL.
        n = len(listen.encode("utf-8", "surrogateescape"))
        if unix and n >= SUN_PATH and _at_least(self.inst.version, (8, 4)):
            fail("listen", f"cannot bind to UNIX socket '{listen}' as path is too long "
                           f"(found length: {n}, maximal length: {SUN_PATH})")
        if "process.priority" in s and not -19 <= _atoi(s["process.priority"]) <= 20:
            fail("process.priority", "process.priority must be within [-19,20]")
        pm = _ci(s.get("pm", ""))
        if pm not in ("static", "dynamic", "ondemand"):
            fail("pm", "the process manager is missing (static, dynamic or ondemand)")
        n = lambda key, default=0: _atoi(s[key]) if key in s else default  # noqa: E731
        children = n("pm.max_children")
        if children < 1:
            fail("pm.max_children", "pm.max_children must be a positive value")
        if pm == "dynamic":
            lo, hi = n("pm.min_spare_servers"), n("pm.max_spare_servers")
            if lo <= 0:
                fail("pm.min_spare_servers", f"pm.min_spare_servers({lo}) must be a positive value")
            if hi <= 0:
                fail("pm.max_spare_servers", f"pm.max_spare_servers({hi}) must be a positive value")
            if lo > children or hi > children:
                fail("pm.max_spare_servers", "pm.min/max_spare_servers cannot be greater than pm.max_children")
            if hi < lo:
                fail("pm.max_spare_servers", "pm.max_spare_servers must not be less than pm.min_spare_servers")
            start = n("pm.start_servers") or lo + (hi - lo) // 2
            if start < lo or start > hi:
                fail("pm.start_servers", "pm.start_servers must not be less than pm.min_spare_servers "
                     "and not greater than pm.max_spare_servers")
            if n("pm.max_spawn_rate", 32) <= 0:
                fail("pm.max_spawn_rate", "pm.max_spawn_rate must be a positive value")
        elif pm == "ondemand":
            if "pm.process_idle_timeout" in s and time_seconds(s["pm.process_idle_timeout"]) < 1:
                fail("pm.process_idle_timeout", "pm.process_idle_timeout must be a positive value")
        for key, what in (("pm.status_path", "status"), ("ping.path", "ping")):
            value = s.get(key)
            if value:
                if not value.startswith("/"):
                    fail(key, f"the {what} path '{value}' must start with a '/'")
                if len(value) < 2:
                    fail(key, f"the {what} path '{value}' is not long enough")
        if s.get("access.log"):
            s["access.log"] = self.full_path(s["access.log"], p)
            if "access.format" in s and access_format_invalid(s["access.format"]):
                fail("access.format", f"wrong format for access.format '{s['access.format']}'")
        if s.get("slowlog"):
            s["slowlog"] = self.full_path(s["slowlog"], p)
        slow = "request_slowlog_timeout" in s and time_seconds(s["request_slowlog_timeout"])
        if slow and not s.get("slowlog"):
            fail("request_slowlog_timeout", "'slowlog' must be specified for use with 'request_slowlog_timeout'")
        # php-fpm opens (creates) these logs at startup: a missing directory stops it.
        for key in ("access.log",) + (("slowlog",) if slow else ()):
            if s.get(key) and not self.isdir(os.path.dirname(s[key]) or "/"):
                fail(key, f"cannot open {key} '{s[key]}': its directory does not exist")
        if s.get("chroot"):
            try:
                s["chroot"] = self.full_path(s["chroot"], p, expand=True)
            except ValueError as e:
                fail("chroot", str(e))
            if not s["chroot"].startswith("/"):
                fail("chroot", f"the chroot path '{s['chroot']}' must be absolute")
            if not self.isdir(s["chroot"]):
                fail("chroot", f"the chroot path '{s['chroot']}' does not exist or is not a directory")
        if s.get("chdir"):
            s["chdir"] = self.full_path(s["chdir"], p)
            if not s["chdir"].startswith("/"):
                fail("chdir", f"the chdir path '{s['chdir']}' must be absolute")
            inside = f"{s['chroot']}/{s['chdir']}" if "chroot" in s else s["chdir"]
            if not self.isdir(inside):
                fail("chdir", f"the chdir path '{inside}' does not exist or is not a directory")
        if "chroot" not in s:
            for entries, admin in ((p.php_values, False), (p.php_admin_values, True)):
                for i, (key, value, origin, label) in enumerate(entries):
                    if _ci(key) in PHP_INI_TO_EXPAND:
                        if admin and _ci(key) == "error_log" and _ci(value) == "syslog":
                            continue
                        entries[i] = (key, self.full_path(value, p), origin, label)
        if listen in listens:
            fail("listen", f"listen address '{listen}' is already used by pool '{listens[listen]}'")
        listens[listen] = p.name
        self.check_accounts(p, fail)

        def effective(entries):
            out, where = {}, {}
            for key, value, origin, label in entries:
                if key not in out:  # the first in file order is applied last and wins
                    out[key] = value
                    where[f"{label}[{key}]"] = origin
            return out, where

        php_values, o1 = effective(p.php_values)
        php_admin_values, o2 = effective(p.php_admin_values)
        env, o3 = effective(p.env)
        origins = dict(p.origins)
        origins.update(o1)
        origins.update(o2)
        origins.update(o3)
        return Pool(
            version=self.inst.version, name=p.name, config_file=p.file,
            hat=s.get("apparmor_hat"), user=s.get("user"), group=s.get("group"),
            listen=s["listen"], listen_owner=s.get("listen.owner"),
            listen_group=s.get("listen.group"), listen_mode=s.get("listen.mode"),
            listen_acl_users=s.get("listen.acl_users"),
            listen_acl_groups=s.get("listen.acl_groups"), chdir=s.get("chdir"),
            chroot=s.get("chroot"), access_log=s.get("access.log"), slowlog=s.get("slowlog"),
            php_values=php_values, php_admin_values=php_admin_values, env=env,
            directives=dict(s), origins=origins, installation=self.inst, php_ini=self.php_ini,
        )

    # -- accounts (fpm_unix.c resolves every name; an unknown one stops php-fpm) ----------
    def user_exists(self, name):
        if name.isdigit():
            return True
        if self._users is None:
            self._users = {} if self.sysroot in ("", "/") else dict.fromkeys(_names(self.disk("/etc/passwd")), True)
        return self._known(self._users, name, pwd.getpwall, pwd.getpwnam)

    def group_exists(self, name):
        if name.isdigit():
            return True
        if self._groups is None:
            self._groups = {} if self.sysroot in ("", "/") else dict.fromkeys(_names(self.disk("/etc/group")), True)
        return self._known(self._groups, name, grp.getgrall, grp.getgrnam)

    def _known(self, names: dict, name: str, everyone, lookup) -> bool:
        """Below --root `names` is the tree's file, read once. On the live system each name
        is asked for alone, as php-fpm asks, until a host with many pools has asked
        ASK_ALONE of them: then the accounts are listed in one pass (each getpwnam reads
        /etc/passwd again: a thousand pools' users cost `status` 0.2 s). A name the listing
        lacks is still asked for alone: a directory service need not list its accounts."""
        if name in names or self.sysroot not in ("", "/"):
            return names.get(name, False)
        if len(names) >= ASK_ALONE and None not in names:
            names.update(dict.fromkeys((entry[0] for entry in everyone()), True))
            names[None] = True  # listed: not again
            if name in names:
                return True
        names[name] = _asked(lookup, name)
        return names[name]

    def check_accounts(self, p, fail):
        s = p.scalars
        if s.get("user") and not self.user_exists(s["user"]):
            fail("user", f"cannot get uid for user '{s['user']}'")
        if s.get("group") and not self.group_exists(s["group"]):
            fail("group", f"cannot get gid for group '{s['group']}'")
        acl = False
        for key, check, what in (("listen.acl_users", self.user_exists, "user"),
                                 ("listen.acl_groups", self.group_exists, "group")):
            if s.get(key):
                acl = True
                for name in s[key].split(","):
                    if not check(name.strip()):
                        fail(key, f"cannot get {what[0]}id for {what} '{name.strip()}'")
        if not acl:  # with ACLs php-fpm ignores listen.owner/listen.group
            if s.get("listen.owner") and not self.user_exists(s["listen.owner"]):
                fail("listen.owner", f"cannot get uid for user '{s['listen.owner']}'")
            if s.get("listen.group") and not self.group_exists(s["listen.group"]):
                fail("listen.group", f"cannot get gid for group '{s['listen.group']}'")


ASK_ALONE = 32


def _asked(lookup, name) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def _names(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return {line.split(":", 1)[0] for line in f if ":" in line}
    except OSError:
        return set()


def glob_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


class NotRegular(OSError):
    """A FIFO, device or socket where a file to read was expected."""


_OPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_regular(path):
    """A binary file object for `path`, which must be a regular file (NotRegular, an
    OSError, otherwise). Config and site files are named by people who may be hostile: a
    FIFO opened plainly would block `generate`, which php-fpm's ExecStartPre waits for, and
    opening a device runs its driver as root (a watchdog reboots the host when closed). So
    the path is first opened as a bare reference (O_PATH: no driver, no read), and only a
    regular file is then opened for reading, through that reference: the same inode, even
    if the name was swapped in between."""
    fd, _ = _open_regular(path)
    try:
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit: int) -> tuple[bytes, os.stat_result]:
    """(the first `limit` bytes, all of a smaller file; its stat) of the regular file at
    `path`, opened as open_regular() does. Callers that refuse a file over N bytes ask for
    N + 1. No file object: on a thousand sites' small files it cost more than the read.
    The read is sized to the file: os.read(limit) would allocate the whole limit."""
    fd, st = _open_regular(path)
    try:
        want = min(st.st_size + 1, limit)
        data = os.read(fd, want)
        while len(data) == want and want < limit:  # it grew since the fstat
            more = os.read(fd, limit - len(data))
            if not more:
                break
            data += more
            want = len(data)
        return data, st
    finally:
        os.close(fd)


def _open_regular(path) -> tuple[int, os.stat_result]:
    """(a read-only descriptor, its stat) for open_regular() and read_regular()."""
    ref = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        st = os.fstat(ref)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{path}: not a regular file")
        try:
            fd = os.open(f"/proc/self/fd/{ref}", _OPEN)
        except FileNotFoundError:  # no /proc (a bare chroot): the name again, checked again
            fd = os.open(path, _OPEN)
            if not os.path.samestat(os.fstat(fd), st):
                os.close(fd)
                raise NotRegular(f"{path}: changed while being opened") from None
    finally:
        os.close(ref)
    return fd, st


def read_config_bytes(path: str, from_file=None, from_line=0, shown=None) -> bytes:
    """The bytes of a config file, refusing what is not a plain readable file.

    `shown` is the name for messages when `path` is a symlink-resolved copy of it.
    """
    name = shown or path
    blame = (from_file, from_line) if from_file else (name, 0)
    try:
        data, _ = read_regular(path, MAX_FILE + 1)  # a FIFO must not hang (php-fpm itself would block there)
    except NotRegular:
        raise ConfigError(*blame, f"{name} is not a regular file") from None
    except OSError as e:
        raise ConfigError(*blame, f"cannot open {name}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise ConfigError(name, 0, f"file larger than {MAX_FILE} bytes")
    return data


_JUNK = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def decode_lines(data: bytes, path: str) -> list[str]:
    """Lines as php-fpm splits them ('\\n' only), after refusing binary content."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = _JUNK.search(data)
    if m:
        line = data.count(b"\n", 0, m.start()) + 1
        raise ConfigError(path, line, f"binary data (byte 0x{m.group()[0]:02x}) in a config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(path, line, "config file is not valid UTF-8") from None
    return text.split("\n")


# ---------------------------------------------------------------------------------------
# php.ini: ${VAR} in pool files looks up php.ini directives before the environment


def read_php_ini(inst: Installation, sysroot: str = "/", environ=None) -> dict[str, str]:
    """The configuration hash php-fpm built from php.ini and its scan dir.

    PHP only warns about a broken php.ini and keeps what it parsed so far; so do we.
    """
    environ = os.environ if environ is None else environ
    table: dict[str, str] = {}
    constants = constants_for(inst.version)
    files = [inst.php_ini]
    scan = inst.ini_scan_dir
    try:
        files += sorted(f"{scan}/{n}" for n in os.listdir(disk(sysroot, scan)) if n.endswith(".ini"))
    except OSError:
        pass
    for path in files:
        where = disk(sysroot, path)
        if not os.path.isfile(where):
            continue
        try:
            data = read_config_bytes(where)
        except ConfigError:
            continue
        text = data.decode("utf-8", errors="replace").replace("\x00", "")
        special = [False]

        def getvar(name):
            value = table.get(name)
            return value if value is not None else environ.get(name, "")

        def sink(kind, name, key, value):
            if kind == "section":
                special[0] = _ci(name[:4]) in ("path", "host")
            elif kind == "entry" and value is not None and not special[0]:
                if _ci(name) not in ("extension", "zend_extension"):
                    table[name] = value

        # Line by line is fast (and equal) for nearly every php.ini; a value spanning
        # lines (legal here, unlike in php-fpm's own files) needs the whole-file parse.
        saved = dict(table)
        try:
            for line in text.split("\n"):
                parse_line(line, getvar, constants, sink)
        except _Syntax:
            table.clear()
            table.update(saved)
            special[0] = False
            try:
                _Parser(_lex(text + "\n"), getvar, constants).statements(sink)
            except _Syntax:
                pass
    return table


def read_pools(inst: Installation, sysroot: str = "/", environ: dict | None = None) -> list[Pool]:
    """Every pool of one installation, as php-fpm would run them; ConfigError if it would refuse."""
    php_ini = read_php_ini(inst, sysroot, environ)
    reader = _Reader(inst, sysroot, environ, php_ini)
    reader.load(inst.config)
    return reader.finish()


def read_all(sysroot: str = "/", environ: dict | None = None) -> list[Pool]:
    """The pools of every installation under `sysroot`, in version order."""
    pools = []
    for inst in find_installations(sysroot):
        pools.extend(read_pools(inst, sysroot, environ))
    return pools
