"""check, complain/enforce, enable: what an admin types, on fake system trees."""

import json
import sys
from pathlib import Path

from php_fpm_apparmor.check import set_in_section
from systree import make_tree, pool_conf


def tree(tmp_path, **extra):
    return make_tree(tmp_path, {
        "a": pool_conf("a", "/var/www/a", hat="a", extra=extra.get("a", "")),
        "b": pool_conf("b", "/var/www/b", extra=extra.get("b", "")),
    })


def test_complain_then_enforce_edits_config_and_policy(tmp_path, cli):
    root = tree(tmp_path)
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("# my notes\n[defaults]\nmode = enforce\n\n[a]\n; keep me\nroot = /var/www/a\n")
    proc = cli("complain", "a", root=root)
    assert proc.returncode == 0, proc.stderr
    text = cfg.read_text()
    assert "# my notes" in text and "; keep me" in text and "mode = complain" in text.split("[a]")[1]
    hat = (root / "etc/apparmor.d/php-fpm.d/a").read_text()
    assert "^a flags=(attach_disconnected,complain) {" in hat
    assert "profile a_sh flags=(attach_disconnected,complain)" in hat
    assert "^b flags=(attach_disconnected) {" in (root / "etc/apparmor.d/php-fpm.d/b").read_text()
    assert cli("enforce", "8.2/a", root=root).returncode == 0
    assert "^a flags=(attach_disconnected) {" in (root / "etc/apparmor.d/php-fpm.d/a").read_text()
    assert cli("--json", "status", root=root).returncode == 0


def test_unknown_pool_is_a_usage_error(tmp_path, cli):
    root = tree(tmp_path)
    proc = cli("complain", "nope", root=root)
    assert proc.returncode == 2 and "no such pool" in proc.stderr and "8.2/a" in proc.stderr


def test_enable_refuses_without_apparmor_and_changes_nothing(tmp_path, cli):
    root = tree(tmp_path)
    conf = root / "etc/php/8.2/fpm/pool.d/b.conf"
    before = conf.read_text()
    proc = cli("enable", "b", root=root)
    assert proc.returncode == 1
    assert "would make php-fpm's workers fail in a loop" in proc.stderr
    assert conf.read_text() == before


def test_set_in_section_is_a_minimal_edit():
    text = "; head\n[www]\nuser = x ; trailing\n\n[other]\nuser = y\n"
    out = set_in_section(text, "www", "apparmor_hat", "www", after_line=2)
    assert out == "; head\n[www]\napparmor_hat = www\nuser = x ; trailing\n\n[other]\nuser = y\n"
    assert set_in_section(out, "WWW", "apparmor_hat", "w2").count("apparmor_hat") == 1
    assert set_in_section("[x]\n", "y", "k", "v") == "[x]\n\n[y]\nk = v\n"


def test_check_names_each_problem_with_a_fix(tmp_path, cli):
    shared = "php_admin_value[session.save_path] = /var/lib/php/sessions\n"
    root = tree(tmp_path, a=shared, b=shared)
    unit = root / "lib/systemd/system/php8.2-fpm.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/usr/sbin/php-fpm8.2 --nodaemonize\nNoNewPrivileges=yes\n")
    proc = cli("--json", "check", root=root)
    assert proc.returncode == 1
    found = json.loads(proc.stdout)
    text = "\n".join(found)
    assert "php8.2-fpm.service:3: NoNewPrivileges=yes" in text and "systemctl edit" in text
    assert "pool b has no apparmor_hat" in text and "php-fpm-apparmor enable 8.2/b" in text
    assert "pools 8.2/a, 8.2/b run as www-data and share /var/lib/php/sessions (session.save_path)" in text
    assert "share /tmp (sys_temp_dir, upload_tmp_dir)" in text
    assert "built without AppArmor" in text  # the tree's php-fpm8.2 is an empty stand-in


def test_clean_removes_only_generated_files(tmp_path, cli):
    root = tree(tmp_path)
    assert cli("generate", root=root).returncode == 0
    mine = root / "etc/apparmor.d/php-fpm.d/admin"
    mine.write_text("# the admin's own\n")
    assert cli("clean", root=root).returncode == 0
    assert sorted(p.name for p in (root / "etc/apparmor.d/php-fpm.d").iterdir()) == ["admin"]
    assert not (root / "etc/apparmor.d/php-fpm-apparmor").exists()


