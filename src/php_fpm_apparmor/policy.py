"""The typed policy model: what one pool may do, every rule with its provenance.

Plugins and the core build rules from these dataclasses only; there is no way to hand
the renderer raw AppArmor text. Paths are AARE patterns: any part that comes from a
config file or the disk goes through `lit()`, so it can only ever match itself.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, fields
from typing import Union

from .errors import PluginError

# Where a rule lands. HAT is the pool's hat, MASTER the php-fpm parent profile (the file
# is pasted into its body); any other value names a child profile `<hat>_<name>`.
HAT = "hat"
MASTER = "master"
PARENT = "php-fpm"  # the one profile that covers every /usr/sbin/php-fpm* binary
SHARED_SH = "_sh"  # children shared by every pool, in php-fpm.d/_shared
SHARED_SENDMAIL = "_sendmail"

# Characters with a meaning in AARE; a literal path escapes them with a backslash.
_AARE_SPECIAL = re.compile(r'([\\*?\[\]{}^"])')
# Control characters (newline above all) cannot be expressed safely: refused, not escaped.
# C0/C1 controls, Unicode line/paragraph separators (str.splitlines() breaks on them) and
# surrogates (undecodable bytes in a file name)
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
FILE_PERMS = set("rwaklm")


def lit(path: str) -> str:
    """Escape a literal path (from config or disk) so AppArmor matches exactly that path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    if CONTROL.search(path):
        raise ValueError(f"path contains a control character: {path!r}")
    # "@{" would start a variable; escaping "{" already defuses it. (Most paths have
    # nothing to escape: one search, not a substitution's template per call.)
    return _AARE_SPECIAL.sub(r"\\\1", path) if _AARE_SPECIAL.search(path) else path


def under(path: str, glob: str = "") -> str:
    """`lit(path)` followed by a trusted glob suffix written by plugin code, e.g. "/**"."""
    return lit(path.rstrip("/") or "/") + glob


@dataclass(frozen=True)
class Rule:
    """Fields every rule has: the profile it lands in and why it exists."""

    source: str = "core"
    why: str = ""
    profile: str = HAT


@dataclass(frozen=True)
class FileRule(Rule):
    path: str = ""  # AARE, built with lit()/under()
    perms: str = "r"  # subset of "rwaklm"; exec is ExecRule
    owner: bool = False
    deny: bool = False
    audit: bool = False  # log it even when allowed, or (with deny) when it refuses: deny alone is silent

    def __post_init__(self):
        if not self.path.startswith("/") and not self.path.startswith("@{"):
            raise ValueError(f"file rule path must be absolute: {self.path!r}")
        if not self.perms or set(self.perms) - FILE_PERMS:
            raise ValueError(f"bad file permissions {self.perms!r} for {self.path}")


@dataclass(frozen=True)
class ExecRule(Rule):
    """Running a program. `mode` is ix (inherit), Px/Cx (into `target`); never ux."""

    path: str = ""
    mode: str = "ix"
    target: str | None = None  # helper name for a child profile of this pool, or None

    def __post_init__(self):
        if self.mode not in ("ix", "Px", "Cx"):
            raise ValueError(f"exec mode {self.mode!r} is not allowed (only ix, Px, Cx)")
        if self.mode != "ix" and not self.target:
            raise ValueError(f"{self.mode} needs a target child profile")


@dataclass(frozen=True)
class NetworkRule(Rule):
    domain: str = ""  # inet, inet6, unix, netlink or "" for all
    type: str = ""  # stream, dgram, raw or ""


@dataclass(frozen=True)
class CapabilityRule(Rule):
    name: str = ""


@dataclass(frozen=True)
class SignalRule(Rule):
    access: str = "send"  # send | receive
    signals: tuple[str, ...] = ()
    peer: str = ""  # profile name, e.g. "php-fpm" or "php-fpm//blog"


@dataclass(frozen=True)
class PtraceRule(Rule):
    access: str = "trace,read"
    peer: str = ""


