"""Step 2: where each pool's PHP code lives, canonicalised the way AppArmor sees paths.

Roots come from the tool's own config (/etc/php-fpm-apparmor/php-fpm-apparmor.conf, a
section per pool) or are inferred from chdir, doc_root and open_basedir. AppArmor
matches resolved paths, so every root is realpath'd inside the system root.
"""

from __future__ import annotations

import configparser
import os
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
    origin: str = ""  # where the roots came from (config section or inferred from which key)

    def disk(self, path: str, *more: str) -> Path:
        """The file on disk for a system path (below --root when testing or demoing)."""
        return Path(self.sysroot, path.lstrip("/"), *more)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.settings.get(name)
        if value is None:
            return default
        return value.strip().lower() in TRUE

    def canonical(self, path: str) -> str:
        """realpath of a system path, following symlinks inside the system root only."""
        return canonical(self.sysroot, path)


def canonical(sysroot: str, path: str) -> str:
    """Resolve `path` as the live system would, treating `sysroot` as "/"."""
    if sysroot in ("/", ""):
        return os.path.realpath(path)
    root = os.path.realpath(sysroot)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:  # same bound as the kernel's symlink loop limit
                raise ConfigError(path, None, "too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return "/" + "/".join(resolved)
