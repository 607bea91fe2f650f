"""WordPress plugin on Debian's real WordPress tree: detection, layouts, least privilege."""

import os
import time

import pytest

import apptrees as at
from apptrees import needs_parser, needs_root
from php_fpm_apparmor import evaluate
from php_fpm_apparmor_plugins import wordpress

pytestmark = pytest.mark.skipif(at.wordpress_source() is None, reason="no WordPress tree available")


@pytest.fixture
def blog(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog")
    return tmp_path


def wp_of(found):
    return next(a for a in found if a.name == "wordpress")


def places(app, other="/var/www/other"):
    return {"root": app.root, "content": app.info["content"], "other": other, "data": "/nowhere"}


def test_detects_debian_wordpress_with_version(blog):
    found, pol, text = at.build(at.site(blog, "blog", ["/var/www/blog"]))
    app = wp_of(found)
    real = (at.wordpress_source() / "wp-includes/version.php").read_text()
    assert f"$wp_version = '{app.version}';" in real
    assert app.root == "/var/www/blog"
    assert app.info["config"] == "/var/www/blog/wp-config.php"
    assert app.info["content"] == "/var/www/blog/wp-content"
    assert app.info["disallow_file_mods"] is True
    assert f"app wordpress {app.version} at /var/www/blog" in text


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The default blog and the same blog with code_writes, built once for the tables."""
    out = {}
    for key, settings in (("default", {}), ("code", {"code_writes": "yes"})):
        base = tmp_path_factory.mktemp(key)
        at.wordpress(base, "/var/www/blog", disallow=not settings)
        s = at.site(base, "blog", ["/var/www/blog"], settings=settings)
        out[key] = (s,) + at.build(s)
    return out


@pytest.mark.parametrize("row", wordpress.EXPECTATIONS, ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_expectations_static(built, row):
    s, found, pol, text = built["default"]
    exp = row.resolve(**places(wp_of(found)))
    assert at.judge(text, "blog", exp, s.sysroot) == (exp.expect == "allow"), exp.why


@pytest.mark.parametrize("row", wordpress.EXPECTATIONS_CODE_WRITES,
                         ids=lambda r: f"{r.op}-{r.expect}-{r.target}")
def test_code_writes_expectations(built, row):
    s, found, pol, text = built["code"]
    exp = row.resolve(**places(wp_of(found)))
    assert at.judge(text, "blog", exp, s.sysroot) == (exp.expect == "allow"), exp.why


def test_code_writes_are_named_exceptions_and_pass_invariants(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog", disallow=False)
    s = at.site(tmp_path, "blog", ["/var/www/blog"], settings={"code_writes": "yes"})
    found, pol, text = at.build(s)
    paths = {e.path for e in pol.exceptions}
    assert "/var/www/blog/wp-content/plugins/**" in paths
    assert "/var/www/blog/.maintenance" in paths
    assert "/var/www/blog/wp-content/languages/**.l10n.php" in paths
    assert all(e.why and e.source == "wordpress" for e in pol.exceptions)
    assert at.invariant_problems((s, pol, text)) == []
    # without the exceptions the generator refuses the pool: they are load-bearing
    pol.exceptions.clear()
    problems = at.invariant_problems((s, pol, text))
    assert problems and "no plugin declared this exception" in problems[0]


def test_default_policy_needs_no_exception_and_passes_invariants(blog):
    s = at.site(blog, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    assert [e.path for e in pol.exceptions if e.source == "wordpress"] == []
    assert at.invariant_problems((s, pol, text)) == []


@needs_parser
def test_compiles_with_apparmor_parser(blog):
    s = at.site(blog, "blog", ["/var/www/blog"], settings={"code_writes": "yes", "config_writes": "yes"})
    found, pol, text = at.build(s)
    assert at.compile_error(text, "blog", blog) is None


def test_check_findings_follow_disallow_file_mods(tmp_path):
    at.wordpress(tmp_path, "/var/www/a", disallow=False)
    at.wordpress(tmp_path, "/var/www/b", disallow=True)
    plugins = at.first_party()
    off = at.site(tmp_path, "a", ["/var/www/a"])
    app = wp_of(at.build(off, plugins)[0])
    findings = wordpress.php_fpm_apparmor_check(off, app)
    assert any("lacks DISALLOW_FILE_MODS" in f and "/var/www/a/wp-config.php" in f for f in findings)
    on = at.site(tmp_path, "b", ["/var/www/b"], settings={"code_writes": "yes"})
    app = wp_of(at.build(on, plugins)[0])
    findings = wordpress.php_fpm_apparmor_check(on, app)
    assert any("DISALLOW_FILE_MODS is set" in f for f in findings)
    quiet = at.site(tmp_path, "b", ["/var/www/b"])
    assert wordpress.php_fpm_apparmor_check(quiet, wp_of(at.build(quiet, plugins)[0])) == []


def test_wp_config_one_level_up_is_read(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog/public", config_up=True)
    s = at.site(tmp_path, "blog", ["/var/www/blog/public"])
    found, pol, text = at.build(s)
    assert wp_of(found).info["config"] == "/var/www/blog/wp-config.php"
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "read", "/var/www/blog/wp-config.php")
    assert not evaluate.allows(hat, "read", "/var/www/blog/other.txt")
    assert not evaluate.allows(hat, "write", "/var/www/blog/wp-config.php")


def test_wordpress_in_a_subdirectory_of_the_docroot(tmp_path):
    at.wordpress(tmp_path, "/var/www/example.com/wordpress")
    s = at.site(tmp_path, "ex", ["/var/www/example.com"])
    found, pol, text = at.build(s)
    assert wp_of(found).root == "/var/www/example.com/wordpress"
    hat = evaluate.parse(text)["php-fpm//ex"]
    assert evaluate.allows(hat, "write", "/var/www/example.com/wordpress/wp-content/uploads/a.png")


def test_debian_layout_content_in_var_lib(tmp_path):
    at.wordpress(tmp_path, "/usr/share/wordpress", debian_config=True)
    s = at.site(tmp_path, "blog", ["/usr/share/wordpress"])
    found, pol, text = at.build(s)
    app = wp_of(found)
    assert app.info["content"] == "/var/lib/wordpress/wp-content"
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", "/var/lib/wordpress/wp-content/uploads/2026/11/a.jpg")
    assert evaluate.allows(hat, "read", "/var/lib/wordpress/wp-content/plugins/akismet/akismet.php")
    assert evaluate.allows(hat, "read", "/etc/wordpress/config-blog.example.org.php")
    assert not evaluate.allows(hat, "read", "/etc/wordpress/htaccess")
    assert not evaluate.allows(hat, "write", "/var/lib/wordpress/wp-content/uploads/x.php")
    assert at.invariant_problems((s, pol, text)) == []


@pytest.mark.parametrize("how", ["comment", "symlink"])
def test_a_site_cannot_claim_debians_host_configs(tmp_path, how):
    """wp-config.php is the site user's: naming /etc/wordpress/config- in it (or linking it
    to the package's own) must not let that pool read the package's per-host configs, which
    hold the database passwords of the sites the packaged WordPress serves."""
    at.wordpress(tmp_path, "/usr/share/wordpress", debian_config=True)
    disk = at.wordpress(tmp_path, "/var/www/evil")
    config = disk / "wp-config.php"
    if how == "comment":
        config.write_text(config.read_text() + "\n// require '/etc/wordpress/config-x.php';\n")
    else:
        config.unlink()
        config.symlink_to("/usr/share/wordpress/wp-config.php")  # inside the tree: the root's
    found, pol, text = at.build(at.site(tmp_path, "evil", ["/var/www/evil"]))
    assert wp_of(found).info["debian_config"] is False
    hat = evaluate.parse(text)["php-fpm//evil"]
    assert not evaluate.allows(hat, "read", "/etc/wordpress/config-blog.example.org.php")


def test_debians_package_root_is_claimed_for_a_pool_that_points_there(tmp_path):
    """chdir = /usr/share/wordpress: a system directory the core skips; open_basedir's
    /var/lib/wordpress would be taken instead. The plugin names the real root."""
    from php_fpm_apparmor import generate
    from systree import make_tree, pool_conf

    extra = ("php_admin_value[open_basedir] = /usr/share/wordpress/:/var/lib/wordpress/:"
             "/etc/wordpress/:/usr/share/php/\n")
    make_tree(tmp_path, {"blog": pool_conf("blog", "/usr/share/wordpress", hat="blog", extra=extra),
                         "other": pool_conf("other", "/usr/share", hat="other")}, sites=False)
    at.wordpress(tmp_path, "/usr/share/wordpress", debian_config=True)
    entries = {e.pool.name: e for e in generate.plan(str(tmp_path), at.first_party()).entries}
    e = entries["blog"]
    assert not e.problem, e.problem
    assert e.site.roots == ["/usr/share/wordpress"] and e.site.origin == "claimed by plugin wordpress"
    assert wp_of(e.policy.apps).info["content"] == "/var/lib/wordpress/wp-content"
    assert entries["other"].site.roots == []  # /usr/share holds it, but the pool does not point there


def test_an_absolute_symlink_in_a_system_tree_leads_inside_the_tree(tmp_path):
    """Below --root (the demo, a DPKG_ROOT install) wp-config.php -> /srv/conf/blog.php is
    the tree's /srv/conf/blog.php, as on the system itself, never the host's file."""
    disk = at.wordpress(tmp_path, "/var/www/blog", content_dir="/var/www/blog/content")
    conf = tmp_path / "srv/conf/blog.php"
    conf.parent.mkdir(parents=True)
    (disk / "wp-config.php").rename(conf)
    os.symlink("/srv/conf/blog.php", disk / "wp-config.php")
    assert not os.path.exists("/srv/conf/blog.php")  # the host has none: the old reading found no config
    app = wp_of(at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))[0])
    assert app.info["content"] == "/var/www/blog/content"


def test_hostile_wp_content_dir_is_ignored_and_reported(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog", extra="define('WP_CONTENT_DIR', '/etc');")
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    app = wp_of(found)
    assert app.info["content"] == "/var/www/blog/wp-content"
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert not evaluate.allows(hat, "write", "/etc/uploads/x.jpg")
    findings = wordpress.php_fpm_apparmor_check(s, app)
    assert any("WP_CONTENT_DIR" in f and "system directory /etc" in f and "wp-config.php:" in f
               for f in findings)


def test_computed_values_fall_back_to_defaults(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog",
                 extra="define('WP_CONTENT_DIR', $_SERVER['DOCUMENT_ROOT'] . '/c');")
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    app = wp_of(at.build(s)[0])
    assert app.info["content"] == "/var/www/blog/wp-content"
    assert any("computed at run time" in f for f in wordpress.php_fpm_apparmor_check(s, app))


def test_content_dir_and_uploads_from_wp_config(tmp_path):
    at.wordpress(tmp_path, "/var/www/blog", content_dir="/srv/blog-content",
                 extra="define('UPLOADS', 'media');")
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    app = wp_of(found)
    assert app.info["content"] == "/srv/blog-content"
    assert app.info["uploads"] == "/var/www/blog/media"
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", "/var/www/blog/media/2026/11/a.jpg")
    assert evaluate.allows(hat, "read", "/srv/blog-content/plugins/akismet/akismet.php")
    assert not evaluate.allows(hat, "write", "/var/www/blog/wp-content/uploads/a.jpg")


def test_a_site_naming_another_sites_data_dir_is_refused_not_shared(tmp_path):
    """Equal paths of two pools are shared when the admin configured them (two PHP versions
    of one site, one temp dir); an app's data dir comes from the site's own files, so naming
    another site's (WP_CONTENT_DIR of pool b) must not open it to pool a."""
    from php_fpm_apparmor import generate
    from systree import make_tree, pool_conf

    make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"), "b": pool_conf("b", "/var/www/b", hat="b"),
                         "b2": pool_conf("b2", "/var/www/b", hat="b2")}, sites=False)
    at.wordpress(tmp_path, "/var/www/b", content_dir="/srv/b-content")
    at.wordpress(tmp_path, "/var/www/a", extra="define( 'WP_CONTENT_DIR', '/srv/b-content' );")
    entries = {e.pool.name: e for e in generate.plan(str(tmp_path), at.first_party()).entries}
    a = entries["a"]
    assert a.problem and "reaches pool b" in a.problem and "/srv/b-content" in a.problem, a.problem
    # b is refused too (it keeps its installed hat): which of two sites' files tells the
    # truth is not known here. b and b2 serve one site: their data dir is theirs together.
    for name in ("b", "b2"):
        problem = entries[name].problem
        assert "reaches pool a's data dir" in problem and "reaches pool b" not in problem, problem