@dataclass(frozen=True)
class IncludeRule(Rule):
    """An abstraction by name, e.g. "abstractions/base" (constants in code, never config)."""

    name: str = ""
    if_exists: bool = False


AnyRule = Union[FileRule, ExecRule, NetworkRule, CapabilityRule, SignalRule, PtraceRule, IncludeRule]


@dataclass(frozen=True)
class WriteException:
    """A plugin's named, explained permission to write one exact forbidden-looking pattern."""

    path: str  # the exact AARE of the FileRule it allows
    why: str
    source: str = ""


@dataclass(frozen=True)
class DataDir(Rule):
    """A directory an app writes outside the site roots (Nextcloud's data, a WordPress
    content dir elsewhere). Returned among a plugin's rules, it renders no rule itself: it
    makes that directory the pool's own, so the pool's write rules may land there (a write
    anywhere else is refused) and no other pool may reach it."""

    path: str = ""  # a canonical path, literal (not a glob)

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path.startswith("/") or CONTROL.search(self.path):
            raise ValueError(f"data dir must be an absolute path: {self.path!r}")


@dataclass
class Profile:
    name: str  # full name inside the parent: hat name, or "<hat>_<helper>" for a child
    kind: str  # "hat" or "profile"
    mode: str = "enforce"  # enforce | complain
    rules: list = field(default_factory=list)
    local_include: str | None = None  # "local/php-fpm.d/<name>", never written by us


@dataclass
class PoolPolicy:
    """Everything rendered into one php-fpm.d/<hat> file."""

    hat: str
    pool: object  # pools.Pool
    site: object  # sites.Site
    apps: list = field(default_factory=list)
    master: list = field(default_factory=list)  # rules for the php-fpm parent profile
    profiles: list = field(default_factory=list)  # [hat Profile, child Profiles...]
    exceptions: list = field(default_factory=list)
    data_dirs: list = field(default_factory=list)  # DataDir, from the plugins

    @property
    def hat_profile(self) -> Profile:
        return self.profiles[0]

    def child_name(self, helper: str) -> str:
        # "_name" is a profile every pool shares (hats never start with "_")
        return helper if helper.startswith("_") else f"{self.hat}_{helper}"


# ---------------------------------------------------------------------------------------
# Building one pool's policy: the core rules every PHP-FPM worker needs, then the plugins'.

SHELLS = ("/usr/bin/dash", "/bin/dash", "/usr/bin/sh", "/bin/sh")  # popen() runs /bin/sh -c
DEFAULT_SENDMAIL = "/usr/sbin/sendmail -t -i"
FPM_SIGNALS = ("term", "kill", "quit", "int", "usr1", "usr2")
# Name lookups and TLS for outgoing HTTP (update checks, APIs), without abstractions/
# nameservice, which would also hand every pool /etc/passwd and /etc/group.
RESOLVER_FILES = ("/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/nsswitch.conf",
                  "/etc/gai.conf", "/run/systemd/resolve/stub-resolv.conf",
                  "/run/systemd/resolve/resolv.conf", "/etc/ssl/openssl.cnf")
# Code names: ONE case-insensitive list, shared by the deny globs below and by the
# invariants (invariants.py), so what the check refuses and what the kernel denies agree.
# Extensions Debian's nginx/Apache PHP handlers run (.php, .phtml, .phar; .php3-.php8,
# .pht in many panels' configs), .phps (Apache's source handler) and .inc (included by
# convention: a template cache written as .inc is code too). Plus the files that change
# what the server or PHP runs: .htaccess (Apache), .user.ini (auto_prepend_file),
# .maintenance (WordPress includes it). Matched case-insensitively everywhere, and as a
# name of their own too ("/dir/.php"): stricter than any server, never looser.
CODE_EXTENSIONS = ("php", "php[0-9]", "pht", "phtml", "phar", "phps", "inc")
CODE_FILES = (".htaccess", ".user.ini", ".maintenance")


