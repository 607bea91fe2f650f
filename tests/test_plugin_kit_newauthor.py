"""The plugin kit's acceptance test (issue 11, "How it is checked"): a plugin for an app the
project does not cover (MediaWiki, tests/newauthor_mediawiki/), written by a new author from
the installed package and docs/plugin-guide.md alone, run against the *built .deb*:

- its own tests (tests/newauthor_mediawiki/tests) run by the system's Python with only the
  package's files on the path, on php_fpm_apparmor.testing;
- dropped as a local plugin into /etc/php-fpm-apparmor/plugins.d of a system tree, the
  installed program picks it up: `plugins` lists it, `generate` writes the wiki's hat with
  its rules (a child profile reached through the core's /bin/sh child), `plugins --trace`
  says which plugin answered what, `check` prints its finding, other pools are untouched.

What it adds over the dokuwiki example: a local (unpackaged) plugin, exec of helpers in a
child of its own through the core's shell child, settings read with read_php where it
cannot see them ("$IP/cache"), and two pools judged together with testing.problems().
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from systree import make_tree, pool_conf
from test_debian_package import CLEAN_ENV, built, run  # noqa: F401 (fixture)

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "newauthor_mediawiki"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-buildpackage") is None,
                                reason="dpkg-buildpackage missing (apt-get install dpkg-dev debhelper)")


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):  # noqa: F811
    """The .deb's files unpacked (what `apt install` puts on disk), no source tree."""
    dest = tmp_path_factory.mktemp("installed")
    res = run(["dpkg-deb", "-x", str(built[0]), str(dest)])
    assert res.returncode == 0, res.stderr
    return dest


def env_for(installed: Path, *more: Path) -> dict:
    paths = [str(installed / "usr/lib/python3/dist-packages"), *map(str, more)]
    return {**CLEAN_ENV, "HOME": "/tmp", "PYTHONPATH": os.pathsep.join(paths)}


def test_the_new_plugins_own_tests_pass_on_the_installed_helpers(installed, tmp_path):
    tests = tmp_path / "plugin-tests"
    shutil.copytree(PLUGIN / "tests", tests)
    res = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                         env=env_for(installed, PLUGIN), cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "skipped" not in res.stdout and "failed" not in res.stdout, res.stdout
    # The helpers came from the package, not from this checkout.
    probe = subprocess.run(["/usr/bin/python3", "-c", "import php_fpm_apparmor.testing as t; print(t.__file__)"],
                           env=env_for(installed), cwd=tmp_path, capture_output=True, text=True)
    assert probe.stdout.startswith(str(installed)), probe.stdout + probe.stderr


def system_tree(root: Path) -> Path:
    sys.path[:0] = [str(PLUGIN), str(PLUGIN / "tests")]
    try:
        import test_mediawiki_apparmor as wiki_tests  # the plugin's own tree builder
    finally:
        sys.path[:2] = []
    make_tree(root, {"wiki": pool_conf("wiki", "/var/www/wiki", hat="wiki"),
                     "shop": pool_conf("shop", "/var/www/shop", hat="shop")})
    wiki_tests.tree(root)
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(Path("/etc/apparmor.d", sub), root / "etc/apparmor.d" / sub)
    local = root / "etc/php-fpm-apparmor/plugins.d"
    local.mkdir(parents=True)
    shutil.copy(PLUGIN / "mediawiki_apparmor.py", local)
    for p in [root, *(root / "etc/php-fpm-apparmor/plugins.d/mediawiki_apparmor.py").relative_to(root).parents]:
        path = root / p
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(local / "mediawiki_apparmor.py", 0o644)
    return root


def test_the_installed_program_uses_it_as_a_local_plugin(installed, tmp_path):
    if shutil.which("apparmor_parser") is None:
        pytest.skip("apparmor_parser missing (apt-get install apparmor)")
    root = system_tree(tmp_path / "root")

    def program(*args):
        return subprocess.run(["/usr/bin/python3", str(installed / "usr/bin/php-fpm-apparmor"),
                               "--root", str(root), *args], env=env_for(installed), capture_output=True,
                              text=True, timeout=300)

    listed = program("plugins")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert [ln.split() for ln in listed.stdout.splitlines() if ln.startswith("mediawiki_apparmor ")] \
        == [["mediawiki_apparmor", "0.1", "local"]]

    gen = program("generate")
    assert gen.returncode == 0 and "Traceback" not in gen.stderr, gen.stdout + gen.stderr
    hat = (root / "etc/apparmor.d/php-fpm.d/wiki").read_text()
    assert "# app mediawiki 1.41.1 at /var/www/wiki (plugin mediawiki_apparmor)" in hat
    assert '"/usr/bin/bash" mrPx -> php-fpm//wiki_thumb,' in hat  # from the pool's own sh child
    assert "profile wiki_thumb " in hat and '"/usr/bin/convert-im6.q16" mrix,' in hat
    assert "mediawiki" not in (root / "etc/apparmor.d/php-fpm.d/shop").read_text()

    traced = program("plugins", "--trace", "wiki")
    assert traced.returncode == 0, traced.stderr
    assert "detect     mediawiki_apparmor: mediawiki 1.41.1 at /var/www/wiki" in traced.stdout
    assert 'rules      mediawiki_apparmor [mediawiki]: sh: "/usr/bin/bash" mrPx -> php-fpm//wiki_thumb,' \
        in traced.stdout

    check = program("check")
    assert "pool wiki (mediawiki): $wgCacheDirectory /var/www/wiki/cache is inside the web root" \
        in check.stdout, check.stdout + check.stderr