def test_execstartpre_never_fails_because_of_one_pool(tmp_path, cli):
    root = make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"),
                                "nohat": pool_conf("nohat", None, hat="lost")})
    make_tree(root, {"c": pool_conf("c", "/var/www/c", hat="c")}, version="8.1")
    proc = cli("generate", "--php", "8.2", "--quiet", root=root)
    # nohat has no root: it is reported and gets the core-only hat; php-fpm 8.2 starts
    assert proc.returncode == 0, proc.stderr
    assert "pool nohat" in proc.stderr and "core-only hat" in proc.stderr
    lost = (root / "etc/apparmor.d/php-fpm.d/lost").read_text()
    assert "^lost flags=" in lost and "/var/www" not in lost
    # a hat name php-fpm could never load: that pool alone, php-fpm still starts
    (root / "etc/php/8.2/fpm/pool.d/nohat.conf").write_text(pool_conf("nohat", None, hat="bad name"))
    proc = cli("generate", "--php", "8.2", "--quiet", root=root)
    assert proc.returncode == 0 and "pool nohat: no hat could be generated" in proc.stderr
    # only when no hatted pool of the version can have its hat does php-fpm not start
    only = make_tree(tmp_path / "only", {"x": pool_conf("x", None, hat="bad name")})
    proc = cli("generate", "--php", "8.2", "--quiet", root=only)
    assert proc.returncode == 1 and "not starting php-fpm 8.2" in proc.stderr
    # another version's php-fpm starts; its pools got their hats
    proc = cli("generate", "--php", "8.1", "--quiet", root=root)
    assert proc.returncode == 0, proc.stderr
    assert (root / "etc/apparmor.d/php-fpm.d/c").exists() and (root / "etc/apparmor.d/php-fpm.d/a").exists()


def test_check_finds_pools_that_can_reach_each_others_fastcgi_socket(tmp_path, cli):
    # Debian's default: every pool runs as www-data, sockets owned by www-data, mode 0660
    root = tree(tmp_path, b="apparmor_hat = b\n")
    found = "\n".join(json.loads(cli("--json", "check", root=root).stdout))
    assert "pool a (user www-data) may connect to the FastCGI socket of 8.2/b (/run/php/b.sock)" in found
    # one user per pool, sockets owned by the web server: no pool can open another's socket
    per_user = {n: pool_conf(n, f"/var/www/{n}", hat=n).replace("user = www-data", f"user = {n}")
                .replace("group = www-data\nlisten", f"group = {n}\nlisten") for n in ("c", "d")}
    root2 = make_tree(tmp_path / "t2", per_user)
    with open(root2 / "etc/passwd", "a") as f:
        f.write("c:x:1001:1001::/nonexistent:/usr/sbin/nologin\nd:x:1002:1002::/nonexistent:/usr/sbin/nologin\n")
    with open(root2 / "etc/group", "a") as f:
        f.write("c:x:1001:\nd:x:1002:\n")
    found = "\n".join(json.loads(cli("--json", "check", root=root2).stdout))
    assert "may connect to the FastCGI socket" not in found, found


def test_write_paths_never_cover_php_or_server_config(tmp_path, cli):
    from php_fpm_apparmor import evaluate
    root = tree(tmp_path)
    cfg = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[a]\nwrite = /var/www/a-storage\n")
    (root / "var/www/a-storage").mkdir(parents=True)
    assert cli("generate", root=root).returncode == 0
    hat = evaluate.parse((root / "etc/apparmor.d/php-fpm.d/a").read_text())["php-fpm//a"]
    assert evaluate.allows(hat, "write", "/var/www/a-storage/app/cache/data.json")
    for bad in ("app/public/shell.php", "x.PHP", "a/b.phtml", "c.phar", "d.php7", ".htaccess", "e/.user.ini"):
        assert not evaluate.allows(hat, "write", f"/var/www/a-storage/{bad}"), bad