def fold(glob: str) -> str:
    """A glob matching `glob` case-insensitively: letters outside [...] become [xX]."""
    out, in_class = [], False
    for c in glob:
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif not in_class and c.isalpha() and c.lower() != c.upper():
            c = f"[{c.lower()}{c.upper()}]"
        out.append(c)
    return "".join(out)


# Below a directory (appended after "dir/"): any code file in or below it. `{,**}`, not
# `**`: apparmor_parser lets a `**` right after "/" match nothing only when text follows,
# and the empty branch says so plainly (python3-apparmor's reading needs it too).
CODE_EXT_GLOB = "{,**}.{" + ",".join(fold(e) for e in CODE_EXTENSIONS) + "}"
CODE_FILE_GLOB = "{,**/}{" + ",".join(fold(n) for n in CODE_FILES) + "}"
NEVER_WRITE_GLOBS = ("/" + CODE_EXT_GLOB, "/" + CODE_FILE_GLOB)
# Any path whose name is a code name: the language the invariants test rules against.
CODE_NAMES = "/{" + CODE_EXT_GLOB + "," + CODE_FILE_GLOB + "}"


def is_code_name(path: str) -> bool:
    """Is `path` (a plain path) a code name: the one list above, case-insensitively?"""
    from . import automata

    return automata.glob_matches(CODE_NAMES, path)


def code_denies(directory: str, **kw) -> list:
    """Deny (audited) writes of code names in and below a writable directory."""
    return [FileRule(path=under(directory, glob), perms="wl", deny=True, audit=True, **kw)
            for glob in NEVER_WRITE_GLOBS]


CA_DIRS = ("/etc/ssl/certs/{,**}", "/etc/ca-certificates/{,**}", "/usr/share/ca-certificates/{,**}",
           "/usr/local/share/ca-certificates/{,**}")
# Mail transfer agents' sendmail front ends need their own config and spool.
MTA_READ = ("/etc/mailname", "/etc/aliases", "/etc/postfix/", "/etc/exim4/", "/etc/msmtprc",
            "/etc/ssmtp/")
MTA_WRITE = ("/var/spool/postfix/maildrop/", "/var/spool/exim4/", "/var/spool/mail-php/")


def never_code(path: str, profile: str = HAT, why: str = "never PHP code or server config here") -> list:
    """Audit-deny rules for writing or linking code or server config (the core's one list:
    PHP names in any case, .htaccess, .user.ini, .maintenance) anywhere below `path`. A
    writable tree (`under(path, "/**")` with w) is refused by the generator without them."""
    return code_denies(path, profile=profile, why=why)


def _session_dir(value: str | None) -> str | None:
    # session.save_path is "[N;[MODE;]]/path" for the files handler.
    if not value:
        return None
    path = value.split(";")[-1].strip()
    return path if path.startswith("/") else None


def _first_word(cmd: str) -> str | None:
    word = cmd.strip().split(" ")[0] if cmd and cmd.strip() else ""
    return word if word.startswith("/") else None


def runtime_dirs(pool) -> dict[str, str]:
    """The dirs PHP itself writes for a pool, each from the setting that names it (or
    PHP's and Debian's defaults), as the worker names them."""
    tmp = pool.env.get("TMPDIR") or pool.ini("sys_temp_dir") or "/tmp"
    dirs = {"upload_tmp_dir": pool.ini("upload_tmp_dir") or tmp, "sys_temp_dir": tmp}
    if (pool.ini("session.save_handler") or "files").strip() == "files":
        dirs["session.save_path"] = _session_dir(pool.ini("session.save_path")) or "/var/lib/php/sessions"
    return {k: v.rstrip("/") or "/" for k, v in dirs.items() if v.startswith("/")}


# abstractions/base lets any process write and run files in an ecryptfs home's .Private
# (mrixwlk): no worker or helper needs that, and a path both written and run is what the
# checks forbid. Every profile of ours that includes base takes the write and link back.
ECRYPTFS_PRIVATE = ("@{HOME}/.Private/**", "@{HOMEDIRS}/.ecryptfs/*/.Private/**")


