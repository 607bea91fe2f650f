"""The shared plugin helpers: the PHP config reader must never execute, hang or raise."""

import inspect
import time

import pytest
from hypothesis import given, settings, strategies as st

import apptrees as at
from php_fpm_apparmor.apps import App
from php_fpm_apparmor.expect import Expectation
from php_fpm_apparmor import apphelpers as _common
from php_fpm_apparmor_plugins import nextcloud, webp_express, wordpress, wp_super_cache
from php_fpm_apparmor.api import UNKNOWN, plugin_header, read_php, unsafe_path

MODULES = (wordpress, webp_express, wp_super_cache, nextcloud)


def php(tmp_path, text, **ctx):
    p = tmp_path / "x.php"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read_php(p, "/var/www/x/x.php", **ctx)


def test_defines_and_assignments(tmp_path):
    f = php(tmp_path, """<?php
// define('WP_CONTENT_DIR', '/commented');
/* define('WP_CONTENT_DIR', '/block'); */
# define('WP_CONTENT_DIR', '/hash');
define( 'WP_CONTENT_DIR', __DIR__ . "/content" );
define('WP_CONTENT_DIR', '/second-define-is-ignored');
define("DISALLOW_FILE_MODS", TRUE);
define('UPLOADS', 'wp-content/' . 'media');
define('WP_LANG_DIR', dirname(__FILE__, 2) . '/lang');
define('X', 'it\\'s');
define('Y', "tab\\there");
define('Z', "$interpolated/path");
define('N', 0x10);
$table_prefix = 'wp_';
$x = foo('bar');
""")
    assert f.defines["WP_CONTENT_DIR"] == "/var/www/x/content"
    assert f.defines["DISALLOW_FILE_MODS"] is True
    assert f.defines["UPLOADS"] == "wp-content/media"
    assert f.defines["WP_LANG_DIR"] == "/var/www/lang"
    assert f.defines["X"] == "it's"
    assert f.defines["Y"] == "tab\there"
    assert f.defines["Z"] is UNKNOWN
    assert f.defines["N"] == 16
    assert f.assigns["$table_prefix"] == "wp_"
    assert f.assigns["$x"] is UNKNOWN
    assert f.where("UPLOADS") == "/var/www/x/x.php:8"


def test_nextcloud_arrays(tmp_path):
    f = php(tmp_path, """<?php
$CONFIG = array (
  'apps_paths' => [ ['path' => \\OC::$SERVERROOT . '/apps', 'writable' => false],
                    5 => array('path' => OC::$SERVERROOT.'/custom_apps', 'writable' => true), ],
  'datadirectory' => '/srv/data', 'n' => null, 'list' => array('a', 'b'),
  'weird' => $a ? 'b' : 'c', 'after' => 'still read',
);""", serverroot="/var/www/nc")
    c = f.assigns["$CONFIG"]
    assert c["apps_paths"] == {0: {"path": "/var/www/nc/apps", "writable": False},
                               5: {"path": "/var/www/nc/custom_apps", "writable": True}}
    assert c["datadirectory"] == "/srv/data"
    assert c["n"] is None and c["list"] == {0: "a", 1: "b"}
    assert c["weird"] is UNKNOWN and c["after"] == "still read"


def test_inline_html_and_close_tags(tmp_path):
    f = php(tmp_path, "<html><?php define('A', 'x') ?> define('B', 'not php') <?php define('C', 1);")
    assert f.defines == {"A": "x", "C": 1}


@pytest.mark.parametrize("junk", [
    b"", b"\x00\xff\xfe<?php define(", b"<?php define('A', array(array(array(" * 200,
    b"<?php " + b"(" * 100_000, b"<?php $CONFIG = [" + b"'a' => [" * 5000,
    b"<?php define('A', 'unterminated", b"<?php /* never closed", b"<?php <<<EOT\nx\nEOT;\n",
    b"<?php define('A', " + b"'x' . " * 20_000 + b"'y');",
])
def test_hostile_input_never_raises(tmp_path, junk):
    start = time.perf_counter()
    php(tmp_path, junk)
    assert time.perf_counter() - start < 5


