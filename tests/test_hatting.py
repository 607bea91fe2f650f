"""A host fully hatted in one step, on fake trees: `check` leads with pools that have no
hat, `enable` picks and edits pool files safely, and once every pool has its hat the master
profile leaves complain mode. The live half (hats loaded, php-fpm reloaded) runs in the
booted-system tests (docs/enable-all.md lists the command lines)."""

import json
import os
from pathlib import Path

import phpver
from php_fpm_apparmor import generate, hatting, plugins as plugins_mod
from systree import make_tree, pool_conf

NO_PLUGINS = plugins_mod.load(entry_points=[])
STOCK_WWW = Path(f"/etc/php/{phpver.VERSION}/fpm/pool.d/www.conf")


def host(tmp_path):
    """a: hatted; b: a site without a hat; www: Debian's stock pool (no hat, no root)."""
    www = STOCK_WWW.read_text() if STOCK_WWW.is_file() else \
        "[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\npm = dynamic\n" \
        "pm.max_children = 5\npm.start_servers = 2\npm.min_spare_servers = 1\npm.max_spare_servers = 3\n"
    return make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"),
                                "b": pool_conf("b", "/var/www/b"), "www": www})


def master(root: Path) -> str:
    return (root / "etc/apparmor.d/php-fpm-apparmor").read_text()


def test_check_leads_with_pools_without_a_hat_and_what_they_expose(tmp_path, cli):
    root = host(tmp_path)
    proc = cli("--json", "check", root=root)
    assert proc.returncode == 1
    found = json.loads(proc.stdout)
    lead = found[:2]
    assert [("pool b has no apparmor_hat" in x, "pool www has no apparmor_hat" in x) for x in lead] == \
        [(True, False), (False, True)], found
    assert "read and write every other pool's files (8.2/a, 8.2/www)" in lead[0]
    assert "run php-fpm-apparmor enable --all" in lead[0]
    # www has no root to confine it to: the fix says so first
    assert "set root = DIR" in lead[1] and "/run/php/php" in lead[1]


def test_a_lone_pool_without_a_hat_is_a_note(tmp_path, cli):
    root = make_tree(tmp_path, {"b": pool_conf("b", "/var/www/b")})
    proc = cli("check", root=root)
    assert proc.stdout.startswith("note: ") and "pool b has no apparmor_hat" in proc.stdout


def test_enable_all_chooses_the_unhatted_pools_and_says_why_not(tmp_path):
    root = host(tmp_path)
    t = hatting.choose(generate.plan(str(root), NO_PLUGINS), None)
    assert [e.pool.name for e in t.entries] == ["b"]
    assert len(t.refused) == 1 and t.refused[0].startswith("pool 8.2/www: ") and "no root" in t.refused[0]
    assert [e.hat for e in hatting.choose(generate.plan(str(root), NO_PLUGINS), "8.2/b").entries] == ["b"]
    assert hatting.choose(generate.plan(str(root), NO_PLUGINS), "a").entries == []  # has one


def test_enable_without_apparmor_changes_nothing(tmp_path, cli):
    root = host(tmp_path)
    before = {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()}
    proc = cli("enable", "--all", root=root)
    assert proc.returncode == 1
    assert "not enabled: pool 8.2/www:" in proc.stderr and "nothing changed" in proc.stderr
    assert {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()} == before
    assert cli("enable", root=root).returncode == 2
    assert cli("enable", "--all", "b", root=root).returncode == 2


def test_the_edit_is_one_line_in_the_section_and_keeps_mode_and_owner(tmp_path):
    conf = tmp_path / "pool.d/shop.conf"
    conf.parent.mkdir()
    text = "; shop\n[global_x]\nuser = x\n\n[shop]\n; secrets below\nenv[DB_PASS] = s3cret\n[other]\nuser = y\n"
    conf.write_text(text)
    os.chmod(conf, 0o640)
    os.chown(conf, 1234, 5678)
    link = tmp_path / "shop-link.conf"
    link.symlink_to(conf)
    assert hatting.add_hat_line(link, "SHOP", "shop") is None
    assert conf.read_text() == text.replace("[shop]\n", "[shop]\napparmor_hat = shop\n")
    st = conf.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 1234, 5678) and link.is_symlink()


