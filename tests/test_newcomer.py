"""A hosting admin who never saw this project tries it on the layouts real servers have.

Each test builds a fake "/" the way a panel (HestiaCP, ISPConfig, Froxlor, Virtualmin),
Debian, RHEL or a hand-made setup leaves it, runs the real CLI on it and asserts what an
admin should get: a policy that compiles with the real apparmor_parser and keeps pools
apart, or a one-line error naming the file (and line) to fix, never a traceback and
never a half-written policy. Behaviour that is wrong today is asserted as it SHOULD be
and marked xfail(strict=True), so fixing the code flips the test to a pass.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor import evaluate, validate
import phpver
from systree import make_tree, pool_conf

FEATURES = "/usr/share/apparmor-features/features"
needs_parser = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")
POOL = "user = www-data\ngroup = www-data\npm = ondemand\npm.max_children = 5\n"
WP_VERSION = "<?php\n$wp_version = '6.4.2';\n$wp_db_version = 56657;\n"
NC_VERSION = ("<?php\n$OC_Version = array(30,0,4,1);\n$OC_VersionString = '30.0.4';\n"
              "$vendor = 'nextcloud';\n")


# --- building trees ---------------------------------------------------------------------

def tree(base: Path, pools: dict, files: dict | None = None, *, version: str = "8.2",
         conf: str | bytes | None = None, users: tuple = ()) -> Path:
    """make_tree + extra files ({path: text, or None for a directory}) + the tool config.
    The fake php-fpm binary says `apparmor_hat`, as Debian's does, so `check` judges the
    layout and not the stand-in binary."""
    make_tree(base, pools, version=version)
    for path, text in (files or {}).items():
        p = base / path.lstrip("/")
        if text is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
    (base / f"usr/sbin/php-fpm{version}").write_text("apparmor_hat\n")
    if conf is not None:
        c = base / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
        c.parent.mkdir(parents=True, exist_ok=True)
        c.write_bytes(conf if isinstance(conf, bytes) else conf.encode())
    for user in users:  # panel users: php-fpm refuses pools of unknown users
        with open(base / "etc/passwd", "a") as f:
            f.write(f"{user}:x:{2000 + len(user)}:{2000 + len(user)}::/home/{user}:/bin/false\n")
        with open(base / "etc/group", "a") as f:
            f.write(f"{user}:x:{2000 + len(user)}:\n")
    return base


def pool(name: str, chdir: str | None = None, extra: str = "", hat: str | None = "") -> str:
    """A pool section; hat="" means apparmor_hat = name, None means no apparmor_hat."""
    lines = [f"[{name}]", POOL.rstrip("\n"), f"listen = /run/php/{name}.sock"]
    if hat is not None:
        lines.append(f"apparmor_hat = {hat or name}")
    if chdir:
        lines.append(f"chdir = {chdir}")
    return "\n".join(lines) + "\n" + extra


def wordpress(files: dict, root: str, config: str = "define('DISALLOW_FILE_MODS', true);",
              config_up: bool = False) -> None:
    files[f"{root}/wp-includes/version.php"] = WP_VERSION
    files[f"{root}/wp-settings.php"] = "<?php\n"
    files[f"{root}/index.php"] = "<?php\n"
    files[f"{root}/wp-content/uploads"] = None
    files[f"{root}/wp-content/plugins"] = None
    if config is not None:
        where = os.path.dirname(root) if config_up else root
        files[f"{where}/wp-config.php"] = (
            f"<?php\ndefine('DB_NAME', 'x');\n{config}\n"
            "if ( ! defined( 'ABSPATH' ) ) { define( 'ABSPATH', __DIR__ . '/' ); }\n"
            "require_once ABSPATH . 'wp-settings.php';\n")


def nextcloud(files: dict, root: str, config: str) -> None:
    files[f"{root}/version.php"] = NC_VERSION
    files[f"{root}/occ"] = "<?php\n"
    files[f"{root}/index.php"] = "<?php\n"
    files[f"{root}/config/config.php"] = f"<?php\n$CONFIG = array (\n{config}\n);\n"


# --- judging results --------------------------------------------------------------------

def ok(proc) -> None:
    """Whatever the exit code: one line per message, never a traceback."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    for line in proc.stderr.splitlines():
        assert line.startswith("php-fpm-apparmor: "), line


def hats(root: Path) -> dict:
    """The installed files with a pool's own policy: a refused pool's core-only hat (no
    site files, see docs/apply.md) is not one."""
    d = root / "etc/apparmor.d/php-fpm.d"
    files = {p.name: p.read_text() for p in sorted(d.iterdir())} if d.is_dir() else {}
    return {n: t for n, t in files.items() if "\n# core-only hat:" not in t}