def base_denies(profile: str) -> list:
    return [FileRule(path=d, perms="wl", deny=True, source="core", profile=profile,
                     why="abstractions/base's ecryptfs dirs: never written") for d in ECRYPTFS_PRIVATE]


@functools.lru_cache(maxsize=1)
def _every_hat() -> tuple:
    """The rules every hat has, whatever its pool: built once (the rules are frozen)."""
    why = lambda text: {"source": "core", "why": text}  # noqa: E731
    rules = []
    rules.append(IncludeRule(name="abstractions/base", **why("libc, locale, /dev/null and friends")))
    rules += base_denies(HAT)
    # The CA store only, not abstractions/ssl_certs: its ACME/certbot lines are of no use
    # to PHP and it adds compile time to every pool.
    for d in CA_DIRS:
        rules.append(FileRule(path=d, perms="r", **why("CA certificates for outgoing HTTPS")))
    for path in RESOLVER_FILES:
        rules.append(FileRule(path=lit(path), perms="r", **why("name resolution and TLS config")))
    rules.append(FileRule(path="/usr/share/zoneinfo/**", perms="r", **why("date.timezone")))
    rules.append(FileRule(path="/usr/share/php/**", perms="r", **why("Debian's PHP libraries (PEAR and co.)")))
    rules.append(FileRule(path="/tmp/.ZendSem.*", perms="k", **why("opcache lock file")))
    # Not `owner`: a worker's /proc/<pid> is root's once php-fpm drops to the pool's user
    # (not dumpable), so an owner rule never matched (booted Debian 12 and 13). Another
    # process's label stays closed: opening attr/ takes a ptrace read, which a hat may
    # only do with the master.
    rules.append(FileRule(path="@{PROC}/@{pid}/attr/{,apparmor/}current", perms="r",
                          **why("its own AppArmor label (libapparmor's aa_getcon)")))
    for domain in ("inet", "inet6"):
        for kind in ("stream", "dgram"):
            rules.append(NetworkRule(domain=domain, type=kind, **why("database, cache and HTTP clients")))
    rules.append(NetworkRule(domain="unix", type="stream", **why("local database and cache sockets")))
    rules.append(NetworkRule(domain="unix", type="dgram", **why("syslog()")))
    rules.append(NetworkRule(domain="netlink", type="raw", **why("getaddrinfo() interface lookup")))
    return tuple(rules)