CUSTOMER = 1001  # the site's owner: wp-config.php is theirs


def _owned_dir(tmp_path, path: str, uid: int) -> None:
    """`path` in the tree with a file in it, both owned by `uid`."""
    disk = tmp_path / path.lstrip("/")
    disk.mkdir(parents=True, exist_ok=True)
    (disk / "secret.txt").write_text("not the blog's\n")
    for p in (disk, disk / "secret.txt"):
        os.chown(p, uid, uid)


@needs_root
@pytest.mark.parametrize("name,value,owner,opened", [
    ("WP_CONTENT_DIR", "/home/alice/content", 1002, False),  # another user's home
    ("WP_CONTENT_DIR", "/srv/backups", 0, False),  # root's, named by a customer
    ("WP_PLUGIN_DIR", "/home/bob/private", 1003, False),  # read-only: still another user's
    ("WP_LANG_DIR", "/var/www/shared-l10n", 33, False),  # the web server user's: not the customer's
    ("WP_CONTENT_DIR", "/home/blog/content", CUSTOMER, True),  # the customer's own
    ("WP_CONTENT_DIR", "/home/blog/new/content", None, True),  # not there yet: /home/blog is theirs
])
def test_a_customers_wp_config_opens_only_the_customers_dirs(tmp_path, name, value, owner, opened):
    """wp-config.php is the site user's word: a directory outside the site that it names is
    opened only if that user owns it (or, not there yet, the nearest parent that is). A
    customer's define() must not open another user's home or root's backups to the pool on
    the next regenerate (a package trigger, an admin's pool edit)."""
    root = at.wordpress(tmp_path, "/var/www/blog", extra=f"define( '{name}', '{value}' );")
    os.chown(root / "wp-config.php", CUSTOMER, CUSTOMER)
    if owner is None:
        _owned_dir(tmp_path, "/home/blog", CUSTOMER)
    else:
        _owned_dir(tmp_path, value, owner)
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "read", f"{value}/secret.txt") is opened, text
    if name == "WP_CONTENT_DIR":
        assert evaluate.allows(hat, "write", f"{value}/uploads/2026/12/a.jpg") is opened
    problems = wordpress.php_fpm_apparmor_check(s, wp_of(found))
    refused = [p for p in problems if name in p and value in p]
    if opened:
        assert not refused, refused
    else:
        assert len(refused) == 1 and "/var/www/blog/wp-config.php:" in refused[0], problems
        assert f"owned by uid {owner}, on the word of uid {CUSTOMER}, owner of " in refused[0], refused