def test_big_file_is_read_only_partly(tmp_path):
    f = php(tmp_path, "<?php define('A', 1);\n" + "// x\n" * 400_000)
    assert f.defines == {"A": 1}
    assert any("larger than" in p for p in f.problems)


def test_unreadable_or_missing(tmp_path):
    f = read_php(tmp_path / "nope.php", "/nope.php")
    assert not f.exists and f.problems == []
    d = tmp_path / "dir.php"
    d.mkdir()
    f = read_php(d, "/dir.php")
    assert not f.exists and f.problems == ["/dir.php: not a regular file: not read"]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="<?php$'\"\\(){}[],;.=>/*#\n abcdefineOC:_0123", max_size=300))
def test_fuzz_reader_never_raises(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("fuzz") / "f.php"
    p.write_text("<?php " + text)
    facts = read_php(p, "/f.php", abspath="/r/", serverroot="/r")
    for v in facts.defines.values():
        assert v is UNKNOWN or isinstance(v, (str, int, float, bool, dict, type(None)))


def test_plugin_header(tmp_path):
    p = tmp_path / "p.php"
    p.write_text(at.WEBP_EXPRESS_HEADER)
    assert plugin_header(p, "Version") == "0.25.15"
    assert plugin_header(p, "Plugin Name") == "WebP Express"
    p.write_text("<?php\n/* Plugin Name: X\n * Version: 1.0; rm -rf /\n */")
    assert plugin_header(p, "Version") is None  # not a version: never shown
    p.write_text("<?php\n" + "x" * 9000 + "\n/* Plugin Name: Late */")
    assert plugin_header(p, "Plugin Name") is None  # WordPress reads only the first 8 KiB


@pytest.mark.parametrize("path,bad", [
    ("/srv/nextcloud-data", False), ("/var/www/blog/wp-content", False), ("/", True),
    ("/etc", True), ("/etc/cron.d", True), ("/usr/lib/x", True), ("/var/www", True),
    ("/srv", True), ("relative/path", True), ("/srv/a\nb", True), ("/var/log/x", True),
])
def test_unsafe_path(path, bad):
    assert bool(unsafe_path(path)) == bad


@at.needs_root
@pytest.mark.parametrize("file_owner,file_mode,link_owner,target_owner,ok", [
    (1001, 0o644, None, 1001, True),  # the customer's file names the customer's dir
    (1001, 0o644, None, 1002, False),  # ... another user's
    (1001, 0o644, None, 0, False),  # ... root's
    (1001, 0o664, None, 1001, True),  # group-writable by the customer's own group (umask 002)
    ((1001, 33), 0o664, None, 1001, False),  # ... by www-data's: every pool running as it
    (0, 0o644, None, 1002, True),  # root's file: the admin's word
    ((0, 33), 0o664, None, 0, False),  # root's, but www-data may write it: nobody's in particular
    (1001, 0o646, None, 1001, False),  # everyone may write it
    (None, None, 1001, 1001, True),  # a default place through the customer's own symlink
    (None, None, 1001, 1002, False),  # ... onto another user's
    (None, None, 0, 1002, True),  # root's symlink leads anywhere
    (0, 0o644, 1001, 1002, False),  # root's file, but the way passes the customer's symlink
])
def test_named_path_asks_whose_word_it_is(tmp_path, file_owner, file_mode, link_owner, target_owner, ok):
    """api.named_path: outside the pool's roots, each non-root teller (the file that names
    the place, a symlink on the way) must own it."""
    import os
    from php_fpm_apparmor.api import named_path
    site = at.site(tmp_path, "blog", ["/var/www/blog"])
    (tmp_path / "var/www/blog").mkdir(parents=True)
    (tmp_path / "etc").mkdir()  # 1001's group is its own (user private groups), www-data's is not
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\ncust:x:1001:1001::/home/cust:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nwww-data:x:33:cust\ncust:x:1001:\n")
    target = tmp_path / "srv/place"
    target.mkdir(parents=True)
    os.chown(target, target_owner, target_owner)
    path = "/srv/place"
    if link_owner is not None:
        (tmp_path / "home/blog").mkdir(parents=True)
        (tmp_path / "home/blog/link").symlink_to("/srv/place")
        os.lchown(tmp_path / "home/blog/link", link_owner, link_owner)
        path = "/home/blog/link"
    told_by = None
    if file_owner is not None:
        conf = tmp_path / "var/www/blog/wp-config.php"
        conf.write_text(f"<?php define('WP_CONTENT_DIR', '{path}');\n")
        uid, gid = file_owner if isinstance(file_owner, tuple) else (file_owner, file_owner)
        os.chown(conf, uid, gid)
        conf.chmod(file_mode)
        told_by = read_php(conf, "/var/www/blog/wp-config.php")
        assert (told_by.uid, told_by.gid, told_by.mode) == (uid, gid, file_mode)
    canon, why = named_path(site, path, told_by)
    assert canon == "/srv/place"
    assert (why is None) is ok, why
    # the same judgement from the file's path instead of its facts
    if told_by is not None:
        assert named_path(site, path, "/var/www/blog/wp-config.php") == (canon, why)


@at.needs_root
def test_named_path_an_acl_makes_a_private_groups_file_anyones(tmp_path):
    """An ACL's named entries show only as the group bits: on a file of the customer's
    private group (0664 cust:cust) an ACL letting www-data write makes it nobody's word."""
    import os
    import struct
    from php_fpm_apparmor.api import named_path
    site = at.site(tmp_path, "blog", ["/var/www/blog"])
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("cust:x:1001:1001::/home/cust:/bin/sh\n")
    (tmp_path / "etc/group").write_text("cust:x:1001:\n")
    (tmp_path / "srv/place").mkdir(parents=True)
    os.chown(tmp_path / "srv/place", 1001, 1001)
    conf = tmp_path / "var/www/blog/wp-config.php"
    conf.parent.mkdir(parents=True)
    conf.write_text("<?php\n")
    os.chown(conf, 1001, 1001)
    conf.chmod(0o664)
    assert named_path(site, "/srv/place", "/var/www/blog/wp-config.php") == ("/srv/place", None)
    # the same group with www-data in it is not the customer's alone
    from php_fpm_apparmor import whose
    (tmp_path / "etc/group").write_text("cust:x:1001:www-data\n")
    whose._private_group.cache_clear()
    assert "group 1001" in named_path(site, "/srv/place", "/var/www/blog/wp-config.php")[1]
    (tmp_path / "etc/group").write_text("cust:x:1001:\n")
    whose._private_group.cache_clear()
    # user:www-data:rw- (tags: USER_OBJ, USER, GROUP_OBJ, MASK, OTHER; 0xffffffff: no id)
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in [
        (0x01, 6, 0xFFFFFFFF), (0x02, 6, 33), (0x04, 6, 0xFFFFFFFF), (0x10, 6, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)])
    try:
        os.setxattr(conf, "system.posix_acl_access", acl)
    except OSError:
        pytest.skip("no POSIX ACLs on this file system")
    canon, why = named_path(site, "/srv/place", "/var/www/blog/wp-config.php")
    assert why and "ACL" in why, why


