"""Build the Debian package once from a copy of the work tree (clean PATH, no network)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKG = "php-fpm-apparmor"
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/tmp"}
# Not part of the package build: local state and other people's scratch.
IGNORE = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".pytest_cache",
                                ".hypothesis", "build", "artifacts", ".cache")


class BuildDepsMissing(Exception):
    pass


def build(top: Path) -> tuple[Path, Path, float]:
    """(the .deb, the .changes, build seconds), built under `top`."""
    src = top / PKG
    shutil.copytree(REPO, src, ignore=IGNORE, symlinks=True)
    deps = subprocess.run(["dpkg-checkbuilddeps"], cwd=src, env=CLEAN_ENV, capture_output=True,
                          text=True)
    if deps.returncode:
        raise BuildDepsMissing(deps.stderr.strip())
    start = time.monotonic()
    res = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=CLEAN_ENV,
                         capture_output=True, text=True)
    seconds = time.monotonic() - start
    if res.returncode:
        raise AssertionError(res.stdout[-3000:] + res.stderr[-3000:])
    (deb,) = top.glob(f"{PKG}_*_all.deb")
    (changes,) = top.glob(f"{PKG}_*.changes")
    return deb, changes, seconds
