"""The compile step uses the features file of the apparmor_parser it runs (Debian 12 and 13
each ship their own), and what we emit compiles with this release's parser: run on the host
(Debian 12, parser 3.0) and in the Debian 13 userland stage (parser 4.1)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor import validate

REPO = Path(__file__).resolve().parents[1]
needs_parser = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")


def _owner(path: str) -> str | None:
    """The Debian package that ships `path` (its /usr-merge alias tried too)."""
    for p in (path, path.replace("/usr/sbin/", "/sbin/"), path.replace("/sbin/", "/usr/sbin/")):
        proc = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.split(":")[0]
    return None


@needs_parser
@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg")
def test_features_file_comes_with_the_parser_that_runs():
    exe = validate.parser()
    features = validate.features_for(exe)
    assert features is not None, f"no features file beside {exe}"
    assert _owner(os.path.realpath(exe)) == _owner(features) == "apparmor"


def test_a_parser_elsewhere_never_gets_debians_features(tmp_path):
    local = tmp_path / "usr/local/sbin/apparmor_parser"
    local.parent.mkdir(parents=True)
    local.touch()
    assert validate.features_for(str(local)) is None
    own = tmp_path / "usr/local/share/apparmor-features/features"
    own.parent.mkdir(parents=True)
    own.write_text("")
    assert validate.features_for(str(local)) == str(own)


@needs_parser
def test_demo_tree_output_compiles_with_this_release_parser(tmp_path, cli):
    tree = tmp_path / "demo"
    shutil.copytree(REPO / "demo", tree, symlinks=True)
    proc = cli("generate", "--quiet", root=tree)
    assert proc.returncode == 0, proc.stderr
    master = tree / "etc/apparmor.d/php-fpm-apparmor"
    hats = sorted(p.name for p in (tree / "etc/apparmor.d/php-fpm.d").iterdir())
    assert "abi <abi/3.0>," in master.read_text() and hats == ["_shared", "blog", "cloud", "plain", "web1"]
    exe = validate.parser()
    base = [exe, "-M", validate.features_for(exe), "-I", str(tree / "etc/apparmor.d"), "-I", "/etc/apparmor.d"]
    built = subprocess.run(base + ["-Q", "-K", str(master)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    names = subprocess.run(base + ["-N", str(master)], capture_output=True, text=True, timeout=600)
    assert {"php-fpm", "php-fpm//blog", "php-fpm//cloud", "php-fpm//plain", "php-fpm//web1"} <= set(names.stdout.split())