def hat(root: Path, name: str):
    return evaluate.parse((root / "etc/apparmor.d/php-fpm.d" / name).read_text())[f"php-fpm//{name}"]


def compiled_names(root: Path) -> set:
    """Compile what generate installed (the brief's command) and list the profiles the
    parser really built: a hat file it skipped is a hat that is not there."""
    main = root / "etc/apparmor.d/php-fpm-apparmor"
    args = [validate.parser(), "-Q", "-K", "-M", FEATURES, "-I", str(root / "etc/apparmor.d"),
            "-I", "/etc/apparmor.d", str(main)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    names = subprocess.run([validate.parser(), "-N", "-M", FEATURES, "-I", str(root / "etc/apparmor.d"),
                            "-I", "/etc/apparmor.d", str(main)], capture_output=True, text=True, timeout=60)
    return set(names.stdout.split())


def status(cli, root) -> dict:
    proc = cli("--json", "status", root=root)
    ok(proc)
    return {f"{r['version']}/{r['pool']}": r for r in json.loads(proc.stdout)}


# --- panels and distributions -------------------------------------------------------------

def hestia_pool(user: str, domain: str) -> str:
    # HestiaCP's deb/php-fpm-templates/default.tpl, filled in
    return f"""; origin-src: deb/php-fpm-templates/default.tpl

[{domain}]
listen = /run/php/php8.2-fpm-{domain}.sock
listen.owner = {user}
listen.group = www-data
listen.mode = 0660

user = {user}
group = {user}

pm = ondemand
pm.max_children = 8
pm.max_requests = 4000
pm.process_idle_timeout = 10s
pm.status_path = /status

php_admin_value[upload_tmp_dir] = /home/{user}/tmp
php_admin_value[session.save_path] = /home/{user}/tmp
php_admin_value[open_basedir] = /home/{user}/web/{domain}/public_html:/home/{user}/web/{domain}/public_shtml:/home/{user}/tmp:/var/www/html:/bin:/usr/bin:/usr/local/bin:/usr/share:/opt
php_admin_value[sendmail_path] = /usr/sbin/sendmail -t -i -f admin@{domain}

env[PATH] = /usr/local/bin:/usr/bin:/bin
env[TMP] = /home/{user}/tmp
env[TMPDIR] = /home/{user}/tmp
env[TEMP] = /home/{user}/tmp
"""


def hestia_tree(base: Path, conf: str | None = None) -> Path:
    files = {"var/www/html/index.html": "hi", "opt": None}
    pools = {}
    for user, domain in (("alice", "alice.example"), ("bob", "bob.example")):
        pools[domain] = hestia_pool(user, domain)
        files[f"home/{user}/web/{domain}/public_html/index.php"] = "<?php\n"
        files[f"home/{user}/web/{domain}/public_shtml"] = None
        files[f"home/{user}/tmp"] = None
    return tree(base, pools, files, conf=conf, users=("alice", "bob"))


@needs_parser
def test_hestia_with_roots_set_compiles_and_keeps_customers_apart(tmp_path, cli):
    root = hestia_tree(tmp_path, conf="[alice.example]\nroot = /home/alice/web/alice.example/public_html\n"
                                      "[bob.example]\nroot = /home/bob/web/bob.example/public_html\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert set(hats(root)) == {"_shared", "alice.example", "bob.example"}
    # No pool sets apparmor_hat yet (panels never do): the master profile waits.
    assert not (root / "etc/apparmor.d/php-fpm-apparmor").exists()
    alice = hat(root, "alice.example")
    assert evaluate.allows(alice, "read", "/home/alice/web/alice.example/public_html/index.php")
    assert evaluate.allows(alice, "write", "/home/alice/tmp/sess_abc")
    assert evaluate.allows(alice, "write", "/run/php/php8.2-fpm-alice.example.sock")
    assert not evaluate.allows(alice, "read", "/home/bob/web/bob.example/public_html/index.php")
    assert not evaluate.allows(alice, "write", "/home/alice/web/alice.example/public_html/x.php")
    assert not evaluate.allows(alice, "read", "/home/bob/tmp/sess_abc")


@pytest.mark.parametrize("panel", ["hestia", "froxlor"])
def test_panel_pools_with_tmp_in_open_basedir_generate_without_config(tmp_path, cli, panel):
    if panel == "hestia":
        root = hestia_tree(tmp_path)
        expect = ("8.2/alice.example", "/home/alice/web/alice.example/public_html", "/home/alice/tmp")
    else:
        froxlor = """[example.com]
listen = /var/lib/apache2/fastcgi/1-example.com-example.com-php-fpm.socket
listen.owner = web1
listen.group = web1
listen.mode = 0660
user = web1
group = web1
pm = static
pm.max_children = 1
env[TMPDIR] = /var/customers/tmp/web1/
php_admin_value[session.save_path] = "/var/customers/tmp/web1/"
php_admin_value[upload_tmp_dir] = "/var/customers/tmp/web1/"
php_admin_value[open_basedir] = "/var/customers/webs/web1/:/tmp/:/usr/share/php/:/var/customers/tmp/web1/"
"""
        root = tree(tmp_path, {"example.com": froxlor},
                    {"var/customers/webs/web1/example.com/index.php": "<?php\n",
                     "var/customers/tmp/web1": None, "var/lib/apache2/fastcgi": None}, users=("web1",))
        expect = ("8.2/example.com", "/var/customers/webs/web1", "/var/customers/tmp/web1")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    key, code, tmp = expect
    roots = status(cli, root)[key]["site_root"]
    # the code is a root; the pool's own writable tmp dir and /opt are not
    assert code in roots and tmp not in roots and "/opt" not in roots


def ispconfig_pool(n: int, client: int, domain: str) -> str:
    # ISPConfig's php_fpm_pool.conf.master, filled in
    base = f"/var/www/clients/client{client}/web{n}"
    return f"""[web{n}]
listen = /var/lib/php8.2-fpm/web{n}.sock
listen.owner = web{n}
listen.group = client{client}
listen.mode = 0660
user = web{n}
group = client{client}
pm = dynamic
pm.max_children = 10
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 5
chdir = /
env[TMPDIR] = {base}/tmp
env[PATH] = /usr/local/bin:/usr/bin:/bin
php_admin_value[open_basedir] = {base}/web:{base}/private:/var/www/{domain}/web:/srv/www/{domain}/web:/usr/share/php5:/usr/share/php:/tmp:/usr/share/phpmyadmin:/etc/phpmyadmin:/var/lib/phpmyadmin:/dev/random:/dev/urandom
php_admin_value[session.save_path] = {base}/tmp
php_admin_value[upload_tmp_dir] = {base}/tmp
php_admin_value[sendmail_path] = "/usr/sbin/sendmail -t -i -fwebmaster@{domain}"
"""


@needs_parser
def test_ispconfig_clients_generate_compile_and_stay_apart(tmp_path, cli):
    sites = ((1, 1, "a.example"), (2, 1, "b.example"), (3, 2, "c.example"))
    files = {"var/lib/phpmyadmin/tmp": None, "var/lib/php8.2-fpm": None}
    for n, c, _ in sites:
        for sub in ("web", "private", "tmp"):
            files[f"var/www/clients/client{c}/web{n}/{sub}"] = None
        files[f"var/www/clients/client{c}/web{n}/web/index.php"] = "<?php\n"
    root = tree(tmp_path, {f"web{n}": ispconfig_pool(n, c, d) for n, c, d in sites}, files,
                users=("web1", "web2", "web3", "client1", "client2"))
    for n, c, d in sites:  # ISPConfig's /var/www/<domain> -> clients/clientN/webN
        os.symlink(f"/var/www/clients/client{c}/web{n}", root / f"var/www/{d}")
    # every pool is "apparmor_hat-less" until enabled: make one use its hat, as enable would
    conf = root / "etc/php/8.2/fpm/pool.d/web1.conf"
    conf.write_text(conf.read_text() + "apparmor_hat = web1\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert {"php-fpm//web1", "php-fpm//web2", "php-fpm//web3"} <= compiled_names(root)
    web1 = hat(root, "web1")
    assert evaluate.allows(web1, "read", "/var/www/clients/client1/web1/web/index.php")
    assert evaluate.allows(web1, "write", "/var/www/clients/client1/web1/tmp/sess_x")
    assert not evaluate.allows(web1, "write", "/var/www/clients/client1/web1/web/shell.php")
    # same client, other site: still another pool
    assert not evaluate.allows(web1, "read", "/var/www/clients/client1/web2/web/index.php")
    assert not evaluate.allows(web1, "read", "/var/www/clients/client1/web2/tmp/sess_x")


def test_virtualmin_numeric_pool_with_root_set(tmp_path, cli):
    vm = """[16409948212345]
user = alice
group = alice
listen.owner = alice
listen.group = alice
listen.mode = 0660
listen = /var/php-fpm/16409948212345.sock
pm = dynamic
pm.max_children = 5
pm.start_servers = 1
pm.min_spare_servers = 1
pm.max_spare_servers = 1
php_value[upload_tmp_dir] = /home/alice/tmp
php_value[session.save_path] = /home/alice/tmp
"""
    root = tree(tmp_path, {"16409948212345": vm},
                {"home/alice/public_html/index.php": "<?php\n", "home/alice/tmp": None, "var/php-fpm": None},
                users=("alice",))
    # Virtualmin sets no chdir/doc_root/open_basedir: skipped with a hint, not an error
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0
    assert "set root = " in proc.stdout and not hats(root)
    (root / "etc/php-fpm-apparmor").mkdir()
    (root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf").write_text("[16409948212345]\nroot = /home/alice/public_html\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    h = hat(root, "16409948212345")
    assert evaluate.allows(h, "read", "/home/alice/public_html/index.php")
    assert not evaluate.allows(h, "read", "/home/alice/.ssh/id_rsa")


def test_debian_stock_www_conf_is_a_note_not_a_failure(tmp_path, cli):
    stock = Path(f"/etc/php/{phpver.VERSION}/fpm")  # this release's phpX.Y-fpm files
    base = tmp_path / stock.relative_to("/") / "pool.d"
    base.mkdir(parents=True)
    (base.parent / "php-fpm.conf").write_text((stock / "php-fpm.conf").read_text())
    (base / "www.conf").write_text((stock / "pool.d/www.conf").read_text())
    (base.parent / "php.ini").write_text("[PHP]\n")
    tree(tmp_path, {}, version=phpver.VERSION)
    (base.parent / "php-fpm.conf").write_text((stock / "php-fpm.conf").read_text())  # not tree()'s
    proc = cli("generate", root=tmp_path)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert "pool www: no root" in proc.stdout
    assert not hats(tmp_path)  # nothing to confine yet: nothing written
    assert cli("check", root=tmp_path).returncode == 0


def test_same_pool_name_in_two_php_versions_gets_two_hats(tmp_path, cli):
    root = tree(tmp_path, {"www": pool("www", "/var/www/old", hat=None)}, version="7.4")
    tree(root, {"www": pool("www", "/var/www/new", hat=None)}, version="8.2")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    rows = status(cli, root)
    assert rows["7.4/www"]["hat"] != rows["8.2/www"]["hat"]
    assert rows["7.4/www"]["site_root"] == ["/var/www/old"]


def test_same_explicit_hat_in_two_php_versions_is_refused_with_file_and_line(tmp_path, cli):
    root = tree(tmp_path, {"site": pool("site", "/var/www/old")}, version="7.4")
    tree(root, {"site": pool("site", "/var/www/new")}, version="8.2")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert f"{root}/etc/php/7.4/fpm/pool.d/site.conf:7: pool site: hat 'site' is also used" in proc.stderr
    assert not (root / "etc/apparmor.d/php-fpm.d/site").exists()


@needs_parser
def test_rhel_layout(tmp_path, cli):
    files = {
        "etc/php-fpm.conf": "[global]\npid = /run/php-fpm/php-fpm.pid\nerror_log = /var/log/php-fpm/error.log\n"
                            "include=/etc/php-fpm.d/*.conf\n",
        "etc/php-fpm.d/www.conf": "[www]\nuser = apache\ngroup = apache\nlisten = /run/php-fpm/www.sock\n"
                                  "listen.acl_users = apache,nginx\npm = dynamic\npm.max_children = 50\n"
                                  "pm.start_servers = 5\npm.min_spare_servers = 5\npm.max_spare_servers = 35\n"
                                  "slowlog = /var/log/php-fpm/www-slow.log\napparmor_hat = www\n"
                                  "php_admin_value[error_log] = /var/log/php-fpm/www-error.log\n"
                                  "php_value[session.save_path] = /var/lib/php/session\nchdir = /var/www/html\n",
        "etc/php.ini": "[PHP]\n", "var/www/html/index.php": "<?php\n", "var/log/php-fpm": None,
        "usr/sbin/php-fpm": "apparmor_hat\n",
    }
    root = tree(tmp_path, {}, files, users=("apache", "nginx"))
    for p in ("etc/php", "usr/sbin/php-fpm8.2"):
        subprocess.run(["rm", "-rf", str(root / p)], check=True)
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert "php-fpm//www" in compiled_names(root)
    www = hat(root, "www")
    assert evaluate.allows(www, "write", "/var/lib/php/session/sess_x")
    assert evaluate.allows(www, "write", "/var/log/php-fpm/www-error.log")
    assert status(cli, root)["default/www"]["site_root"] == ["/var/www/html"]


@needs_parser
def test_fpm_features_tcp_prefix_chroot_dollar_pool_split_and_global_include(tmp_path, cli):
    pools = {
        "tcp": pool("tcp", "/var/www/tcp").replace("listen = /run/php/tcp.sock", "listen = 127.0.0.1:9001"),
        "pfx": pool("pfx", "/var/www/pfx/htdocs", "prefix = /var/www/$pool\naccess.log = log/access.log\n"
                    "slowlog = log/slow.log\nrequest_slowlog_timeout = 5\n")
        .replace("listen = /run/php/pfx.sock", "listen = run/fpm.sock"),
        "jail": pool("jail", None, "chroot = /srv/jail\nchdir = /htdocs\nphp_admin_value[session.save_path] = /tmp\n"),
        "shop": pool("shop", None, "chdir = /var/www/$pool\naccess.log = /var/log/$pool.access.log\n",
                     hat="$pool").replace("listen = /run/php/shop.sock", "listen = /run/php/$pool.sock"),
        "split-a": f"[sp]\n{POOL}listen = /run/php/sp.sock\n",
        "split-b": "[SP]\nchdir = /var/www/sp\napparmor_hat = sp\n",
    }
    files = {"var/www/pfx/log": None, "var/www/pfx/run": None, "srv/jail/htdocs/index.php": "<?php\n",
             "srv/jail/tmp": None, "var/www/shop/index.php": "<?php\n", "var/www/sp/index.php": "<?php\n",
             "var/log": None, "var/www/one/index.php": "<?php\n",
             "etc/php/8.2/fpm/sites/one.conf": pool("one", "/var/www/one")}
    root = tree(tmp_path, pools, files)
    main = root / "etc/php/8.2/fpm/php-fpm.conf"
    main.write_text(main.read_text() + "include=/etc/php/8.2/fpm/sites/*.conf\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    names = compiled_names(root)
    assert {f"php-fpm//{h}" for h in ("tcp", "pfx", "jail", "shop", "sp", "one")} <= names
    text = hats(root)
    assert "network inet stream," in text["tcp"]
    assert '"/var/www/pfx/run/fpm.sock" rwkl,' in text["pfx"]  # relative listen, below prefix
    assert '"/var/www/pfx/log/access.log" w,' in text["pfx"]
    assert "capability sys_chroot," in text["jail"]
    jail = hat(root, "jail")
    assert evaluate.allows(jail, "read", "/srv/jail/htdocs/index.php")
    assert evaluate.allows(jail, "write", "/srv/jail/tmp/sess_x")  # chroot-relative session dir
    assert '"/run/php/shop.sock" rwkl,' in text["shop"] and '"/var/log/shop.access.log" w,' in text["shop"]
    rows = status(cli, root)
    assert rows["8.2/sp"]["site_root"] == ["/var/www/sp"] and rows["8.2/sp"]["listen"] == "/run/php/sp.sock"


# --- applications in odd places -----------------------------------------------------------

@needs_parser
def test_wordpress_config_up_multisite_and_debian_package(tmp_path, cli):
    files = {}
    wordpress(files, "var/www/up/public", config_up=True)
    wordpress(files, "var/www/ms", config="define('DISALLOW_FILE_MODS', true);\ndefine('MULTISITE', true);")
    files["var/www/ms/wp-content/uploads/sites/2/2024/01"] = None
    files.update({
        "usr/share/wordpress/wp-includes/version.php": WP_VERSION,
        "usr/share/wordpress/wp-settings.php": "<?php\n",
        # the wordpress package's own wp-config.php (conditional defines, host config in /etc)
        "usr/share/wordpress/wp-config.php":
            "<?php\n$debian_file = '/etc/wordpress/config-'.strtolower($debian_server).'.php';\n"
            "require_once($debian_file);\n"
            "if (!defined('ABSPATH'))\n    define('ABSPATH', '/usr/share/wordpress/');\n"
            "if (!defined('WP_CONTENT_DIR') && !defined('DONT_SET_WP_CONTENT_DIR'))\n"
            "    define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');\n"
            "require_once(ABSPATH . 'wp-settings.php');\n",
        "var/lib/wordpress/wp-content/uploads": None, "var/lib/wordpress/wp-content/plugins": None,
        "etc/wordpress/config-blog.example.org.php": "<?php\ndefine('DISALLOW_FILE_MODS', true);\n",
    })
    root = tree(tmp_path, {"up": pool("up", "/var/www/up/public"), "ms": pool("ms", "/var/www/ms"),
                           "wordpress": pool("wordpress", "/usr/share/wordpress")}, files,
                conf="[wordpress]\nroot = /usr/share/wordpress\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert {"php-fpm//up", "php-fpm//ms", "php-fpm//wordpress"} <= compiled_names(root)
    up = hat(root, "up")
    assert evaluate.allows(up, "read", "/var/www/up/wp-config.php")
    assert not evaluate.allows(up, "write", "/var/www/up/wp-config.php")
    assert evaluate.allows(up, "write", "/var/www/up/public/wp-content/uploads/2026/01/a.jpg")
    ms = hat(root, "ms")
    assert evaluate.allows(ms, "write", "/var/www/ms/wp-content/uploads/sites/2/2024/01/a.png")
    assert not evaluate.allows(ms, "write", "/var/www/ms/wp-content/uploads/sites/2/shell.php")
    deb = hat(root, "wordpress")
    assert evaluate.allows(deb, "read", "/etc/wordpress/config-blog.example.org.php")
    assert evaluate.allows(deb, "write", "/var/lib/wordpress/wp-content/uploads/2026/01/a.gif")
    assert not evaluate.allows(deb, "write", "/var/lib/wordpress/wp-content/plugins/x.php")
    assert not evaluate.allows(deb, "write", "/usr/share/wordpress/index.php")


def test_debian_wordpress_host_config_counts_for_disallow_file_mods(tmp_path, cli):
    files = {"usr/share/wordpress/wp-includes/version.php": WP_VERSION,
             "usr/share/wordpress/wp-settings.php": "<?php\n",
             "usr/share/wordpress/wp-config.php": Path("/usr/share/wordpress/wp-config.php").read_text()
             if Path("/usr/share/wordpress/wp-config.php").is_file() else
             "<?php\nrequire_once('/etc/wordpress/config-'.$h.'.php');\n",
             "var/lib/wordpress/wp-content/uploads": None,
             "etc/wordpress/config-blog.example.org.php": "<?php\ndefine('DISALLOW_FILE_MODS', true);\n"}
    root = tree(tmp_path, {"wordpress": pool("wordpress", "/usr/share/wordpress")}, files,
                conf="[wordpress]\nroot = /usr/share/wordpress\n")
    proc = cli("check", root=root)
    ok(proc)
    assert "DISALLOW_FILE_MODS" not in proc.stdout


def test_wordpress_in_a_subdirectory_is_detected_or_reported(tmp_path, cli):
    files = {}
    wordpress(files, "var/www/site/blog")
    root = tree(tmp_path, {"site": pool("site", "/var/www/site")}, files)
    apps = status(cli, root)["8.2/site"]["apps"]
    check = cli("check", root=root)
    assert any(a.startswith("wordpress") for a in apps) or "/var/www/site/blog" in check.stdout


def test_nextcloud_data_outside_root_and_inside_another_pool(tmp_path, cli):
    files = {"srv/nc-data": None, "var/www/blog/ncdata": None}
    nextcloud(files, "var/www/cloud", "  'datadirectory' => '/srv/nc-data',")
    nextcloud(files, "var/www/cloud2", "  'datadirectory' => '/var/www/blog/ncdata',")
    wordpress(files, "var/www/blog")
    root = tree(tmp_path, {"cloud": pool("cloud", "/var/www/cloud"), "cloud2": pool("cloud2", "/var/www/cloud2"),
                           "blog": pool("blog", "/var/www/blog")}, files)
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert set(hats(root)) == {"_shared", "cloud", "blog"}  # cloud2 refused, the others installed
    # cloud2 has its core-only hat (no site, no data dir)
    core = (root / "etc/apparmor.d/php-fpm.d/cloud2").read_text()
    assert "core-only hat" in core and "/var/www/blog" not in core and "/var/www/cloud2" not in core
    assert f"{root}/etc/php/8.2/fpm/pool.d/cloud2.conf: pool cloud2: policy refused" in proc.stderr
    assert "reaches pool blog's root /var/www/blog" in proc.stderr
    cloud = hat(root, "cloud")
    assert evaluate.allows(cloud, "write", "/srv/nc-data/alice/files/any.php")  # data is not web-served
    assert not evaluate.allows(cloud, "write", "/var/www/cloud/index.php")
    assert not evaluate.allows(cloud, "read", "/var/www/blog/wp-config.php")


# --- hostile and odd values -----------------------------------------------------------------

SKIPPED_BY_APPARMOR = ("README", "a.dpkg-old", "b.dpkg-new", "c.dpkg-dist", "d.dpkg-bak", "e.orig",
                       "f.rej", "g.rpmnew", "h.pacsave")


@needs_parser
def test_hat_names_that_apparmor_directory_includes_skip(tmp_path, cli):
    root = tree(tmp_path, {n: pool(n, f"/var/www/{n}") for n in SKIPPED_BY_APPARMOR})
    proc = cli("generate", root=root)
    ok(proc)
    names = compiled_names(root) if (root / "etc/apparmor.d/php-fpm-apparmor").exists() else set()
    for n in SKIPPED_BY_APPARMOR:
        # either the hat really exists, or generate refused the name and said so
        assert f"php-fpm//{n}" in names or (f"pool {n}:" in proc.stderr and proc.returncode == 1), n


@needs_parser
def test_pool_and_hat_names_hostile_or_keywords(tmp_path, cli):
    keywords = ("include", "profile", "owner", "deny", "audit", "capability", "network", "unconfined",
                "php-fpm", "abi", "all")
    pools = {n: pool(n, f"/var/www/{n}") for n in keywords}
    pools["bang"] = pool("my site!", "/var/www/bang", hat=None).replace("my site!.sock", "bang.sock")
    pools["space"] = pool("sp", "/var/www/sp", hat='"a b"')
    pools["slash"] = pool("sl", "/var/www/sl", hat="sl//evil")
    pools["caret"] = pool("ca", "/var/www/ca", hat="'^ca'")
    root = tree(tmp_path, pools)
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    conf = f"{root}/etc/php/8.2/fpm/pool.d"
    assert f"{conf}/space.conf:7: pool sp: apparmor_hat 'a b' is not a safe name" in proc.stderr
    assert f"{conf}/slash.conf:7: pool sl: apparmor_hat 'sl//evil' is not a safe name" in proc.stderr
    assert f"{conf}/caret.conf:7: pool ca: apparmor_hat '^ca' is not a safe name" in proc.stderr
    assert "pool 'my site!' has a name AppArmor cannot use" in proc.stdout
    assert {f"php-fpm//{k}" for k in keywords} <= compiled_names(root)
    assert not {"sp", "sl", "ca", "a b"} & set(hats(root))


@needs_parser
def test_docroots_with_spaces_quotes_globs_unicode_match_only_themselves(tmp_path, cli):
    odd = {"sp": "/var/www/my site", "qu": '/var/www/a"b', "gl": "/var/www/*", "br": "/var/www/{x,y}",
           "un": "/var/www/ünï", "at": "/var/www/@{HOME}", "ca": "/var/www/^x[1]"}
    pools = {n: pool(n, None, f"chdir = '{v}'\n") for n, v in odd.items()}
    pools["x"] = pool("x", "/var/www/x")
    root = tree(tmp_path, pools, {v.lstrip("/") + "/index.php": "<?php\n" for v in odd.values()})
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 0, proc.stderr
    assert {f"php-fpm//{n}" for n in odd} <= compiled_names(root)
    for n, v in odd.items():
        h = hat(root, n)
        assert evaluate.allows(h, "read", f"{v}/index.php"), n
        assert not evaluate.allows(h, "read", "/var/www/x/index.php"), n
        assert not evaluate.allows(h, "read", "/var/www/my site/index.php") or n == "sp", n


def test_symlink_loop_in_a_root_names_the_pool_and_its_file(tmp_path, cli):
    root = tree(tmp_path, {"lo": pool("lo", None, "chdir=/var/www/loop\n"), "ok": pool("ok", "/var/www/ok")})
    os.symlink("/var/www/loop2", root / "var/www/loop")
    os.symlink("/var/www/loop", root / "var/www/loop2")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert f"{root}/etc/php/8.2/fpm/pool.d/lo.conf:" in proc.stderr


def test_very_long_docroot_is_one_line_error(tmp_path, cli):
    long = "/var/www/" + "/".join(["d" * 200] * 22)  # > PATH_MAX
    root = tree(tmp_path, {"lp": pool("lp", None, f"chdir={long}\n")})
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert f"{root}/etc/php/8.2/fpm/pool.d/lp.conf:" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not hats(root)


def test_paths_that_write_php_or_reach_another_pool_are_refused(tmp_path, cli):
    """Pool values that would let a pool write PHP into its site, or touch another pool's
    site (via ".." or directly): each such pool is refused with its file, the victim and
    the sane pool still get theirs."""
    bad = {
        "errphp": "php_admin_value[error_log] = /var/www/errphp/errors.php\n",
        "accphp": "access.log = /var/www/accphp/log.php\n",
        "errother": "php_admin_value[error_log] = /var/www/victim/index.php\n",
        "accini": "access.log = /var/www/victim/.user.ini\n",
        "updotdot": "php_admin_value[upload_tmp_dir] = /var/www/updotdot/../victim\n",
        "sessdotdot": "php_admin_value[session.save_path] = /var/www/sessdotdot/../victim\n",
        "wpother": "",
    }
    pools = {n: pool(n, f"/var/www/{n}", extra) for n, extra in bad.items()}
    # Sessions in the site root: sess_* could be named sess_x.php, but the session dir's
    # code names are denied (policy.code_denies), so it is accepted and stays code-free.
    pools["sessroot"] = pool("sessroot", "/var/www/sessroot", "php_admin_value[session.save_path] = /var/www/sessroot\n")
    pools["victim"] = pool("victim", "/var/www/victim")
    pools["sane"] = pool("sane", "/var/www/sane", "php_admin_value[opcache.file_cache] = /var/www/sane\n"
                         "slowlog = /var/log/sane.slow\nrequest_slowlog_timeout = 3\n")
    files = {"var/log": None}
    wordpress(files, "var/www/wpother", config="define('DISALLOW_FILE_MODS', true);\n"
              "define('WP_CONTENT_DIR', '/var/www/victim/content');")
    root = tree(tmp_path, pools, files, conf="[sane]\nwrite = /srv/sane-cache\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert set(hats(root)) == {"_shared", "victim", "sane", "sessroot"}
    sessroot = hat(root, "sessroot")
    assert evaluate.allows(sessroot, "write", "/var/www/sessroot/sess_abc")
    for name in ("sess_x.php", "sess_x.PhP7", "sess_.phtml"):
        assert not evaluate.allows(sessroot, "write", f"/var/www/sessroot/{name}"), name
    for n in bad:
        assert f"{root}/etc/php/8.2/fpm/pool.d/{n}.conf: pool {n}: policy refused" in proc.stderr, n
    sane = hat(root, "sane")
    assert evaluate.allows(sane, "write", "/var/www/sane/a/b.bin")  # opcache file cache
    assert not evaluate.allows(sane, "write", "/var/www/sane/a/b.php")


def test_docroot_symlinked_into_another_pools_site_is_refused(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a"), "b": pool("b", None, "chdir=/var/www/b\n")},
                {"var/www/a/sub/index.php": "<?php\n"})
    os.symlink("/var/www/a/sub", root / "var/www/b")
    proc = cli("generate", root=root)
    ok(proc)
    assert f"{root}/etc/php/8.2/fpm/pool.d/b.conf: pool b:" in proc.stderr
    assert "b" not in hats(root)


def test_two_pools_sharing_a_root_are_reported(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/shared"), "b": pool("b", "/var/www/shared")})
    proc = cli("check", root=root)
    ok(proc)
    assert any("/var/www/shared" in l and "8.2/a" in l and "8.2/b" in l for l in proc.stdout.splitlines())


def test_root_that_is_slash_or_covers_other_pools_is_refused(tmp_path, cli):
    root = tree(tmp_path, {"all": pool("all"), "slash": pool("slash"), "a": pool("a", "/var/www/a")},
                conf="[all]\nroot = /var/www\n[slash]\nroot = /\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert "pool slash: site root / is a system directory" in proc.stderr
    assert "pool all: policy refused: php-fpm//all: /var/www/** reaches pool a's root /var/www/a" in proc.stderr
    assert set(hats(root)) == {"_shared", "a"}


def test_sendmail_path_inside_another_pools_root_is_refused(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a", "php_admin_value[sendmail_path] = /var/www/b/mail.sh -t\n"),
                           "b": pool("b", "/var/www/b")}, {"var/www/b/mail.sh": "#!/bin/sh\n"})
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert "/var/www/b/mail.sh" not in hats(root).get("_shared", "")


# --- the tool's own config, hostile or mistyped -------------------------------------------

@pytest.mark.parametrize("name,data,where", [
    ("binary", b"\x00\xff\xfe garbage\n", "php-fpm-apparmor.conf: cannot read"),
    ("nosection", b"root = /var/www/a\n", "php-fpm-apparmor.conf:1: "),
    ("duplicate", b"[a]\nroot = /var/www/a\n[A]\n[a]\nmode = complain\n", "php-fpm-apparmor.conf:4: "),
])
def test_broken_tool_config_is_one_line_and_changes_nothing(tmp_path, cli, name, data, where):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a")}, conf=data)
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and where in proc.stderr
    assert not hats(root) and not (root / "etc/apparmor.d/php-fpm-apparmor").exists()


def test_bad_value_in_tool_config_names_its_line(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a"), "b": pool("b", "/var/www/b")},
                conf="[a]\n\n\nmode = paranoid\n[b]\nroot = var/www/b\n")
    proc = cli("generate", root=root)
    ok(proc)
    conf = f"{root}/etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    assert f"{conf}:4: " in proc.stderr and f"{conf}:6: " in proc.stderr


def test_control_character_in_tool_config_names_the_tool_config(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a")}, conf=b"[a]\nroot = /var/www/a\x1b[31m\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1
    assert "php-fpm-apparmor.conf" in proc.stderr


def test_mistyped_tool_config_is_reported_by_check(tmp_path, cli):
    root = tree(tmp_path, {"blog": pool("blog", "/var/www/blog")},
                conf="[blgo]\nroot = /var/www/blog\n[blog]\ncode_writes = maybe\n")
    out = cli("check", root=root).stdout
    assert "blgo" in out and "code_writes" in out


def test_write_into_a_system_directory_is_refused(tmp_path, cli):
    root = tree(tmp_path, {"a": pool("a", "/var/www/a")}, conf="[a]\nwrite = /etc/cron.d\n")
    proc = cli("generate", root=root)
    ok(proc)
    assert proc.returncode == 1 and "/etc/cron.d" in proc.stderr
    assert "a" not in hats(root)
