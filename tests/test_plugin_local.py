"""Local plugins: .py files in /etc/php-fpm-apparmor/plugins.d/, no packaging needed.

Loaded like entry-point plugins (same hooks, same strict boundary), but only when nobody
but root can write the file or the directory: checked in the tree --root points at.
"""

import os
import textwrap

import pytest

from php_fpm_apparmor import generate, plugins as plugins_mod
from systree import make_tree, pool_conf

SHOP = textwrap.dedent("""
    from php_fpm_apparmor.api import App, FileRule, hookimpl, under

    __version__ = "0.3"

    @hookimpl
    def php_fpm_apparmor_detect(site, found):
        return [App("shop", r) for r in site.roots if site.disk(r, "shop.txt").exists()]

    @hookimpl
    def php_fpm_apparmor_rules(site, app):
        if app.name != "shop":
            return []
        return [FileRule(path=under(app.root, "/var/*.dat"), perms="rw", owner=True, why="shop data")]
    """)


def tree(tmp_path):
    root = make_tree(tmp_path, {"shop": pool_conf("shop", "/var/www/shop", hat="shop")})
    (root / "var/www/shop/shop.txt").write_text("1")
    d = root / plugins_mod.LOCAL_DIR.lstrip("/")
    d.mkdir(parents=True)
    d.chmod(0o755)
    (d / "myshop.py").write_text(SHOP)
    (d / "myshop.py").chmod(0o644)
    return root, d


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="files must be root-owned: run as root")


@needs_root
def test_a_local_plugin_is_loaded_and_shapes_the_hat(tmp_path, cli):
    root, d = tree(tmp_path)
    (d / "README").write_text("not a plugin\n")  # only *.py files are plugins
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert [(i.name, i.version, i.source) for i in loaded.info] == [("myshop", "0.3", "local")]
    assert not loaded.problems
    e = generate.plan(str(root), loaded).entries[0]
    assert "# myshop: shop data" in e.text and '"/var/www/shop/var/*.dat" rw' in e.text
    proc = cli("plugins", root=root)
    assert proc.returncode == 0 and "myshop" in proc.stdout and "local" in proc.stdout, proc.stderr


@needs_root
@pytest.mark.parametrize("spoil, words", [
    (lambda d: (d / "myshop.py").chmod(0o664), "is group- or world-writable (mode 0664)"),
    (lambda d: (d / "myshop.py").chmod(0o646), "is group- or world-writable (mode 0646)"),
    (lambda d: os.chown(d / "myshop.py", 65534, 0), "is owned by uid 65534, not root"),
    (lambda d: ((d / "myshop.py").rename(d / "real"), (d / "myshop.py").symlink_to(d / "real")), "is a symlink"),
])
def test_a_file_others_could_write_is_refused_and_reported(tmp_path, cli, spoil, words):
    root, d = tree(tmp_path)
    spoil(d)
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert not loaded.info
    assert len(loaded.problems) == 1 and "plugin myshop" in loaded.problems[0] and words in loaded.problems[0]
    proc = cli("plugins", root=root)
    assert proc.returncode == 1 and words in proc.stderr
    proc = cli("generate", root=root)
    assert proc.returncode == 1 and words in proc.stderr


@needs_root
@pytest.mark.parametrize("spoil, words", [
    (lambda d: d.chmod(0o775), "is group- or world-writable (mode 0775)"),
    (lambda d: os.chown(d, 65534, 0), "is owned by uid 65534, not root"),
    (lambda d: d.parent.chmod(0o777), "is group- or world-writable (mode 0777)"),
])
def test_a_directory_others_could_write_loads_nothing(tmp_path, spoil, words):
    root, d = tree(tmp_path)
    spoil(d)
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert not loaded.info and words in loaded.problems[0] and "no local plugin loaded" in loaded.problems[0]


@needs_root
def test_the_kill_switch_also_turns_local_plugins_off(tmp_path, monkeypatch):
    root, d = tree(tmp_path)
    monkeypatch.setenv(plugins_mod.NO_EXTERNAL_ENV, "1")
    assert not plugins_mod.load(entry_points=[], sysroot=str(root)).info


@needs_root
def test_a_local_plugin_with_a_mistake_is_refused_by_name(tmp_path):
    root, d = tree(tmp_path)
    (d / "myshop.py").write_text(SHOP.replace("def php_fpm_apparmor_rules", "def php_fpm_apparmor_rule"))
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert not loaded.info and "php_fpm_apparmor_rule is not a hook (did you mean php_fpm_apparmor_rules?)" in loaded.problems[0]
    (d / "myshop.py").write_text("import no_such_module_xyz\n")
    loaded = plugins_mod.load(entry_points=[], sysroot=str(root))
    assert "failed to load" in loaded.problems[0] and "no_such_module_xyz" in loaded.problems[0]