@at.needs_root
@pytest.mark.parametrize("place,why", [
    ("/tmp/php-b", "where anyone may make it"),  # pool b's temp dir, made first by the customer
    ("/var/lib/nginx/body", "a service's state"),  # www-data's, like a www-data host's sites
])
def test_named_path_places_whose_owner_says_nothing(tmp_path, place, why):
    """Owning a place proves nothing in a sticky world-writable directory (anyone could have
    made /tmp/php-b before pool b did), nor in a service's state (/var/lib/nginx is www-data's
    on a host whose sites are all www-data's): only root's word names those."""
    import os
    from php_fpm_apparmor.api import named_path
    site = at.site(tmp_path, "a", ["/var/www/a"])
    (tmp_path / "tmp").mkdir(mode=0o777)
    (tmp_path / "tmp").chmod(0o1777)
    disk = tmp_path / place.lstrip("/")
    disk.mkdir(parents=True)
    conf = tmp_path / "var/www/a/wp-config.php"
    conf.parent.mkdir(parents=True)
    conf.write_text("<?php\n")
    for p in (disk, conf):
        os.chown(p, 33, 33)
    canon, said = named_path(site, place, "/var/www/a/wp-config.php", write=True)
    assert said and why in said, said
    if place.startswith("/tmp/"):  # the pool's own temp dir (its config is root's): the admin's
        own = at.site(tmp_path, "a", ["/var/www/a"], ini={"upload_tmp_dir": place})
        assert named_path(own, place, "/var/www/a/wp-config.php", write=True) == (place, None)
    os.chown(conf, 0, 0)  # root's word
    assert named_path(site, place, "/var/www/a/wp-config.php", write=True) == (place, None)