@needs_root
@pytest.mark.parametrize("mode,group,opened", [
    (0o644, 33, True), (0o664, 0, True),  # root's own group: root's word
    (0o664, 33, False), (0o666, 0, False), (0o640, 33, True)])
def test_roots_wp_config_is_the_admins_word_unless_others_may_write_it(tmp_path, mode, group, opened):
    """A wp-config.php root owns and alone may write names any place (root's /srv); one
    another group (www-data: every pool running as it) or everyone may write is nobody's
    word in particular: nothing outside the site."""
    root = at.wordpress(tmp_path, "/var/www/blog", content_dir="/srv/blog-content")
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nwww-data:x:33:\n")
    os.chown(root / "wp-config.php", 0, group)
    os.chmod(root / "wp-config.php", mode)
    _owned_dir(tmp_path, "/srv/blog-content", 0)
    found, pol, text = at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "read", "/srv/blog-content/secret.txt") is opened
    assert (wp_of(found).info["content"] == "/srv/blog-content") is opened


def _chown_tree(path, uid):
    """The site's directories to `uid` (what lets them replace its files). Not the files:
    they are hard links into the WordPress tree every test shares."""
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chown(p, uid, uid)


@needs_root
def test_a_customer_without_wp_config_does_not_get_the_admins_one_level_up(tmp_path):
    """/var/www/html is the admin's WordPress, its config moved up to /var/www/wp-config.php
    (root's); the customer deletes /var/www/cust/wp-config.php so that wp-load.php takes the
    admin's: not opened to the customer's pool, unless the admin says so (read =)."""
    at.wordpress(tmp_path, "/var/www/html", config_up=True)
    cust = at.wordpress(tmp_path, "/var/www/cust")
    (cust / "wp-config.php").unlink()
    _chown_tree(cust, CUSTOMER)
    s = at.site(tmp_path, "cust", ["/var/www/cust"])
    found, pol, text = at.build(s)
    app = wp_of(found)
    assert app.info["config"] is None
    assert not evaluate.allows(evaluate.parse(text)["php-fpm//cust"], "read", "/var/www/wp-config.php")
    assert any("also that of /var/www/html" in p for p in app.info["problems"]), app.info["problems"]
    s.read_paths = ["/var/www/wp-config.php"]  # the admin's word
    assert wp_of(at.build(s)[0]).info["config"] == "/var/www/wp-config.php"
    # more directories beside it than are looked at: nobody can tell whose it is
    for i in range(wordpress.MAX_SUBDIRS + 1):
        (tmp_path / f"var/www/a{i:03}").mkdir()
    app = wp_of(at.build(at.site(tmp_path, "cust", ["/var/www/cust"]))[0])
    assert app.info["config"] is None and any("more than 64 directories" in p for p in app.info["problems"])
    for i in range(wordpress.MAX_SUBDIRS + 1):
        (tmp_path / f"var/www/a{i:03}").rmdir()
    # the admin's own site, its root owned by www-data (dashboard updates): its config, once
    # no other WordPress beside it lacks one
    (cust / "wp-config.php").write_text("<?php\n")
    _chown_tree(tmp_path / "var/www/html", 33)
    html = wp_of(at.build(at.site(tmp_path, "html", ["/var/www/html"]))[0])
    assert html.info["config"] == "/var/www/wp-config.php", html.info["problems"]


