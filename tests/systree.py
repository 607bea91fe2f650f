"""Build small fake system trees (a "/" under tmp) with PHP-FPM pools, for --root runs."""

from __future__ import annotations

import os
from pathlib import Path

FPM_CONF = """[global]
pid = /run/php/php{v}-fpm.pid
error_log = /var/log/php{v}-fpm.log
include=/etc/php/{v}/fpm/pool.d/*.conf
"""


def pool_conf(name: str, root: str | None = None, hat: str | None = None, extra: str = "") -> str:
    lines = [f"[{name}]", "user = www-data", "group = www-data",
             f"listen = /run/php/{name}.sock", "listen.owner = www-data", "listen.group = www-data",
             "pm = ondemand", "pm.max_children = 5"]
    if hat is not None:
        lines.append(f"apparmor_hat = {hat}")
    if root is not None:
        lines.append(f"chdir = {root}")
    return "\n".join(lines) + "\n" + extra


def make_tree(base: Path, pools: dict, version: str = "8.2", sites: bool = True) -> Path:
    """pools: {file stem: pool .conf text}. Creates roots named in chdir = lines."""
    etc = base / f"etc/php/{version}/fpm"
    (etc / "pool.d").mkdir(parents=True, exist_ok=True)
    (etc / "php-fpm.conf").write_text(FPM_CONF.format(v=version))
    (etc / "php.ini").write_text("[PHP]\nengine = On\n")
    sbin = base / "usr/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    (sbin / f"php-fpm{version}").touch()
    for stem, text in pools.items():
        (etc / "pool.d" / f"{stem}.conf").write_text(text)
        for line in text.splitlines():
            if sites and line.startswith("chdir = "):
                root = base / line.split("=", 1)[1].strip().lstrip("/")
                root.mkdir(parents=True, exist_ok=True)
                (root / "index.php").write_text("<?php echo 'hi';\n")
    (base / "etc/apparmor.d/php-fpm.d").mkdir(parents=True, exist_ok=True)
    passwd = base / "etc/passwd"
    if not passwd.exists():  # php-fpm (and so our reader) refuses unknown users
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        (base / "etc/group").write_text("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n")
    return base


def snapshot(base: Path) -> dict:
    """Every file below etc/apparmor.d with its bytes: to prove nothing changed."""
    d = base / "etc/apparmor.d"
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