def test_named_path_inside_the_roots_and_system_dirs(tmp_path):
    from php_fpm_apparmor.api import named_path
    site = at.site(tmp_path, "wp", ["/usr/share/wordpress"])
    (tmp_path / "usr/share/wordpress/wp-content").mkdir(parents=True)
    assert named_path(site, "/usr/share/wordpress/wp-content") == ("/usr/share/wordpress/wp-content", None)
    assert "system directory /etc" in named_path(site, "/etc/phpmyadmin")[1]
    assert "control character" in named_path(site, "/usr/share/wordpress/a\nb")[1]
    site.read_paths = ["/srv/shared"]  # the admin's word: whoever owns it
    assert named_path(site, "/srv/shared/x", "/nonexistent.php") == ("/srv/shared/x", None)
    assert named_path(site, "/srv/other", "/nonexistent.php")[1]  # a file not there: nobody's word


def test_any_case_and_ext_glob():
    assert _common.any_case("mp4") == "[mM][pP]4"
    assert _common.ext_glob(["webp"]) == "[wW][eE][bB][pP]"
    assert _common.ext_glob(["a", "b"]) == "{[aA],[bB]}"


def test_every_plugin_is_an_entry_point_and_ignores_foreign_apps(tmp_path):
    plugins = at.first_party()
    names = {i.name: i for i in plugins.info}
    for name in ("wordpress", "webp_express", "wp_super_cache", "nextcloud"):
        assert names[name].source == "first-party"
    s = at.site(tmp_path, "x", ["/var/www/x"])
    foreign = App("drupal", "/var/www/x")
    for m in MODULES:
        assert m.php_fpm_apparmor_rules(s, foreign) == []
        assert m.php_fpm_apparmor_exceptions(s, foreign) == []
        assert m.php_fpm_apparmor_check(s, foreign) == []
        takes = inspect.signature(m.php_fpm_apparmor_detect).parameters  # `found` only if it waits for an app
        assert m.php_fpm_apparmor_detect(**{a: {"site": s, "found": []}[a] for a in takes}) == []


def test_expectation_tables_are_well_formed():
    for m in MODULES:
        rows = m.EXPECTATIONS
        assert rows and all(isinstance(r, Expectation) for r in rows)
        assert any(r.expect == "allow" for r in rows) and any(r.expect == "deny" for r in rows)
        for r in rows:
            r.resolve(root="/r", other="/o", data="/d", content="/c")
    with pytest.raises(ValueError):
        Expectation("exec", "/bin/sh", "allow", "x", ("/bin/bash",))
    with pytest.raises(ValueError):
        Expectation("delete", "/x", "allow", "x")
    with pytest.raises(ValueError):
        Expectation("read", "/x", "maybe", "x")


def test_site_files_that_are_not_regular_are_refused_without_blocking(tmp_path):
    """A FIFO where a plugin reads a site file (the site's owner can make one at any time,
    also between a plugin's is_file() and its read): refused at once, never waited on."""
    import os
    import signal

    from php_fpm_apparmor.api import NotRegular, open_regular

    fifo = tmp_path / "wp-config.php"
    os.mkfifo(fifo)

    def hang(signum, frame):
        raise AssertionError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(5)
    try:
        facts = read_php(fifo, "/var/www/x/wp-config.php")
        assert not facts.exists and facts.problems == ["/var/www/x/wp-config.php: not a regular file: not read"]
        assert plugin_header(fifo, "Version") is None
        with pytest.raises(NotRegular):
            open_regular(fifo)
        with pytest.raises(NotRegular):
            open_regular(tmp_path)  # a directory neither
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    (tmp_path / "ok.php").write_text("<?php define('X', 'y');")
    with open_regular(tmp_path / "ok.php") as f:
        assert f.read() == b"<?php define('X', 'y');"