@needs_root
@pytest.mark.parametrize("how", ["symlink to a root-owned log", "symlink, in root's directory",
                                 "a pool-written upload renamed"])
def test_whose_text_a_config_is_not_only_its_owners(tmp_path, how):
    """A file's owner is not always who chose its text. The customer (who owns the site's
    directories) can point wp-config.php at Apache's root-owned access log, after one
    request whose User-Agent is `<?php define('WP_CONTENT_DIR', '/home/alice'); ?>`, or
    rename over it an upload the www-data pool wrote. Whoever may replace the file (the
    owner of a directory on its way, of a symlink to it) is a teller too."""
    root = at.wordpress(tmp_path, "/var/www/blog")
    if "root's directory" not in how:  # (there only the link itself is the customer's)
        _chown_tree(root, CUSTOMER)
    _owned_dir(tmp_path, "/home/alice", 1002)
    evil = "<?php define('WP_CONTENT_DIR', '/home/alice'); ?>"
    config = root / "wp-config.php"
    config.unlink()
    if how.startswith("symlink"):
        log = tmp_path / "var/log/apache2/access.log"
        log.parent.mkdir(parents=True)
        log.write_text(f'203.0.113.7 - - [02/Dec/2026:11:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "{evil}"\n')
        os.chown(log, 0, 4)
        log.chmod(0o640)
        config.symlink_to("../../../var/log/apache2/access.log")  # (in the tree: --root)
        os.lchown(config, CUSTOMER, CUSTOMER)
    else:
        upload = root / "wp-content/uploads/notes.txt"
        upload.parent.mkdir(parents=True, exist_ok=True)
        upload.write_text(evil)
        os.chown(upload, 33, 33)
        _owned_dir(tmp_path, "/home/alice", 33)  # www-data's this time: the upload's owner
        os.rename(upload, config)
    found, pol, text = at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))
    app = wp_of(found)
    assert app.info["content"] == "/var/www/blog/wp-content", app.info["problems"]
    assert not evaluate.allows(evaluate.parse(text)["php-fpm//blog"], "read", "/home/alice/secret.txt")
    assert any(f"on the word of uid {CUSTOMER}" in p for p in app.info["problems"]), app.info["problems"]


