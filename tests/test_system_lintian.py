"""lintian of the release the package is installed on, not only the build host's: Debian
13's lintian in a cached trixie root (mmdebstrap), run with chroot on the built package.
The host's (Debian 12) lintian runs in test_debian_package.py."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from system import image, roots

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root and chroot need root"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap missing (tools/bootstrap)"),
    pytest.mark.skipif(os.environ.get("PFA_SYSTEM") == "0", reason="PFA_SYSTEM=0"),
]


@pytest.mark.parametrize("release", ["trixie"])
def test_lintian_clean_on(release, debian_package):
    root = roots.userland(release, ["lintian"])
    work = root / "tmp" / "pfa-lintian"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    deb, changes, _ = debian_package
    for f in changes.parent.glob("php-fpm-apparmor_*"):
        if f.is_file():
            shutil.copy(f, work / f.name)
    try:
        res = subprocess.run(
            ["chroot", str(root), "lintian", "--pedantic", "--fail-on", "none",
             f"/tmp/pfa-lintian/{changes.name}"],
            capture_output=True, text=True, timeout=900,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/tmp"})
        version = subprocess.run(["chroot", str(root), "lintian", "--version"],
                                 capture_output=True, text=True).stdout.strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{release}: {version}\n{res.stdout}")
    tags = [ln for ln in res.stdout.splitlines() if ln[:2] in ("E:", "W:")]
    assert res.returncode == 0 and not tags, res.stdout + res.stderr