def core_rules(site, hat: str) -> tuple[list, list]:
    """(master rules, hat rules) that any pool needs, from its php-fpm and php.ini settings."""
    pool = site.pool
    why = lambda text: {"source": "core", "why": text}  # noqa: E731
    master, hat_rules = [], []
    peer = f"{PARENT}//{hat}"
    listen = pool.listen or ""
    if listen.startswith("/"):
        sock = lit(site.canonical(listen))
        master.append(FileRule(path=sock, perms="rwlk", **why(f"listen socket {listen}")))
        # The worker inherits the socket fd; AppArmor re-checks it under the hat.
        hat_rules.append(FileRule(path=sock, perms="rw", **why("inherited listen socket")))
    elif listen:
        master.append(NetworkRule(domain="inet", type="stream", **why(f"listen on {listen}")))
        master.append(NetworkRule(domain="inet6", type="stream", **why(f"listen on {listen}")))
    master.append(SignalRule(access="send", signals=FPM_SIGNALS, peer=peer, **why("stop and reload workers")))
    hat_rules.append(SignalRule(access="receive", signals=FPM_SIGNALS, peer=PARENT, **why("signals from the master")))
    for key, value in (("access.log", pool.access_log), ("slowlog", pool.slowlog)):
        if value and value.startswith("/"):
            path = lit(site.canonical(value))
            master.append(FileRule(path=path, perms="w", **why(f"{key} {value}")))
            if key == "access.log":
                hat_rules.append(FileRule(path=path, perms="w", **why("inherited access.log fd")))
    if pool.slowlog:
        master.append(PtraceRule(access="trace,read", peer=peer, **why("slowlog reads worker stacks")))
        hat_rules.append(PtraceRule(access="readby,tracedby", peer=PARENT, **why("slowlog traced by master")))
    if pool.chroot:
        master.append(CapabilityRule(name="sys_chroot", **why(f"chroot {pool.chroot}")))
    directives = pool.directives
    if any(directives.get(k) for k in ("rlimit_files", "rlimit_core")):
        master.append(CapabilityRule(name="sys_resource", **why("pool sets rlimits")))
    if directives.get("process.priority"):
        master.append(CapabilityRule(name="sys_nice", **why("pool sets process.priority")))

    hat_rules += _every_hat()

    if pool.chroot:
        jail = site.canonical(pool.chroot)
        for dev in ("null", "zero", "random", "urandom"):
            hat_rules.append(FileRule(path=under(jail, f"/dev/{dev}"), perms="rw", **why("devices inside the chroot")))
        for path in RESOLVER_FILES:
            hat_rules.append(FileRule(path=under(jail, path), perms="r", **why("name resolution inside the chroot")))
    for root in site.roots:
        hat_rules.append(FileRule(path=under(root, "/"), perms="r", **why("site root")))
        hat_rules.append(FileRule(path=under(root, "/**"), perms="r", **why("site code and data (read only)")))
    for path in site.read_paths:
        hat_rules.append(FileRule(path=under(path, "{,/**}"), perms="r", source="config", why="read = in php-fpm-apparmor.conf"))
    for path in site.write_paths:
        hat_rules.append(FileRule(path=under(path, "/"), perms="r", source="config", why="write = in php-fpm-apparmor.conf"))
        hat_rules.append(FileRule(path=under(path, "/**"), perms="rwk", owner=False, source="config", why="write = in php-fpm-apparmor.conf"))
        # A writable dir may be web-served through a symlink (Laravel's public/storage):
        # code and server config stay unwritable there, whatever else is allowed.
        hat_rules += code_denies(path, source="config", why="write = never covers PHP code or server config")

    for key, value in sorted(runtime_dirs(pool).items()):
        d = site.worker(value)
        if key == "session.save_path":
            # Debian's default dir is shared by every pool: sess_* only, never list it.
            hat_rules.append(FileRule(path=under(d, "/sess_*"), perms="rwk", owner=True, **why(key)))
        else:
            hat_rules.append(FileRule(path=under(d, "/"), perms="r", **why(key)))
            hat_rules.append(FileRule(path=under(d, "/*"), perms="rwk", owner=True, **why(key)))
        # PHP's scratch space is no place for code: an include of a dropped file there is
        # how a write becomes a run (template caches included from /tmp need an exception).
        hat_rules += code_denies(d, **why(f"{key}: never code"))
    error_log = pool.ini("error_log")
    if error_log and error_log.startswith("/"):
        hat_rules.append(FileRule(path=lit(site.worker(error_log)), perms="w", **why("error_log")))
    cache = pool.ini("opcache.file_cache")
    if cache and cache.startswith("/"):
        d = site.worker(cache)
        hat_rules.append(FileRule(path=under(d, "/**/"), perms="rw", **why("opcache.file_cache dirs")))
        hat_rules.append(FileRule(path=under(d, "/**.bin"), perms="rw", owner=True, **why("opcache.file_cache")))
    return [_with(r, "profile", MASTER) for r in master], hat_rules


def shell_rules() -> list:
    """Where popen()/mail() land: the shell, in the `sh` child (shared unless a plugin adds
    to it), which may run sendmail only into the shared `_sendmail` profile."""
    return [ExecRule(path=lit(s), mode="Px", target="sh", source="core", why="popen()/mail() run /bin/sh -c")
            for s in SHELLS]