@needs_root
def test_the_admins_write_setting_vouches_for_a_dir_the_customer_names(tmp_path):
    """The refusal's remedy: the pool's `write =` (the admin's word) makes the place this
    pool's, whoever owns it. `read =` does not: WordPress writes uploads in its content dir,
    and the admin said read (it still vouches for WP_PLUGIN_DIR, only read)."""
    root = at.wordpress(tmp_path, "/var/www/blog", content_dir="/srv/blog-content",
                        extra="define( 'WP_PLUGIN_DIR', '/srv/shared-plugins' );")
    os.chown(root / "wp-config.php", CUSTOMER, CUSTOMER)
    _owned_dir(tmp_path, "/srv/blog-content", 0)
    _owned_dir(tmp_path, "/srv/shared-plugins", 0)
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    s.read_paths = ["/srv/blog-content", "/srv/shared-plugins"]
    app = wp_of(at.build(s)[0])
    assert app.info["content"] == "/var/www/blog/wp-content"
    assert app.info["plugins"] == "/srv/shared-plugins"
    assert any("write = in" in p for p in app.info["problems"]), app.info["problems"]
    s.write_paths = ["/srv/blog-content"]
    assert wp_of(at.build(s)[0]).info["content"] == "/srv/blog-content"


@needs_root
@pytest.mark.parametrize("link_owner,dir_owner,target_owner,opened", [
    (CUSTOMER, 0, 1002, False), (CUSTOMER, 0, CUSTOMER, True),
    (0, CUSTOMER, 1002, False),  # root's link, but in the customer's wp-content: moved there?
    (0, 0, 1002, True),  # root's link in root's directory: the admin's word
])
def test_a_customers_symlink_for_a_default_dir_leads_only_to_their_own(tmp_path, link_owner, dir_owner,
                                                                       target_owner, opened):
    """wp-content/plugins -> /home/alice/plugins, the link or its directory the customer's:
    judged as if wp-config.php named the place (root's links in root's directories, as
    Debian's, lead anywhere: see test_debian_layout_content_in_var_lib)."""
    root = at.wordpress(tmp_path, "/var/www/blog")
    _owned_dir(tmp_path, "/home/alice/plugins", target_owner)
    import shutil
    shutil.rmtree(root / "wp-content/plugins")
    (root / "wp-content/plugins").symlink_to("/home/alice/plugins")
    os.lchown(root / "wp-content/plugins", link_owner, link_owner)
    os.chown(root / "wp-content", dir_owner, dir_owner)
    found, pol, text = at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "read", "/home/alice/plugins/secret.txt") is opened, text
    problems = wp_of(found).info["problems"]
    assert any("/home/alice/plugins" in p and "not opened" in p for p in problems) is not opened, problems


