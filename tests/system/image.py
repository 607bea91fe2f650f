"""Bootable Debian images for the system tests, built with mmdebstrap and cached.

An image is a directory <cache>/<release>-<key>/ holding base.img (raw ext4, warmed by one
boot), vmlinuz and initrd.img. <key> hashes the recipe (packages, hook, this module), so a
recipe change builds a new image and CI re-runs on the same machine reuse the old one.
The cache lives outside the clone: PFA_IMAGE_CACHE, default /var/cache/php-fpm-apparmor-ci.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("PFA_IMAGE_CACHE", "/var/cache/php-fpm-apparmor-ci")) / "images"
MIRROR = os.environ.get("PFA_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SIZE = "4G"

# What a Debian admin's web server has, plus our package's Depends so `apt install ./*.deb`
# resolves without a network.
BASE = ["systemd-sysv", "udev", "dbus", "kmod", "initramfs-tools", "zstd",
        "linux-image-cloud-amd64", "e2fsprogs", "procps", "passwd", "apparmor",
        "apparmor-utils", "nginx", "curl", "python3", "python3-apparmor", "python3-libapparmor",
        "python3-debian", "python3-pluggy", "bash-completion"]


@dataclass(frozen=True)
class Release:
    name: str   # Debian suite
    php: str    # PHP version of that suite
    kernel: str  # major.minor of its cloud kernel, checked after boot

    @property
    def packages(self) -> list[str]:
        # A real app for test_system_wordpress: Debian's wordpress with mariadb (masked
        # until that test starts it). `php` is listed so apt satisfies wordpress's
        # "libapache2-mod-php | php" with php-fpm, nginx for its "apache2 | httpd".
        return BASE + [f"php{self.php}-fpm", f"php{self.php}-cli", f"php{self.php}-mysql",
                       f"php{self.php}-gd", "php", "mariadb-server", "wordpress"]


RELEASES = {
    "trixie": Release("trixie", "8.4", "6.12"),
    "bookworm": Release("bookworm", "8.2", "6.1"),
}


@dataclass
class Image:
    release: Release
    dir: Path
    build_seconds: float = 0.0  # 0 when it came from the cache
    warm_seconds: float = 0.0

    @property
    def disk(self) -> Path:
        return self.dir / "base.img"

    @property
    def vmlinuz(self) -> Path:
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"


class ImageError(Exception):
    pass


def key(release: Release) -> str:
    """Hash of everything that shapes the image: rebuild when any of it changes."""
    h = hashlib.sha256()
    h.update(json.dumps([asdict(release), release.packages, MIRROR, SIZE]).encode())
    for f in ("customize.sh", "image.py"):
        h.update((HERE / f).read_bytes())
    return h.hexdigest()[:12]


def missing_tools() -> list[str]:
    return [t for t in ("mmdebstrap", "mke2fs", "qemu-system-x86_64", "qemu-img", "debugfs")
            if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")]


def _run(cmd, log: Path, timeout: int):
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if p.returncode:
        raise ImageError(f"{cmd[0]} failed ({p.returncode}), see {log}")


def build_root(release: Release, rootdir: Path, log: Path):
    source = f"deb [signed-by={KEYRING}] {MIRROR} {release.name} main"
    _run(["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory",
          "--include=" + ",".join(release.packages),
          f"--customize-hook=sh {HERE / 'customize.sh'} \"$1\" {release.php}",
          release.name, str(rootdir), source], log, timeout=3600)


def _busy(d: Path) -> bool:
    ready = d / "ready"
    if not ready.exists():
        return False
    with open(ready) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


@contextmanager
def in_use(img: Image):
    """Held while a test boots `img`: a concurrent build of a newer recipe keeps it."""
    ready = img.dir / "ready"
    if not ready.exists():  # the warm boot of a build in progress
        yield
        return
    with open(ready) as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        yield


def get(release_name: str, boot) -> Image:
    """The cached image of `release_name`, built (and warmed with `boot`) when missing.

    `boot(image, log)` boots the fresh image once with an empty payload: the first boot
    compiles ~100 stock AppArmor profiles into the cache, which every test would redo."""
    release = RELEASES[release_name]
    final = CACHE / f"{release.name}-{key(release)}"
    img = Image(release, final)
    if (final / "ready").exists():
        return img
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{release.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same image
        if (final / "ready").exists():
            return img
        work = CACHE / f"{final.name}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        log = work / "build.log"
        rootdir = work / "root"
        start = time.monotonic()
        build_root(release, rootdir, log)
        if (rootdir / "usr/sbin/apache2").exists():  # wordpress's "apache2 | httpd"
            raise ImageError(f"apache2 got into the {release.name} image, see {log}")
        vmlinuz = sorted(glob.glob(str(rootdir / "boot/vmlinuz-*")))
        initrd = sorted(glob.glob(str(rootdir / "boot/initrd.img-*")))
        if not vmlinuz or not initrd:
            raise ImageError(f"no kernel/initrd in the {release.name} root, see {log}")
        shutil.copy(vmlinuz[-1], work / "vmlinuz")
        shutil.copy(initrd[-1], work / "initrd.img")
        _run(["mke2fs", "-q", "-t", "ext4", "-L", "root", "-d", str(rootdir), "-F",
              str(work / "base.img"), SIZE], log, timeout=1800)
        shutil.rmtree(rootdir)
        img.build_seconds = time.monotonic() - start
        start = time.monotonic()
        boot(Image(release, work), work / "warm")
        img.warm_seconds = time.monotonic() - start
        (work / "timings.json").write_text(json.dumps(
            {"build_seconds": round(img.build_seconds, 1),
             "warm_seconds": round(img.warm_seconds, 1)}))
        (work / "ready").touch()
        shutil.rmtree(final, ignore_errors=True)
        os.rename(work, final)
        # Older recipes of this release are never used again, nor failed builds (the lock
        # is ours: nobody else is building this release); an image a test is booting right
        # now (shared lock, see in_use) stays until a later build.
        for old in CACHE.glob(f"{release.name}-*"):
            if old != final and old.is_dir() and not _busy(old):
                shutil.rmtree(old, ignore_errors=True)
    return img