def test_mode_edit_keeps_the_config_files_mode_owner_and_symlink(tmp_path, cli):
    import os
    root = tree(tmp_path)
    real = root / "srv/config-management/php-fpm-apparmor.conf"
    real.parent.mkdir(parents=True)
    real.write_text("[a]\nroot = /var/www/a\n")
    real.chmod(0o640)
    os.chown(real, 0, 33)
    link = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert cli("complain", "a", root=root).returncode == 0
    assert link.is_symlink() and "mode = complain" in real.read_text()
    st = real.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, 33)


def test_status_reads_the_header_alone_whatever_its_length(tmp_path):
    """`status` reads an installed file's leading comments only, in chunks: a header longer
    than a chunk (many exceptions) is read whole, and the rules' comments are not in it."""
    from php_fpm_apparmor.install import header

    why = "x" * 3000
    head = ["# Generated by php-fpm-apparmor", "# mode complain; site root(s) /srv/a (root = in [a])",
            "# app wordpress 6.4.3 at /srv/a (plugin wordpress)"]
    head += [f"# exception (p{i}): writes /srv/a/c{i}/*.php: {why}" for i in range(5)]
    body = ["", "  ^a {", "    # app nextcloud 1 at /elsewhere (plugin evil)", "    # mode enforce;", "  }"]
    f = tmp_path / "a"
    f.write_text("\n".join(head + body) + "\n")
    info = header(f)
    assert info["mode"] == "complain"
    assert info["apps"] == ["wordpress 6.4.3"]
    assert info["exceptions"] == [f"/srv/a/c{i}/*.php (p{i}: {why})" for i in range(5)]
    assert header(tmp_path / "missing") is None


def test_check_shows_a_few_of_many_findings_alike(tmp_path, cli):
    """A host of WordPress sites without DISALLOW_FILE_MODS: the text shows three of the
    same finding and how many more; --json lists every one; both fail."""
    root = make_tree(tmp_path, {f"w{i}": pool_conf(f"w{i}", f"/var/www/w{i}", hat=f"w{i}") for i in range(5)})
    for i in range(5):
        (root / f"var/www/w{i}/wp-includes").mkdir(parents=True)
        (root / f"var/www/w{i}/wp-includes/version.php").write_text("<?php\n$wp_version = '6.4.3';\n")
        (root / f"var/www/w{i}/wp-config.php").write_text("<?php\n$table_prefix = 'wp_';\n")
    text = cli("check", root=root)
    lacks = [l for l in text.stdout.splitlines() if "lacks DISALLOW_FILE_MODS" in l]
    assert text.returncode == 1 and len(lacks) == 4, text.stdout
    assert lacks[-1].startswith("note: 2 more findings like 'pool w0 (wordpress): ") and "--json" in lacks[-1]
    js = cli("--json", "check", root=root)
    every = [l for l in json.loads(js.stdout) if "lacks DISALLOW_FILE_MODS" in l]
    assert js.returncode == 1 and sorted(l.split()[1] for l in every) == [f"w{i}" for i in range(5)], every


def test_status_shows_a_few_of_many_exceptions_alike(tmp_path, cli):
    """A host where every third WordPress runs WP Super Cache: the text shows three of its
    alike exceptions and how many more (a thousand pools printed a line each); --json lists
    every one."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import wptree  # the benchmarks' WordPress host

    root = wptree.build(tmp_path / "root", 15)  # WP Super Cache in web0, web3, ... web12
    assert cli("generate", root=root).returncode == 0
    text = cli("status", root=root).stdout.splitlines()
    exceptions = [l for l in text if l.startswith("exception ")]
    notes = [l for l in text if l.startswith("note: ")]
    assert [l.split(":")[0] for l in exceptions] == [f"exception 8.2/web{i}" for i in (0, 12, 3)], text
    assert len(notes) == 1 and notes[0].startswith("note: 2 more lines like 'exception 8.2/web0: ") \
        and "--json status" in notes[0], notes
    rows = json.loads(cli("--json", "status", root=root).stdout)
    assert sorted(r["pool"] for r in rows if r["exceptions"]) == sorted(f"web{i}" for i in range(0, 15, 3))