@needs_root
def test_a_customer_naming_another_sites_data_dir_costs_the_other_site_nothing(tmp_path):
    """The same attack as above with real owners: a's wp-config.php (its customer's) may not
    name b's content dir (b's customer's), so a falls back to its own and b, the victim,
    keeps regenerating. (With both configs root's, above, neither knows whose word wins.)"""
    from php_fpm_apparmor import generate
    from systree import make_tree, pool_conf

    make_tree(tmp_path, {"a": pool_conf("a", "/var/www/a", hat="a"), "b": pool_conf("b", "/var/www/b", hat="b")},
              sites=False)
    at.wordpress(tmp_path, "/var/www/b", content_dir="/srv/b-content")
    a = at.wordpress(tmp_path, "/var/www/a", extra="define( 'WP_CONTENT_DIR', '/srv/b-content' );")
    os.chown(a / "wp-config.php", CUSTOMER, CUSTOMER)
    _owned_dir(tmp_path, "/srv/b-content", 1002)
    entries = {e.pool.name: e for e in generate.plan(str(tmp_path), at.first_party()).entries}
    assert not entries["b"].problem and not entries["a"].problem, (entries["a"].problem, entries["b"].problem)
    wp = wp_of(entries["a"].apps)
    assert wp.info["content"] == "/var/www/a/wp-content"
    assert any("/srv/b-content" in p and "owned by uid 1002" in p for p in wp.info["problems"])
    hat = evaluate.parse(entries["a"].text)["php-fpm//a"]
    assert not evaluate.allows(hat, "read", "/srv/b-content/secret.txt")