def test_what_is_not_a_regular_file_is_never_opened_for_reading(tmp_path):
    """A site's symlink to a device makes the generator (root) open it: a driver's open can
    act (a watchdog reboots the host once closed, a tape rewinds). Only a reference is taken
    (O_PATH) until the file is known to be regular. Seen from a FIFO: a writer waiting in
    open() for a reader would be let through by any read open, even a non-blocking one."""
    import os
    import subprocess
    import sys
    import time

    from php_fpm_apparmor.api import NotRegular, open_regular

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "wp-config.php"
    link.symlink_to(fifo)
    def waiting_writer():
        writer = subprocess.Popen([sys.executable, "-c", f"open({str(fifo)!r}, 'w'); print('opened')"],
                                  stdout=subprocess.PIPE, text=True)
        for _ in range(1000):  # until it waits in open() (the kernel's wait_for_partner)
            with open(f"/proc/{writer.pid}/wchan") as f:
                if f.read() == "wait_for_partner":
                    return writer
            time.sleep(0.01)
        raise AssertionError("the writer never reached open()")

    writer = waiting_writer()
    try:
        for _ in range(3):
            with pytest.raises(NotRegular):
                open_regular(link)
        with pytest.raises(subprocess.TimeoutExpired):
            writer.communicate(timeout=1)  # still waiting for a reader: none came
    finally:
        writer.kill()
        writer.wait()
    # the control: a read open does let it through (the harness can see an open)
    writer = waiting_writer()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert writer.communicate(timeout=10)[0].strip() == "opened"
    finally:
        os.close(fd)


def test_without_proc_a_regular_file_is_still_read(tmp_path, monkeypatch):
    """A bare chroot without /proc: the reference cannot be reopened, the name is opened
    again and must still be the file that was checked."""
    import os

    from php_fpm_apparmor import pools
    from php_fpm_apparmor.api import open_regular

    real = os.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/self/fd/"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pools.os, "open", no_proc)
    (tmp_path / "ok.php").write_text("<?php define('X', 'y');")
    with open_regular(tmp_path / "ok.php") as f:
        assert f.read() == b"<?php define('X', 'y');"


def test_read_regular_reads_up_to_its_limit_a_file_grown_since_its_stat_too(tmp_path, monkeypatch):
    """read_regular sizes its read to the file's stat: a file that grew in between is still
    read to the limit (a caller refusing a file over N bytes asks for N + 1, and must see
    the N + 1st); a smaller file whole, with one read; what is not regular, never."""
    import os

    from php_fpm_apparmor import pools
    from php_fpm_apparmor.api import NotRegular

    f = tmp_path / "wp-config.php"
    f.write_bytes(b"x" * 100)
    assert pools.read_regular(f, 1000)[0] == b"x" * 100
    assert pools.read_regular(f, 101)[0] == b"x" * 100
    assert pools.read_regular(f, 100)[0] == b"x" * 100
    assert pools.read_regular(f, 10)[0] == b"x" * 10
    data, st = pools.read_regular(f, 1000)
    assert st.st_size == 100 and st.st_ino == os.stat(f).st_ino
    real = os.fstat

    def stale(fd):  # the stat taken before the file grew to 100 bytes
        st = real(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 3,
                               st.st_atime, st.st_mtime, st.st_ctime))

    monkeypatch.setattr(pools.os, "fstat", stale)
    assert pools.read_regular(f, 1000)[0] == b"x" * 100
    assert pools.read_regular(f, 51)[0] == b"x" * 51
    monkeypatch.undo()
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegular):
        pools.read_regular(tmp_path / "fifo", 10)
    with pytest.raises(NotRegular):
        pools.read_regular(tmp_path, 10)
