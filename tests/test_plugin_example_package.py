"""The packaged example plugin (examples/php-fpm-apparmor-plugin-dokuwiki), as a third party
ships it: built with dpkg-buildpackage, installed with the main package into a throwaway
dpkg root (real maintainer scripts and triggers, chrootless), picked up by `generate` on
install and dropped on purge; its own tests run against the *installed* package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor import api
from systree import make_tree, pool_conf
from debbuild import IGNORE
from test_debian_package import CLEAN_ENV, FakeRoot, built, run  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples/php-fpm-apparmor-plugin-dokuwiki"
PKG = "php-fpm-apparmor-plugin-dokuwiki"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-buildpackage") is None,
                                reason="dpkg-buildpackage missing (apt-get install dpkg-dev debhelper)")


def test_the_main_package_provides_the_api_major_the_example_depends_on():
    major = api.API_VERSION.split(".")[0]
    control = (REPO / "debian/control").read_text()
    assert re.search(rf"^Provides: .*php-fpm-apparmor-api-{major}\b", control, re.M)
    assert f"php-fpm-apparmor-api-{major}," in (EXAMPLE / "debian/control").read_text()


@pytest.fixture(scope="module")
def example_deb(tmp_path_factory):
    top = tmp_path_factory.mktemp("exbuild")
    src = top / PKG
    shutil.copytree(EXAMPLE, src, ignore=IGNORE)
    res = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (deb,) = top.glob(f"{PKG}_*_all.deb")
    return deb


WIKI = "/var/www/wiki"


def wiki_tree(root: Path) -> None:
    make_tree(root, {"wiki": pool_conf("wiki", WIKI, hat="wiki")})
    disk = root / WIKI.lstrip("/")
    for d in ("inc", "conf", "data/pages"):
        (disk / d).mkdir(parents=True, exist_ok=True)
    (disk / "doku.php").write_text("<?php\nrequire_once 'inc/init.php';\n")
    (disk / "inc/init.php").write_text("<?php\n")
    (disk / "VERSION").write_text('2024-02-06b "Kaos"\n')


def test_generate_picks_the_plugin_up_on_install_and_drops_it_on_purge(built, example_deb, tmp_path):  # noqa: F811
    if shutil.which("apparmor_parser") is None:
        pytest.skip("apparmor_parser missing (apt-get install apparmor)")
    root = tmp_path / "root"
    fr = FakeRoot(root, tmp_path / "bin")
    site_packages = root / "usr/lib/python3/dist-packages"
    fr.env["PYTHONPATH"] = str(site_packages)  # the root's program runs the root's package
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(Path("/etc/apparmor.d", sub), root / "etc/apparmor.d" / sub)
    wiki_tree(root)
    hat = root / "etc/apparmor.d/php-fpm.d/wiki"

    def dpkg(*args):
        res = fr.dpkg(*args)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stdout + res.stderr
        return res

    def program(*args):
        return subprocess.run(["/usr/bin/python3", str(root / "usr/bin/php-fpm-apparmor"), "--root", str(root),
                               *args], env=fr.env, capture_output=True, text=True, timeout=300)

    # The plugin alone cannot be installed: it depends on the API its author wrote for.
    res = fr.dpkg("-i", str(example_deb))
    assert res.returncode != 0 and "php-fpm-apparmor-api-1" in res.stderr, res.stderr
    dpkg("--purge", PKG)

    dpkg("-i", str(built[0]))
    assert hat.is_file() and "dokuwiki" not in hat.read_text()

    dpkg("-i", str(example_deb))  # the marker fires the trigger: generate runs again
    text = hat.read_text()
    assert "# dokuwiki: pages, media, revisions, caches, locks" in text
    assert '"/var/www/wiki/conf/users.auth.php" rw,' in text
    listed = program("plugins")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^dokuwiki\s+1\.0\s+{PKG}$", listed.stdout, re.M), listed.stdout
    status = program("--json", "status")
    assert '"dokuwiki 2024-02-06b"' in status.stdout, status.stdout + status.stderr

    # The plugin's own tests, run by the system's Python against the installed packages.
    tests = tmp_path / "example-tests"
    shutil.copytree(EXAMPLE / "tests", tests)
    res = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                         env=fr.env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout, res.stdout[-500:]

    dpkg("--purge", PKG)  # the marker goes: generate runs without the plugin
    assert hat.is_file() and "dokuwiki" not in hat.read_text()
    assert "dokuwiki" not in program("plugins").stdout