def test_multisite_and_legacy_blogs_dir(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/ms", extra="define('MULTISITE', true);")
    (root / "wp-content/blogs.dir/2/files").mkdir(parents=True)
    s = at.site(tmp_path, "ms", ["/var/www/ms"])
    found, pol, text = at.build(s)
    hat = evaluate.parse(text)["php-fpm//ms"]
    assert evaluate.allows(hat, "write", "/var/www/ms/wp-content/uploads/sites/7/2026/11/a.jpg")
    assert evaluate.allows(hat, "write", "/var/www/ms/wp-content/blogs.dir/2/files/2009/01/a.jpg")
    assert not evaluate.allows(hat, "write", "/var/www/ms/wp-content/blogs.dir/2/files/a.php")
    assert not evaluate.allows(hat, "write", "/var/www/ms/wp-content/blogs.dir/2/a.jpg")


def test_docroot_with_spaces_and_glob_characters(tmp_path):
    root = "/var/www/my blog {test}[1]"
    at.wordpress(tmp_path, root)
    s = at.site(tmp_path, "odd", [root])
    found, pol, text = at.build(s)
    hat = evaluate.parse(text)["php-fpm//odd"]
    assert evaluate.allows(hat, "write", root + "/wp-content/uploads/2026/11/a.jpg")
    assert not evaluate.allows(hat, "write", "/var/www/my blog t1/wp-content/uploads/a.jpg")
    assert at.invariant_problems((s, pol, text)) == []
    assert at.compile_error(text, "odd", tmp_path) is None


def test_symlinked_root_is_canonical(tmp_path):
    at.wordpress(tmp_path, "/srv/sites/blog")
    (tmp_path / "var/www").mkdir(parents=True)
    (tmp_path / "var/www/blog").symlink_to("/srv/sites/blog")
    s = at.site(tmp_path, "blog", [at.Site.canonical(at.site(tmp_path, "x", []), "/var/www/blog")])
    found, pol, text = at.build(s)
    assert wp_of(found).root == "/srv/sites/blog"
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert evaluate.allows(hat, "write", "/srv/sites/blog/wp-content/uploads/a.jpg")


def test_two_wordpress_pools_stay_apart(tmp_path):
    at.wordpress(tmp_path, "/var/www/a")
    at.wordpress(tmp_path, "/var/www/b")
    plugins = at.first_party()
    built = []
    for name in ("a", "b"):
        s = at.site(tmp_path, name, [f"/var/www/{name}"])
        found, pol, text = at.build(s, plugins)
        built.append((s, pol, text))
    assert at.invariant_problems(*built) == []
    hat_a = evaluate.parse(built[0][2])["php-fpm//a"]
    assert not evaluate.allows(hat_a, "read", "/var/www/b/wp-config.php")
    assert not evaluate.allows(hat_a, "write", "/var/www/b/wp-content/uploads/a.jpg")


def test_detection_takes_milliseconds_on_a_huge_site(tmp_path):
    root = at.wordpress(tmp_path, "/var/www/big")
    at.many_files(root, 100_000)
    plugins = at.first_party()
    from php_fpm_apparmor import apps

    s = at.site(tmp_path, "big", ["/var/www/big"])
    start = time.perf_counter()
    found = apps.detect(s, plugins)
    elapsed = time.perf_counter() - start
    assert [a.name for a in found] == ["wordpress"]
    print(f"detection on 100,000+ files: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.2


def test_not_wordpress_without_marker(tmp_path):
    (tmp_path / "var/www/plain").mkdir(parents=True)
    (tmp_path / "var/www/plain/index.php").write_text("<?php echo 1;")
    (tmp_path / "var/www/plain/wp-config.php").write_text("<?php define('WP_CONTENT_DIR', '/srv');")
    found, pol, text = at.build(at.site(tmp_path, "plain", ["/var/www/plain"]))
    assert found == []


@needs_parser
@pytest.mark.parametrize("value", [
    '/var/www/blog/c\\" /etc/shadow r, \\"',            # a quote to end the path early
    "/var/www/blog/c} /etc/** rw, {",                   # braces and a glob
    "/var/www/blog/c\\n/etc/** rw,",                    # a newline (refused, never escaped)
    "/var/www/blog/@{HOME}/x",                          # an AppArmor variable
])
def test_hostile_config_values_cannot_inject_rules(tmp_path, value):
    at.wordpress(tmp_path, "/var/www/blog", extra=f'define("WP_CONTENT_DIR", "{value}");')
    s = at.site(tmp_path, "blog", ["/var/www/blog"])
    found, pol, text = at.build(s)
    assert at.compile_error(text, "blog", tmp_path) is None
    hat = evaluate.parse(text)["php-fpm//blog"]
    assert not evaluate.allows(hat, "read", "/etc/shadow")
    assert not evaluate.allows(hat, "write", "/etc/passwd")
    assert not evaluate.allows(hat, "write", "/root/x.jpg")
    assert at.invariant_problems((s, pol, text)) == []


@pytest.mark.parametrize("link,target", [
    ("wp-content/plugins", "/etc/phpmyadmin"), ("wp-content/languages", "/etc/phpmyadmin"),
    ("wp-content/uploads", "/etc/phpmyadmin"), ("wp-content", "/root"),
    ("wp-content/debug.log", "/home/alice/notes.txt")])
def test_a_sites_symlink_out_of_it_opens_nothing(tmp_path, link, target):
    """The site user's symlinks are judged where they lead, for WordPress's default places
    as for the values in wp-config.php: into a system directory or onto a file that is not
    a log, they are not opened (a problem line says so)."""
    root = at.wordpress(tmp_path, "/var/www/blog",
                        extra="define( 'WP_DEBUG_LOG', '/var/www/blog/wp-content/debug.log' );")
    dest = tmp_path / target.lstrip("/")
    if target.endswith(".txt"):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("alice's notes\n")
    else:
        (dest / "conf.d").mkdir(parents=True, exist_ok=True)
        (dest / "config-db.php").write_text("<?php $dbpass = 'secret';\n")
    here = root / link
    if here.is_dir() and not here.is_symlink():
        import shutil
        shutil.rmtree(here)
    elif here.exists() or here.is_symlink():
        here.unlink()
    here.parent.mkdir(parents=True, exist_ok=True)
    here.symlink_to(target)  # read as the tree's own /etc, /root, /home (--root)
    found, pol, text = at.build(at.site(tmp_path, "blog", ["/var/www/blog"]))
    hat = evaluate.parse(text)["php-fpm//blog"]
    inside = target + ("" if target.endswith(".txt") else "/config-db.php")
    assert not evaluate.allows(hat, "read", inside), text
    assert not evaluate.allows(hat, "write", target + ("" if target.endswith(".txt") else "/2026/a.jpg"))
    if not target.endswith(".txt"):
        assert any(target in p and "not opened" in p for p in wp_of(found).info["problems"])


@pytest.mark.parametrize("name", ["wp-config.php", "wp-includes/version.php"])
def test_a_fifo_named_like_a_wordpress_file_never_blocks(tmp_path, name):
    """A site's owner can make wp-config.php a FIFO: opened plainly, the read would block
    the hook until its time limit, and with it php-fpm's ExecStartPre; it is refused at
    once instead (the site is then read without it, or not taken for WordPress)."""
    import os

    root = at.wordpress(tmp_path, "/var/www/blog")
    target = root / name
    target.unlink()
    os.mkfifo(target)
    plugins = at.first_party()
    from php_fpm_apparmor import apps

    start = time.perf_counter()
    found = apps.detect(at.site(tmp_path, "blog", ["/var/www/blog"]), plugins)
    assert time.perf_counter() - start < 2  # the hook limit is 20 s: it never came to that
    if name == "wp-config.php":
        assert wp_of(found).info["config"] is None
