"""Plain (not booted) Debian roots for tools that must run on a given release, e.g.
Debian 13's lintian. Cached next to the images, keyed by release and package list."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
from pathlib import Path

from .image import CACHE, KEYRING, MIRROR, ImageError, _run

ROOTS = CACHE.parent / "roots"


def userland(release: str, packages: list[str]) -> Path:
    """A directory holding `release` with `packages`, built with mmdebstrap when missing."""
    key = hashlib.sha256(repr((release, sorted(packages), MIRROR)).encode()).hexdigest()[:12]
    final = ROOTS / f"{release}-{key}"
    if (final / ".complete").exists():
        return final
    ROOTS.mkdir(parents=True, exist_ok=True)
    with open(ROOTS / f"{release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".complete").exists():
            return final
        work = ROOTS / f"{final.name}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        log = ROOTS / f"{final.name}.log"
        log.unlink(missing_ok=True)
        _run(["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
              "--include=" + ",".join(packages), release, str(work),
              f"deb [signed-by={KEYRING}] {MIRROR} {release} main"], log, timeout=3600)
        if not work.is_dir():
            raise ImageError(f"mmdebstrap left no root, see {log}")
        (work / ".complete").touch()
        for old in ROOTS.glob(f"{release}-*"):
            if old.is_dir() and old != work:
                shutil.rmtree(old, ignore_errors=True)
        work.rename(final)
    return final


# A root that builds and lints the package on its release (Build-Depends + lintian).
BUILD = ["build-essential", "lintian", "debhelper", "dh-python", "pybuild-plugin-pyproject", "python3-all",
         "python3-setuptools", "dpkg-dev"]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/tmp"}


def host_release() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return ""


def build_deb(release: str, repo: Path, ignore, out: Path) -> tuple[Path, Path]:
    """(the .deb, the .changes) of `repo` built with `release`'s own toolchain, copied to
    `out`: what Debian would ship for that release (e.g. dh_movetousr on Debian 13)."""
    import subprocess

    root = userland(release, BUILD)
    work = root / "tmp" / "pfa-build"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(repo, work / "php-fpm-apparmor", ignore=ignore, symlinks=True)
    try:
        res = subprocess.run(["chroot", str(root), "sh", "-c",
                              "cd /tmp/pfa-build/php-fpm-apparmor && dpkg-buildpackage -us -uc -b"],
                             capture_output=True, text=True, timeout=1800, env=ENV)
        if res.returncode:
            raise ImageError(f"dpkg-buildpackage on {release}: {res.stdout[-2000:]}{res.stderr[-2000:]}")
        out.mkdir(parents=True, exist_ok=True)
        for f in work.glob("php-fpm-apparmor_*"):
            shutil.copy(f, out / f.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (deb,) = out.glob("php-fpm-apparmor_*_all.deb")
    (changes,) = out.glob("php-fpm-apparmor_*.changes")
    return deb, changes


def lintian(release: str, changes: Path) -> tuple[int, str, str]:
    """(exit status, output, lintian version) of `release`'s lintian on a build."""
    import subprocess

    root = userland(release, BUILD)
    work = root / "tmp" / "pfa-lintian"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for f in changes.parent.glob("php-fpm-apparmor_*"):
        if f.is_file():
            shutil.copy(f, work / f.name)
    try:
        res = subprocess.run(["chroot", str(root), "lintian", "--pedantic", "--fail-on", "none",
                              f"/tmp/pfa-lintian/{changes.name}"],
                             capture_output=True, text=True, timeout=900, env=ENV)
        version = subprocess.run(["chroot", str(root), "lintian", "--version"],
                                 capture_output=True, text=True, env=ENV).stdout.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res.returncode, res.stdout + res.stderr, version
