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
