"""Obtain Debian's cloud kernel (AppArmor built in) for the qemu harness, cached."""

from __future__ import annotations

import glob
import os
import re
import subprocess

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
META = "linux-image-cloud-amd64"


class KernelError(Exception):
    pass


def _run(cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise KernelError(f"{' '.join(cmd)}: {p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def package_name() -> str:
    """The versioned image package the metapackage points at (apt decides, not us)."""
    out = _run(["apt-cache", "depends", META])
    m = re.search(r"Depends:\s*(linux-image-\S+-cloud-amd64)\b", out)
    if not m:
        raise KernelError(f"apt-cache depends {META} names no linux-image package")
    return m.group(1)


def _cached(cache: str) -> str | None:
    found = sorted(glob.glob(os.path.join(cache, "linux-image-*", "boot", "vmlinuz-*")))
    return found[-1] if found else None


def vmlinuz(cache: str = CACHE) -> str:
    """Path of a vmlinuz with AppArmor built in; downloads once, then reuses the cache."""
    hit = _cached(cache)
    if hit:
        return hit
    os.makedirs(cache, exist_ok=True)
    pkg = package_name()
    # apt-get download as root warns about the _apt sandbox; harmless.
    _run(["apt-get", "download", "-q", pkg], cwd=cache)
    debs = sorted(glob.glob(os.path.join(cache, pkg + "_*.deb")))
    if not debs:
        raise KernelError(f"apt-get download {pkg} left no .deb in {cache}")
    dest = os.path.join(cache, pkg)
    tmp = dest + ".tmp"
    subprocess.run(["rm", "-rf", tmp], check=True)
    _run(["dpkg-deb", "-x", debs[-1], tmp])
    config = glob.glob(os.path.join(tmp, "boot", "config-*"))
    # The whole harness relies on AppArmor being built in (no modules in the initramfs).
    if not config or "CONFIG_SECURITY_APPARMOR=y" not in open(config[0]).read():
        raise KernelError(f"{pkg} does not have AppArmor built in")
    # Keep only /boot: the modules are not needed and are most of the size.
    subprocess.run(["rm", "-rf", os.path.join(tmp, "lib"), os.path.join(tmp, "usr")], check=True)
    os.rename(tmp, dest)
    os.unlink(debs[-1])
    return _cached(cache)
