"""Reader behaviour that needs no oracle: system roots, hats, origins, hostile input."""

from __future__ import annotations

import os
import time

import pytest

from php_fpm_apparmor.errors import ConfigError
from php_fpm_apparmor.discover import find_installations
from php_fpm_apparmor.pools import read_all, read_pools

MAIN = "[global]\npid = /run/php/php8.2-fpm.pid\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n"
POOL = "[{name}]\nuser = {user}\nlisten = /run/php/{name}.sock\npm = static\npm.max_children = 1\n"


def write(root, path, data):
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data)
    return p


@pytest.fixture
def sysroot(tmp_path):
    """A Debian-like system tree with its own users (none of them exist on the host)."""
    write(tmp_path, "/etc/passwd", "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"
          "www-data:x:33:33::/var/www:/usr/sbin/nologin\n")
    write(tmp_path, "/etc/group", "root:x:0:\nalice:x:1001:\nwww-data:x:33:\n")
    write(tmp_path, "/etc/php/8.2/fpm/php-fpm.conf", MAIN)
    write(tmp_path, "/etc/php/8.2/fpm/php.ini", "upload_tmp_dir = /var/tmp/php\n")
    return tmp_path


def pool_conf(name, user="alice", extra=""):
    return POOL.format(name=name, user=user) + extra


def test_reads_system_paths_under_a_root(sysroot):
    write(sysroot, "/var/www/alice/.keep", "")
    conf = write(sysroot, "/etc/php/8.2/fpm/pool.d/alice.conf", pool_conf(
        "alice", extra="chdir = /var/www/alice\nslowlog = log/$pool.slow\napparmor_hat = alice\n"
        "php_admin_value[open_basedir] = /var/www/alice\nphp_value[open_basedir] = /\n"
        "php_admin_value[open_basedir] = /ignored\nenv[TMPDIR] = /var/tmp/alice\n"))
    (pool,) = read_all(str(sysroot), environ={})
    assert (pool.version, pool.name, pool.user, pool.hat) == ("8.2", "alice", "alice", "alice")
    assert pool.listen == "/run/php/alice.sock"  # a system path, not below the root
    assert pool.chdir == "/var/www/alice"
    assert pool.slowlog == "/usr/log/alice.slow"  # relative to the prefix, as php-fpm does
    assert pool.config_file == str(conf)  # on disk
    assert pool.php_admin_values == {"open_basedir": "/var/www/alice"}  # first one wins
    assert pool.ini("open_basedir") == "/var/www/alice"  # admin beats value
    assert pool.ini("upload_tmp_dir") == "/var/tmp/php"  # php.ini as the fallback
    assert pool.ini("nonexistent") is None
    assert pool.env == {"TMPDIR": "/var/tmp/alice"}
    assert pool.origins["php_admin_value[open_basedir]"].line == 9
    assert pool.origins["php_admin_value[open_basedir]"].file == str(conf)
    assert pool.origins["apparmor_hat"].line == 8
    assert pool.installation.config == "/etc/php/8.2/fpm/php-fpm.conf"


