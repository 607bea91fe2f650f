"""lintian of each release on the package built for it: Debian 13's lintian in a cached
trixie root (mmdebstrap) on the build made there. The host's (Debian 12) lintian on the
host's build runs in test_debian_package.py."""

from __future__ import annotations

import os
import shutil

import pytest

from system import roots

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="mmdebstrap --mode=root and chroot need root"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap missing (tools/bootstrap)"),
    pytest.mark.skipif(os.environ.get("PFA_SYSTEM") == "0", reason="PFA_SYSTEM=0"),
]


@pytest.mark.parametrize("release", ["trixie"])
def test_lintian_clean_on(release, release_package):
    deb, changes = release_package(release)
    rc, out, version = roots.lintian(release, changes)
    print(f"{release}: {version}\n{out}")
    tags = [ln for ln in out.splitlines() if ln[:2] in ("E:", "W:")]
    assert rc == 0 and not tags, out