def test_the_edit_refuses_what_it_cannot_do_safely(tmp_path):
    conf = tmp_path / "p.conf"
    cases = {
        "[p]\nuser = x\n[p]\nuser = y\n": "appears 2 times",
        "[$pool_name]\nuser = x\n": "appears 0 times",
        "[p]\n;apparmor_hat = old\napparmor_hat=\n": "already has an apparmor_hat line",
    }
    for text, why in cases.items():
        conf.write_text(text)
        assert why in hatting.add_hat_line(conf, "p", "p")
        assert conf.read_text() == text
    conf.write_bytes(b"[p]\nuser = caf\xe9\n")
    assert "UTF-8" in hatting.add_hat_line(conf, "p", "p")
    conf.write_text("[p]\n")
    assert "not a plain name" in hatting.add_hat_line(conf, "p", "p\nuser = root")
    assert conf.read_text() == "[p]\n"


def test_master_leaves_complain_once_every_pool_has_its_hat(tmp_path, cli):
    root = host(tmp_path)
    (root / "etc/php/8.2/fpm/pool.d/www.conf").unlink()  # the admin removed the unused stock pool
    assert cli("generate", "--quiet", root=root).returncode == 0
    assert "flags=(attach_disconnected,complain)" in master(root)
    t = hatting.choose(generate.plan(str(root), NO_PLUGINS), None)
    for e in t.entries:
        assert hatting.add_hat_line(Path(e.pool.config_file), e.pool.name, e.hat) is None
    proc = cli("generate", "--quiet", root=root)
    assert proc.returncode == 0, proc.stderr
    assert "profile php-fpm /usr/sbin/php-fpm* flags=(attach_disconnected) {" in master(root)
    assert cli("check", root=root).stdout.count("has no apparmor_hat") == 0


def test_enable_all_order_with_the_kernel_and_systemd_stood_in(tmp_path, monkeypatch, capsys):
    """The live sequence, run for real on a fake tree; only the kernel (a dict fed by the
    real parser's -N) and `systemctl` are stood in. Order: hats loaded, then the pool
    files, then one reload per PHP version, then the master leaves complain."""
    import subprocess
    from types import SimpleNamespace

    from php_fpm_apparmor import load, validate

    root = host(tmp_path)
    make_tree(root, {"old": pool_conf("old", "/var/www/old")}, version="8.1")
    (root / "etc/php-fpm-apparmor").mkdir()
    (root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf").write_text("[www]\nroot = /var/www/html\n")
    (root / "var/www/html").mkdir(parents=True)
    kernel, events = {}, []

    def reload(path):
        exe = validate.parser()
        names = subprocess.run([exe, "-N", "-M", validate.features_for(exe), "-I", str(root / "etc/apparmor.d"),
                                "-I", "/etc/apparmor.d", path], capture_output=True, text=True, check=True).stdout.split()
        complain = "complain" in Path(path).read_text().split("profile php-fpm ", 1)[1].split("{", 1)[0]
        kernel.clear()
        kernel.update({n: "complain" if complain else "enforce" for n in names})
        events.append(("load", "complain" if complain else "enforce", sorted(names)))

    monkeypatch.setattr(load, "enabled", lambda sysroot="/": True)
    monkeypatch.setattr(load, "loaded", lambda: dict(kernel))
    monkeypatch.setattr(load, "reload", lambda path, **kw: reload(path))
    monkeypatch.setattr(load, "unload", lambda names: None)
    monkeypatch.setattr(load, "refresh_cache", lambda path: "not here")
    monkeypatch.setattr(hatting, "reload_php_fpm", lambda service: events.append(("reload", service)))
    real_edit = hatting.add_hat_line
    monkeypatch.setattr(hatting, "add_hat_line", lambda conf, section, hat: (
        events.append(("edit", conf.name, sorted(kernel))), real_edit(conf, section, hat))[1])

    status = hatting.cmd_enable(SimpleNamespace(root=str(root), all=True, pool=None), NO_PLUGINS)
    out = capsys.readouterr()
    assert status == 0, out.err
    first, *edits = events[:4]
    assert first[:2] == ("load", "complain") and {"php-fpm//b", "php-fpm//www", "php-fpm//old"} <= set(first[2])
    assert sorted(e[1] for e in edits) == ["b.conf", "old.conf", "www.conf"]
    assert all({"php-fpm//b", "php-fpm//www", "php-fpm//old"} <= set(e[2]) for e in edits)  # hats first
    assert sorted(events[4:6]) == [("reload", "php8.1-fpm.service"), ("reload", "php8.2-fpm.service")]
    assert events[6][:2] == ("load", "enforce") and len(events) == 7
    assert "left complain mode" in out.out
    assert "flags=(attach_disconnected) {" in master(root)
    assert (root / "etc/php/8.2/fpm/pool.d/www.conf").read_text().count("\napparmor_hat = www\n") == 1