def jailed(pool, cmd: str) -> str:
    """A command as AppArmor sees the file it runs: below the chroot for a chrooted pool."""
    chroot = (getattr(pool, "chroot", None) or "").rstrip("/")
    return chroot + cmd if chroot and cmd.startswith("/") else cmd


def _shell_body(profile: str, sendmails=(DEFAULT_SENDMAIL,), jail: str = "") -> list:
    why = lambda text: {"source": "core", "why": text, "profile": profile}  # noqa: E731
    rules = [IncludeRule(name="abstractions/base", **why("libc"))]  # base_denies: added by the callers
    rules += [FileRule(path=lit(jail + s), perms="mr", **why("the shell itself")) for s in SHELLS]
    for cmd in sendmails:
        binary = _first_word(cmd or DEFAULT_SENDMAIL)
        if binary:
            rules.append(ExecRule(path=lit(binary), mode="Px", target=SHARED_SENDMAIL,
                                  **why(f"mail() via sendmail_path {cmd or DEFAULT_SENDMAIL}")))
    return rules


def shared_profiles(sendmail_cmds) -> list[Profile]:
    """The children every pool shares: no site paths in them, so one copy serves all
    pools and is compiled once, not once per pool (compile time is the cost that grows)."""
    cmds = sorted({c or DEFAULT_SENDMAIL for c in sendmail_cmds} | {DEFAULT_SENDMAIL})
    binaries = sorted({b for b in map(_first_word, cmds) if b})
    why = lambda text: {"source": "core", "why": text, "profile": SHARED_SENDMAIL}  # noqa: E731
    mail = [IncludeRule(name="abstractions/base", **why("libc")), *base_denies(SHARED_SENDMAIL),
            NetworkRule(domain="inet", type="stream", **why("SMTP relay (msmtp, ssmtp)")),
            NetworkRule(domain="inet6", type="stream", **why("SMTP relay (msmtp, ssmtp)"))]
    mail += [FileRule(path=lit(b), perms="mr", **why("the sendmail binaries of the pools")) for b in binaries]
    # sendmail stand-ins and wrappers are often scripts
    mail += [ExecRule(path=lit(s), mode="ix", **why("sendmail wrapper scripts")) for s in SHELLS]
    # The few name-service files an MTA front end reads, not abstractions/nameservice:
    # that include alone costs ~0.14 s of compile.
    mail += [FileRule(path=lit(p), perms="r", **why("MTA looks up users and hosts"))
             for p in ("/etc/passwd", "/etc/group") + RESOLVER_FILES]
    mail += [FileRule(path=lit(d) + ("**" if d.endswith("/") else ""), perms="r", **why("MTA configuration"))
             for d in MTA_READ]
    mail += [FileRule(path=lit(d) + "**", perms="rwk", **why("MTA queue")) for d in MTA_WRITE]
    mail += [ExecRule(path=lit(p), mode="ix", **why("MTA queue helper"))
             for p in ("/usr/sbin/postdrop", "/usr/sbin/exim4")]
    sh = _shell_body(SHARED_SH, cmds) + base_denies(SHARED_SH)
    return [Profile(SHARED_SH, "profile", rules=sh, local_include=f"local/php-fpm.d/{SHARED_SH}"),
            Profile(SHARED_SENDMAIL, "profile", rules=mail, local_include=f"local/php-fpm.d/{SHARED_SENDMAIL}")]


