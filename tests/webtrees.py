"""Web server configs in fake system trees, built from Debian's own /etc/nginx and
/etc/apache2 (nginx-common, apache2), and the real binaries run over them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from phpver import VERSION as PHP

CORPUS = Path(__file__).parent / "webserver_corpus"
NGINX_ETC = Path("/etc/nginx")
APACHE_ETC = Path("/etc/apache2")


def nginx_tree(root: Path, sites: dict[str, str]) -> Path:
    """Debian's /etc/nginx below root, each site in sites-available and linked as admins do."""
    etc = root / "etc/nginx"
    etc.mkdir(parents=True, exist_ok=True)
    for name in ("nginx.conf", "fastcgi.conf", "fastcgi_params", "mime.types"):
        shutil.copy(NGINX_ETC / name, etc / name)
    shutil.copytree(NGINX_ETC / "snippets", etc / "snippets", dirs_exist_ok=True)
    for d in ("conf.d", "modules-enabled", "sites-available", "sites-enabled"):
        (etc / d).mkdir(exist_ok=True)
    shutil.copy(NGINX_ETC / "sites-available/default", etc / "sites-available/default")
    for name, text in {"default": None, **sites}.items():
        if text is not None:
            (etc / "sites-available" / name).write_text(text)
        link = etc / "sites-enabled" / name
        if not link.is_symlink():
            link.symlink_to(f"/etc/nginx/sites-available/{name}")  # absolute, like Debian's
    return root


def corpus(kind: str, *names: str) -> dict[str, str]:
    files = sorted((CORPUS / kind).iterdir()) if not names else [CORPUS / kind / n for n in names]
    return {f.name: f.read_text() for f in files}


def _shadow(root: Path, sub: str, shadow: Path) -> None:
    """A copy of root/sub with symlinks followed inside root and /etc/... rewritten to shadow."""
    src = root / sub
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(root)
        dst = shadow / rel
        if path.is_dir() and not path.is_symlink():
            dst.mkdir(parents=True, exist_ok=True)
            continue
        real = path
        if path.is_symlink():
            target = os.readlink(path)
            real = root / target.lstrip("/") if target.startswith("/") else path.parent / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if real.is_file():
            text = real.read_text(errors="surrogateescape")
            text = text.replace(f"/{sub}", f"{shadow}/{sub}")
            dst.write_text(text, errors="surrogateescape")


def real_nginx(root: Path, *flags: str) -> tuple[subprocess.CompletedProcess, Path]:
    """nginx -t/-T over root's /etc/nginx (paths rewritten into a shadow copy)."""
    shadow = root.parent / (root.name + "-nginx")
    shutil.rmtree(shadow, ignore_errors=True)
    _shadow(root, "etc/nginx", shadow)
    conf = shadow / "etc/nginx/nginx.conf"
    proc = subprocess.run(["nginx", *flags, "-c", str(conf), "-e", "stderr"],
                          capture_output=True, text=True, timeout=120)
    return proc, shadow


def nginx_dump_files(stdout: str, shadow: Path) -> dict[str, str]:
    from php_fpm_apparmor import nginx
    _, files = nginx.split_dump(stdout)
    return {p.replace(str(shadow), "", 1): t.replace(str(shadow), "") for p, t in files.items()}


def apache_tree(root: Path, sites: dict[str, str], confs=(f"php{PHP}-fpm",)) -> Path:
    """Debian's /etc/apache2 below root: mod_php off, proxy_fcgi on, the sites enabled."""
    etc = root / "etc/apache2"
    shutil.copytree(APACHE_ETC, etc, symlinks=True, dirs_exist_ok=True)
    mods = etc / "mods-enabled"
    for f in mods.glob("php*"):
        f.unlink()
    for m in ("proxy.load", "proxy.conf", "proxy_fcgi.load"):
        if not (mods / m).exists() and (etc / "mods-available" / m).exists():
            (mods / m).symlink_to(f"../mods-available/{m}")
    for c in confs:
        link = etc / "conf-enabled" / f"{c}.conf"
        if not link.is_symlink():
            link.symlink_to(f"../conf-available/{c}.conf")
    for name, text in sites.items():
        (etc / "sites-available" / name).write_text(text)
        link = etc / "sites-enabled" / name
        if not link.is_symlink():
            link.symlink_to(f"../sites-available/{name}")
    return root


def real_apache(root: Path, *flags: str) -> subprocess.CompletedProcess:
    """apache2ctl over root's /etc/apache2 (Debian's APACHE_CONFDIR: ServerRoot is there)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "APACHE_CONFDIR": str(root / "etc/apache2"), "LANG": "C"}
    return subprocess.run(["apache2ctl", *flags], capture_output=True, text=True, timeout=120, env=env)