def test_users_come_from_the_root_not_the_host(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", user="nobody"))
    with pytest.raises(ConfigError, match="nobody"):  # exists on the host, not in the root
        read_all(str(sysroot), environ={})


def test_hat_last_wins_across_merged_files(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/10.conf", pool_conf("Blog", extra="apparmor_hat = first\n"))
    write(sysroot, "/etc/php/8.2/fpm/pool.d/20.conf", "[BLOG]\napparmor_hat = \"${HAT}_$pool\"\n")
    (pool,) = read_all(str(sysroot), environ={"HAT": "php"})
    assert (pool.name, pool.hat) == ("Blog", "php_Blog")
    assert pool.origins["apparmor_hat"].file.endswith("20.conf")


def test_no_hat_is_none(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    assert read_all(str(sysroot), environ={})[0].hat is None


def test_every_version_is_read(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    write(sysroot, "/etc/php/7.4/fpm/php-fpm.conf", MAIN.replace("8.2", "7.4"))
    write(sysroot, "/etc/php/7.4/fpm/pool.d/a.conf", pool_conf("a").replace("/run/php/a", "/run/php/a74"))
    assert [(p.version, p.name) for p in read_all(str(sysroot), environ={})] == [("7.4", "a"), ("8.2", "a")]


# -- hostile input: one-line ConfigError naming the file, fast, never a traceback --------
def refused(sysroot, match):
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        read_all(str(sysroot), environ={})
    assert time.monotonic() - start < 5
    text = str(info.value)
    assert "\n" not in text and info.value.file
    assert match in text, text
    return info.value


def test_binary_junk(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    write(sysroot, "/etc/php/8.2/fpm/pool.d/b.conf", os.urandom(4096) + b"\x00")
    err = refused(sysroot, "b.conf")
    assert err.line


def test_invalid_utf8(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", extra="php_value[x] = caf\xe9\n").encode("latin-1"))
    assert refused(sysroot, "UTF-8").line == 6


def test_ten_megabyte_line(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a") + "php_value[x] = " + "a b " * (10 << 18) + "\n")
    assert refused(sysroot, "longer than").line == 6


def test_huge_file(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a") + ";\n" * (9 << 20))
    refused(sysroot, "larger than")


def test_include_loop(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", extra="include=/etc/loop/*.conf\n"))
    write(sysroot, "/etc/loop/x.conf", "include=/etc/loop/y.conf\n")
    write(sysroot, "/etc/loop/y.conf", "include=/etc/loop/x.conf\n")
    refused(sysroot, "recursively")


def test_missing_include_directory(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", extra="include=/etc/nowhere/*.conf\n"))
    assert refused(sysroot, "a.conf").line == 6


def test_dangling_symlink_is_unreadable(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    os.symlink("/nonexistent/target.conf", sysroot / "etc/php/8.2/fpm/pool.d/b.conf")
    refused(sysroot, "b.conf")


def test_fifo_does_not_hang(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    os.mkfifo(sysroot / "etc/php/8.2/fpm/pool.d/b.conf")
    refused(sysroot, "not a regular file")


def test_unreadable_file(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    secret = write(sysroot, "/etc/php/8.2/fpm/pool.d/b.conf", pool_conf("b"))
    secret.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root reads mode-000 files; covered by the dangling symlink case")
    refused(sysroot, "b.conf")


def test_main_config_that_is_not_a_file(sysroot):
    (inst,) = find_installations(str(sysroot))
    (sysroot / "etc/php/8.2/fpm/php-fpm.conf").unlink()
    (sysroot / "etc/php/8.2/fpm/php-fpm.conf").mkdir()
    with pytest.raises(ConfigError, match="php-fpm.conf"):
        read_pools(inst, str(sysroot), environ={})


def test_pool_name_with_pool_token_would_loop_php_fpm(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a$pool").replace("/run/php/a$pool", "/run/php/x")
          + "slowlog = /var/log/$pool.log\n")
    refused(sysroot, "$pool")


def test_broken_php_ini_is_tolerated_like_php(sysroot):
    write(sysroot, "/etc/php/8.2/fpm/php.ini", "good = 1\nbad = \"unterminated\nlater = 2\n")
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", extra="php_value[x] = ${good}\n"))
    assert read_all(str(sysroot), environ={})[0].php_values == {"x": "1"}


def test_thousand_pools_well_under_a_second(sysroot):
    for i in range(1000):
        write(sysroot, f"/etc/php/8.2/fpm/pool.d/p{i}.conf", pool_conf(
            f"p{i}", extra=f"php_admin_value[open_basedir] = /var/www/p{i}:/tmp\nenv[TMPDIR] = /tmp/p{i}\n"))
    start = time.process_time()  # CPU time: other jobs on a shared CI box must not fail this
    pools = read_all(str(sysroot), environ={})
    elapsed = time.process_time() - start
    assert len(pools) == 1000
    assert elapsed < 1.0, elapsed  # the budget; bench/bench_pools.py prints the real number


def test_symlinks_resolve_inside_the_root(sysroot):
    # An absolute link target names a path of the system tree, not of the host running us.
    write(sysroot, "/etc/shared/pools/a.conf", pool_conf("a", extra="apparmor_hat = from-the-root\n"))
    (sysroot / "etc/php/8.2/fpm/pool.d").mkdir()
    os.symlink("/etc/shared/pools/a.conf", sysroot / "etc/php/8.2/fpm/pool.d/a.conf")
    os.symlink("/etc/shared/pools", sysroot / "etc/php/8.2/fpm/linked")
    write(sysroot, "/etc/php/8.2/fpm/php-fpm.conf", MAIN + "include=/etc/php/8.2/fpm/linked/*.cnf\n")
    write(sysroot, "/etc/shared/pools/b.cnf", pool_conf("b"))
    pools = read_all(str(sysroot), environ={})
    assert [(p.name, p.hat) for p in pools] == [("a", "from-the-root"), ("b", None)]
    assert pools[0].config_file == str(sysroot / "etc/php/8.2/fpm/pool.d/a.conf")


def test_trailing_dollar_keeps_the_newline_like_php_fpm(sysroot):
    # Verified: php-fpm 8.2 -tt created the access log as "acc$\n" ("$" + any char is a
    # literal pair in the Zend scanner, the line's newline included).
    write(sysroot, "/var/log/.keep", "")
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a", extra="access.log = /var/log/acc$\n"))
    assert read_all(str(sysroot), environ={})[0].access_log == "/var/log/acc$\n"


def test_a_line_repeated_across_pools_and_versions_reads_as_in_each(sysroot):
    """The reader keeps each plain line's parse (a panel writes the same lines into every
    pool): $pool must still expand per pool, and a constant per PHP version."""
    write(sysroot, "/etc/php/8.4/fpm/php-fpm.conf", MAIN.replace("8.2", "8.4"))
    same = "listen = /run/php/$pool.sock\nphp_admin_value[error_reporting] = E_ALL\n"
    for version, names in (("8.2", ("a", "b")), ("8.4", ("c",))):
        for name in names:
            write(sysroot, f"/etc/php/{version}/fpm/pool.d/{name}.conf",
                  f"[{name}]\nuser = alice\npm = static\npm.max_children = 1\n{same}")
    got = {p.name: (p.listen, p.php_admin_values["error_reporting"]) for p in read_all(str(sysroot), environ={})}
    assert got == {"a": ("/run/php/a.sock", "32767"), "b": ("/run/php/b.sock", "32767"),
                   "c": ("/run/php/c.sock", "30719")}  # PHP 8.4's E_ALL has no E_STRICT


def test_included_files_the_listing_shows_as_plain_or_not(sysroot):
    """include= matches are opened through the directory listing unless they are a
    symlink (resolved inside the root) or a directory (skipped, as GLOB_MARK does)."""
    write(sysroot, "/etc/php/8.2/fpm/pool.d/a.conf", pool_conf("a"))
    write(sysroot, "/srv/real/b.conf", pool_conf("b"))
    os.symlink("/srv/real/b.conf", sysroot / "etc/php/8.2/fpm/pool.d/b.conf")  # absolute: inside the root
    (sysroot / "etc/php/8.2/fpm/pool.d/c.conf").mkdir()
    pools = read_all(str(sysroot), environ={})
    assert [(p.name, p.config_file) for p in pools] == [
        ("a", str(sysroot / "etc/php/8.2/fpm/pool.d/a.conf")),
        ("b", str(sysroot / "etc/php/8.2/fpm/pool.d/b.conf"))]


def test_live_accounts_listed_once_and_a_name_the_listing_lacks_still_asked(monkeypatch):
    """On "/" a host with many pools has its users and groups listed once (a getpwnam per
    pool reads /etc/passwd again each time); before that, and for a name the listing lacks
    (a directory service need not list its accounts), each is asked for alone, as php-fpm
    asks."""
    import grp
    import pwd

    from php_fpm_apparmor import pools
    from php_fpm_apparmor.discover import Installation

    listed = []
    monkeypatch.setattr(pwd, "getpwall", lambda: listed.append("users") or [pwd.getpwnam("root")])
    monkeypatch.setattr(grp, "getgrall", lambda: listed.append("groups") or [grp.getgrnam("root")])
    inst = Installation("8.2", "/usr/sbin/php-fpm8.2", "/etc/php/8.2/fpm/php-fpm.conf",
                        "/etc/php/8.2/fpm/php.ini", "php8.2-fpm.service", "/usr")
    reader = pools._Reader(inst, "/", {}, {})
    nobody = pwd.getpwuid(65534).pw_name
    assert reader.user_exists("root") and reader.user_exists(nobody) and not reader.user_exists("no-such-user-pfa")
    assert reader.group_exists("root") and not reader.group_exists("no-such-group-pfa")
    assert listed == []  # a few pools: asked alone
    for i in range(pools.ASK_ALONE):
        assert not reader.user_exists(f"no-such-user-pfa{i}")
        assert not reader.group_exists(f"no-such-group-pfa{i}")
    assert listed == ["users", "groups"]  # then listed, once each
    assert reader.user_exists(pwd.getpwuid(1).pw_name)  # not in the listing: still asked for alone
    assert not reader.user_exists("no-such-user-pfa-late") and not reader.group_exists("no-such-group-pfa-late")
    assert listed == ["users", "groups"]