def build(site, apps, plugins) -> PoolPolicy:
    """Core rules + every plugin's rules and exceptions for one site, sorted into profiles."""
    hat = site.hat
    policy = PoolPolicy(hat=hat, pool=site.pool, site=site, apps=list(apps))
    master, hat_rules = core_rules(site, hat)
    rules = [*master, *hat_rules, *shell_rules()]
    for app in apps:
        for plugin, rule in plugins.call("php_fpm_apparmor_rules", with_names=True, site=site, app=app):
            _check_rule(plugin, rule)
            # Provenance is who really returned the rule, whatever it claims.
            if isinstance(rule, DataDir):
                policy.data_dirs.append(_restamp(rule, plugin))
                continue
            rules.append(_restamp(rule, plugin))
        for plugin, exc in plugins.call("php_fpm_apparmor_exceptions", with_names=True, site=site, app=app):
            if not isinstance(exc, WriteException) or not isinstance(exc.path, str) or not isinstance(exc.why, str):
                raise PluginError(plugin, "php_fpm_apparmor_exceptions", f"returned {_short(exc)}, not a WriteException")
            policy.exceptions.append(WriteException(path=exc.path, why=exc.why, source=plugin))
    # A plugin's exception for a whole temp or session dir ("<dir>/**", phpMyAdmin's Twig
    # cache) lifts the core's code deny there: a deny would beat the exception.
    excepted = {x.path for x in policy.exceptions if x.path.endswith("/**")}
    if excepted:  # rare: two passes over the pool's rules saved for the others
        lifted = {r.path for r in rules if isinstance(r, FileRule) and r.deny and r.source == "core"
                  and any(r.path.endswith(g) and r.path[: -len(g)] + "/**" in excepted for g in NEVER_WRITE_GLOBS)}
        rules = [r for r in rules if not (isinstance(r, FileRule) and r.deny and r.path in lifted)]
    sendmail = jailed(site.pool, site.pool.ini("sendmail_path") or DEFAULT_SENDMAIL)
    jail = (site.pool.chroot or "").rstrip("/")
    if jail:  # a chrooted worker's /bin/sh is the jail's
        rules += [ExecRule(path=lit(jail + s), mode="Px", target="sh", source="core",
                           why="popen()/mail() run the jail's /bin/sh -c") for s in SHELLS]
    if site.mode == "complain" or jail or any(r.profile == "sh" for r in rules):
        # A plugin widened this pool's shell, the pool is learning (complain must not block
        # what its shell runs) or chrooted: it gets a `<hat>_sh` of its own.
        rules += _shell_body("sh", [sendmail], jail)
    else:
        rules = [_with(r, "target", SHARED_SH) if isinstance(r, ExecRule) and r.target == "sh" else r for r in rules]
    based = {r.profile for r in rules if isinstance(r, IncludeRule) and r.name == "abstractions/base"}
    rules += [d for name in sorted(based - {HAT, MASTER}) for d in base_denies(name)]  # <hat>_sh, plugins' children
    profiles: dict[str, Profile] = {}

    def profile(name: str) -> Profile:
        if name not in profiles:
            full = hat if name == HAT else policy.child_name(name)
            if name != HAT and not SAFE_NAME.match(full):
                raise ValueError(f"bad child profile name {name!r}")
            profiles[name] = Profile(name=full, kind="hat" if name == HAT else "profile",
                                     mode=site.mode,
                                     local_include=f"local/php-fpm.d/{full}")
        return profiles[name]

    profile(HAT)
    for rule in rules:
        if rule.profile == MASTER:
            policy.master.append(rule)
        else:
            profile(rule.profile).rules.append(rule)
        if isinstance(rule, ExecRule) and rule.mode != "ix" and not rule.target.startswith("_"):
            profile(rule.target)  # every transition target exists, even if empty
    policy.profiles = [profiles[HAT]] + [profiles[k] for k in sorted(profiles) if k != HAT]
    return policy


def _short(value) -> str:
    from .plugins import short
    return short(value)


# rule class -> (field name, what its value must be) for each of its fields: asked once
# per class, not per rule (a thousand pools' plugins return some twenty thousand rules)
_FIELDS: dict = {}


def _field_kinds(kind) -> tuple:
    return tuple((f.name, "signals" if f.name == "signals" else "target" if f.name == "target"
                  else "bool" if f.type in ("bool",) else "str") for f in fields(kind))


