"""The typed policy model: what one pool may do, every rule with its provenance.

Plugins and the core build rules from these dataclasses only; there is no way to hand
the renderer raw AppArmor text. Paths are AARE patterns: any part that comes from a
config file or the disk goes through `lit()`, so it can only ever match itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

# Where a rule lands. HAT is the pool's hat, MASTER the php-fpm parent profile (the file
# is pasted into its body); any other value names a child profile `<hat>_<name>`.
HAT = "hat"
MASTER = "master"

# Characters with a meaning in AARE; a literal path escapes them with a backslash.
_AARE_SPECIAL = re.compile(r'([\\*?\[\]{}^"])')
# Control characters (newline above all) cannot be expressed safely: refused, not escaped.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
FILE_PERMS = set("rwaklm")


def lit(path: str) -> str:
    """Escape a literal path (from config or disk) so AppArmor matches exactly that path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    if _CONTROL.search(path):
        raise ValueError(f"path contains a control character: {path!r}")
    # "@{" would start a variable; escaping "{" already defuses it.
    return _AARE_SPECIAL.sub(r"\\\1", path)


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

    @property
    def hat_profile(self) -> Profile:
        return self.profiles[0]

    def child_name(self, helper: str) -> str:
        return f"{self.hat}_{helper}"
