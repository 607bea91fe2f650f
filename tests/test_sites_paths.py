"""sites' path helpers against plain definitions: canonical() against realpath run in a
chroot at the system root, _is_system() against comparing every system directory."""

from __future__ import annotations

import itertools
import json
import os

import pytest

from php_fpm_apparmor import sites
from php_fpm_apparmor.errors import ConfigError

NAMES = ("a", "b", "c", "l", "up", "x", "f", "missing", "..", ".")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "a/b/c").mkdir(parents=True)
    (root / "a/b/c/f").write_text("")
    os.symlink("b", root / "a/l")  # a sibling
    os.symlink("..", root / "a/b/up")  # a parent
    os.symlink("a/b/c", root / "x")  # a chain of directories
    os.symlink("../../../x", root / "a/b/c/x")  # a link to a link
    return root


def _resolved_in_chroot(root, paths: list[str]) -> dict:
    """Each path resolved by realpath inside a chroot at `root` (a child process): ".." at
    the top stays there, absolute links land inside the root, as for the pools' workers."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            os.chroot(str(root))
            os.chdir("/")
            with os.fdopen(write, "wb") as f:  # a file object writes it all, past the pipe's buffer
                f.write(json.dumps({p: os.path.realpath(p) for p in paths}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="the oracle chroots")
def test_canonical_is_realpath_in_a_chroot_in_any_order(tree):
    os.symlink("/a/b", tree / "abs")  # absolute: inside the root, not the host's /a/b
    paths = ["/" + "/".join(p) for n in (1, 2, 3, 4) for p in itertools.product(NAMES + ("abs",), repeat=n)]
    expected = _resolved_in_chroot(tree, paths)
    for order in (paths, list(reversed(paths))):  # parents cached first, then children first
        sites.forget_disk()
        got = {p: sites.canonical(str(tree), p) for p in order}
        assert got == expected


def test_canonical_loop_is_an_error(tree):
    os.symlink("loop", tree / "loop")
    sites.forget_disk()
    with pytest.raises(ConfigError):
        sites.canonical(str(tree), "/loop/f")


def test_is_system_is_the_comparison_with_every_system_directory():
    def plain(path):
        return path == "/" or path in sites._PARENTS or any(
            path == d or path.startswith(d + "/") for d in sites.SYSTEM_DIRS)

    paths = ["/", "", "//tmp", "/tmp", "/tmp/", "/tmpx", "/tmp/x/y", "/var", "/var/www", "/var/www/a",
             "/var/lib/php", "/var/lib/php/sessions", "/var/lib/phpx", "/usr/share/wordpress", "/srv",
             "/srv/a", "/etc", "/etcetera", "/home/u/public_html", "relative/tmp", "/run/php/x.sock"]
    for path in paths:
        assert sites._is_system(path) == plain(path), path


def test_canonical_on_the_live_system_is_realpath(tmp_path):
    """--root / resolves with the same walk: the host's realpath is the oracle there."""
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/f").write_text("")
    os.symlink("b", tmp_path / "a/rel")
    os.symlink(str(tmp_path / "a/b"), tmp_path / "abs")
    os.symlink("../abs/../rel/f", tmp_path / "a/b/chain")
    base = os.path.realpath(tmp_path)
    names = ("a", "b", "f", "rel", "abs", "chain", "..", ".", "missing")
    paths = [base + "/" + "/".join(p) for n in (1, 2, 3) for p in itertools.product(names, repeat=n)]
    sites.forget_disk()
    assert {p: sites.canonical("/", p) for p in paths} == {p: os.path.realpath(p) for p in paths}
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(ConfigError):
        sites.canonical("/", base + "/loop/f")


def test_a_helper_installed_between_runs_is_found_by_the_next(tmp_path):
    """find_binaries asks the disk once a run per program file (a thousand sites look for
    the same cwebp): a run after `apt install` finds it, through Debian's usrmerge link too."""
    from php_fpm_apparmor.api import find_binaries

    (tmp_path / "usr/bin").mkdir(parents=True)
    os.symlink("usr/bin", tmp_path / "bin")
    site = sites.Site(pool=None, hat="blog", roots=[], sysroot=str(tmp_path))
    sites.forget_disk()
    assert find_binaries(site, ["cwebp"]) == []
    (tmp_path / "usr/bin/cwebp").write_text("")
    sites.forget_disk()  # the next run (generate.plan starts with this)
    assert find_binaries(site, ["cwebp"]) == ["/usr/bin/cwebp"]
    assert find_binaries(site, ["cwebp"], dirs=("/bin",)) == ["/usr/bin/cwebp"]
    (tmp_path / "usr/bin/cwebp").unlink()
    (tmp_path / "usr/bin/cwebp").mkdir()  # not a file: not a program
    sites.forget_disk()
    assert find_binaries(site, ["cwebp"]) == []