def _check_rule(plugin: str, rule) -> None:
    """A rule object of ours, with string fields, aimed at the plugin's own profiles."""
    hook = "php_fpm_apparmor_rules"
    if not isinstance(rule, Rule):
        raise PluginError(plugin, hook, f"returned {_short(rule)} ({type(rule).__name__}), not a policy rule")
    kind = type(rule)
    checks = _FIELDS.get(kind)
    if checks is None:
        checks = _FIELDS[kind] = _field_kinds(kind)
    for name, must in checks:
        value = getattr(rule, name)
        if must == "str":
            bad = not isinstance(value, str)
        elif must == "bool":
            bad = not isinstance(value, bool)
        elif must == "target":
            bad = value is not None and not isinstance(value, str)
        else:
            bad = not isinstance(value, tuple) or not all(isinstance(v, str) for v in value)
        if bad:
            raise PluginError(plugin, hook, f"returned {_short(rule)}: its {name} is {_short(value)}")
    if rule.profile.startswith("_") or (getattr(rule, "target", None) or "").startswith("_"):
        raise PluginError(plugin, hook, f"returned {_short(rule)}: profiles named _* are the shared ones, "
                                        f"not a plugin's")
    # Everything render would refuse later, refused here, where the plugin can be named.
    if type(rule) not in PLUGIN_RULE_TYPES:  # a subclass could override what render reads
        raise PluginError(plugin, hook, f"returned {_short(rule)} ({type(rule).__name__}), not one of "
                                        f"{', '.join(t.__name__ for t in PLUGIN_RULE_TYPES)}")
    for name in (rule.profile, getattr(rule, "target", None)):
        if name is not None and name not in (HAT, MASTER) and not SAFE_NAME.match(name):
            raise PluginError(plugin, hook, f"returned {_short(rule)}: {_short(name)} is not a child "
                                            f"profile name ({SAFE_NAME.pattern})")
    if isinstance(rule, IncludeRule) and rule.name not in PLUGIN_ABSTRACTIONS:
        raise PluginError(plugin, hook, f"returned {_short(rule)}: a plugin includes only "
                                        f"{', '.join(sorted(PLUGIN_ABSTRACTIONS))}")
    render = _render()
    try:
        post_init = getattr(rule, "__post_init__", None)
        if post_init is not None:  # again: object.__setattr__ can change a frozen rule after it
            post_init()
        if isinstance(rule, ExecRule):
            render.quote(rule.path)
        elif isinstance(rule, DataDir):  # renders no rule: a literal path the pool owns
            lit(rule.path)
        else:
            render.rule_text(rule)
    except (ValueError, TypeError) as exc:
        from .plugins import one_line
        raise PluginError(plugin, hook, f"returned {_short(rule)}: {one_line(str(exc))}") from None


@functools.cache
def _render():
    from . import render  # render imports this module: not at import time
    return render


PLUGIN_RULE_TYPES = (FileRule, ExecRule, NetworkRule, CapabilityRule, SignalRule, PtraceRule, IncludeRule,
                     DataDir)
# The abstractions a plugin may include: an include is text the checks do not expand, so
# only those whose rules write nothing a hat may not hold (tests/test_plugin_boundary_review.py
# expands each with the real parser on Debian 12 and 13). Not abstractions/php (every
# pool's sessions, not owner), user-tmp (all of /tmp writable: a webshell's drop), ssl_keys.
PLUGIN_ABSTRACTIONS = frozenset(f"abstractions/{n}" for n in (
    "base", "fonts", "nameservice", "kerberosclient", "ssl_certs", "openssl", "mysql"))


def _restamp(rule, plugin: str):
    return rule if rule.source == plugin else _with(rule, "source", plugin)


def _with(rule, name: str, value: str):
    """A copy of a checked rule with one field set to a name of ours (its source, the
    master's or the shared shell's profile): dataclasses.replace() would run the checks
    again, once per rule (a tenth of a thousand pools' policy time)."""
    new = object.__new__(type(rule))
    new.__dict__.update(rule.__dict__)
    object.__setattr__(new, name, value)
    return new
