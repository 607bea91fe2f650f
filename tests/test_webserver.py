"""Web server configs -> each pool's site: the real nginx and Apache judge the corpus, our
readers must agree with them (include expansion) and find the vhosts, roots and names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from php_fpm_apparmor import apache, generate, nginx, webserver
from php_fpm_apparmor.webserver import Files, parse_address, same_address
from phpver import VERSION as PHP
from webtrees import CORPUS, apache_tree, corpus, nginx_dump_files, nginx_tree, real_apache, real_nginx

needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed (tools/bootstrap)")
needs_apache = pytest.mark.skipif(not shutil.which("apache2ctl"), reason="apache2 not installed (tools/bootstrap)")


def by_address(vhosts):
    out = {}
    for v in vhosts:
        e = out.setdefault(v.address, {"roots": set(), "names": set(), "problems": []})
        e["roots"] |= {r for r, _ in v.roots}
        e["names"] |= set(v.names)
        e["problems"] += v.problems
    return out


NGINX_EXPECTED = {
    "unix:/run/php/blog.sock": ({"/var/www/blog"}, {"blog.example", "www.blog.example"}),
    "unix:/run/php/cloud.sock": ({"/var/www/cloud"}, {"cloud.example"}),  # through the upstream
    "unix:/var/lib/php8.2-fpm/web1.sock": ({"/var/www/shop.example/web"}, {"shop.example", "www.shop.example"}),
    "127.0.0.1:9010": ({"/var/www/legacy.example/web"}, {"legacy.example"}),
    "unix:/run/php/php8.2-fpm-hestia.example.sock": ({"/home/alice/web/hestia.example/public_html"},
                                                     {"hestia.example", "www.hestia.example"}),
    "unix:/var/php-fpm/176543210.sock": ({"/home/vmuser/public_html"}, {"vm.example", "www.vm.example"}),
    # the variable set in the server block, the alias, the literal front controller
    "unix:/run/php/tools.sock": ({"/var/www/tools", "/srv/admin-app", "/srv/api/public"}, {"tools.example"}),
    "unix:/run/php/spaced.sock": ({"/var/www/my site"}, {"spaced.example"}),
    "unix:/run/php/quoted.sock": ({'/var/www/it"s; {here}'}, {"quoted.example"}),
    "unix:/run/php/wild.sock": (set(), {r"~^(?<sub>.+)\.wild\.example$"}),  # root by a variable
}


@needs_nginx
def test_real_nginx_accepts_the_corpus_and_our_include_expansion_is_nginx_T(tmp_path):
    root = nginx_tree(tmp_path / "root", corpus("nginx"))
    proc, shadow = real_nginx(root, "-T")
    assert proc.returncode == 0, proc.stderr
    theirs = nginx_dump_files(proc.stdout, shadow)
    problems = []
    reader = nginx.Reader(Files(str(root), problems), problems)
    reader.load()
    assert list(reader.read_order) == list(theirs), (reader.read_order, list(theirs))
    for path in reader.read_order:  # the same bytes, so the same file:line
        assert reader.files.read(path, "") == theirs[path], path
    assert len(theirs) >= 10  # nginx.conf, mime.types, every site, the snippets


@needs_nginx
def test_nginx_vhosts_roots_and_names(tmp_path):
    root = nginx_tree(tmp_path / "root", corpus("nginx"))
    problems = []
    got = by_address(nginx.read(str(root), problems))
    assert {a: (g["roots"], g["names"]) for a, g in got.items()} == NGINX_EXPECTED
    assert got["unix:/run/php/wild.sock"]["problems"] == [
        "/etc/nginx/sites-enabled/hostile:23: root /var/www/$sub is set by a variable; its PHP "
        "files are not guessed (set root = in the pool's section)"]
    assert problems == got["unix:/run/php/wild.sock"]["problems"]
    blog = next(v for v in nginx.read(str(root), []) if v.address.endswith("blog.sock"))
    assert blog.where == "/etc/nginx/sites-enabled/blog:13"
    assert blog.roots == [("/var/www/blog", "/etc/nginx/sites-enabled/blog:5")]


@needs_nginx
def test_the_live_path_reads_nginx_T_output_the_same_way(tmp_path):
    """On the live system the dump is the source: parse the real nginx -T output."""
    root = nginx_tree(tmp_path / "root", corpus("nginx"))
    proc, shadow = real_nginx(root, "-T")
    main, dump = nginx.split_dump(proc.stdout)
    assert main == f"{shadow}/etc/nginx/nginx.conf"
    problems = []
    reader = nginx.Reader(Files("/", problems, dump), problems, main)
    from_dump = nginx.vhosts(reader.load(), problems)
    strip = {a: (g["roots"], {n for n in g["names"]}) for a, g in by_address(from_dump).items()}
    assert strip == NGINX_EXPECTED
    assert all(v.where.startswith(str(shadow)) for v in from_dump)


@needs_nginx
def test_nginx_include_loop_is_refused_in_one_line(tmp_path):
    sites = corpus("nginx", "blog")
    sites["loop"] = "include /etc/nginx/sites-enabled/loop2;\n"
    sites["loop2"] = "server { listen 81; include /etc/nginx/sites-enabled/loop; }\n"
    root = nginx_tree(tmp_path / "root", sites)
    proc, _ = real_nginx(root, "-t")
    assert proc.returncode != 0  # nginx 1.22 recurses until it crashes
    problems = []
    found = nginx.read(str(root), problems)
    assert [v.address for v in found] == ["unix:/run/php/blog.sock"]
    loops = [p for p in problems if "include loop" in p]
    assert loops and loops[0].startswith("/etc/nginx/sites-enabled/loop2:1: include loop (")


@needs_nginx
def test_nginx_huge_file_and_broken_syntax_cost_that_file_only(tmp_path):
    sites = corpus("nginx", "blog")
    sites["huge"] = "# " + "x" * (webserver.MAX_FILE + 10) + "\n"
    sites["broken"] = 'server { root "/var/www/unterminated;\n'
    root = nginx_tree(tmp_path / "root", sites)
    problems = []
    found = nginx.read(str(root), problems)
    assert [v.address for v in found] == ["unix:/run/php/blog.sock"]
    assert any(p.startswith("/etc/nginx/nginx.conf:") and "larger than 8 MiB" in p for p in problems), problems
    assert "/etc/nginx/sites-enabled/broken:1: unexpected end of file, expecting a closing quote" in problems


@needs_nginx
def test_a_fifo_or_directory_included_costs_that_include_only(tmp_path):
    """A panel may include a file a site's owner controls: a FIFO there is refused at once
    (opened plainly it would block generate, php-fpm's ExecStartPre), a directory named."""
    import os
    import signal

    root = nginx_tree(tmp_path / "root", {**corpus("nginx", "blog"), "own": "include /var/www/u/*.conf;\n"})
    (root / "var/www/u").mkdir(parents=True)
    os.mkfifo(root / "var/www/u/a.conf")
    (root / "var/www/u/b.conf").mkdir()
    problems = []

    def hang(signum, frame):
        raise AssertionError("blocked on a FIFO")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(5)  # opened plainly, the FIFO blocks
    try:
        found = nginx.read(str(root), problems)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert [v.address for v in found] == ["unix:/run/php/blog.sock"]
    assert "/etc/nginx/sites-enabled/own:1: /var/www/u/a.conf is not a regular file" in problems
    assert "/etc/nginx/sites-enabled/own:1: /var/www/u/b.conf is a directory" in problems


APACHE_EXPECTED = {
    # Debian's conf-available/phpX.Y-fpm.conf: every vhost without a handler of its own
    f"unix:/run/php/php{PHP}-fpm.sock": ({"/var/www/html", "/var/www/blog"}, {"blog.example", "www.blog.example"}),
    "unix:/run/php/php8.2-fpm-hestia.example.sock": (
        {"/home/alice/web/hestia.example/public_html", "/home/alice/web/hestia.example/stats"},
        {"hestia.example", "www.hestia.example"}),
    "unix:/var/lib/php8.2-fpm/web1.sock": ({"/var/www/clients/client1/web1/web"}, {"shop.example", "www.shop.example"}),
    "unix:/var/php-fpm/176543210.sock": ({"/home/vmuser/public_html"}, {"vm.example", "www.vm.example"}),
    "127.0.0.1:9010": ({"/home/tcpuser/public_html"}, {"tcp.example"}),
    "unix:/run/php/tools.sock": ({"/var/www/tools", "/srv/admin-app"}, {"tools.example"}),
    "unix:/run/php/spaced.sock": ({"/var/www/my site"}, {"spaced.example"}),
    "unix:/run/php/wild.sock": (set(), {"wild.example"}),
}


@needs_apache
def test_real_apache_accepts_the_corpus_and_reads_the_files_we_read(tmp_path):
    root = apache_tree(tmp_path / "root", corpus("apache"))
    proc = real_apache(root, "-t")
    assert proc.returncode == 0, proc.stderr
    dump = real_apache(root, "-t", "-D", "DUMP_INCLUDES")
    theirs = [p.replace(str(root), "", 1) for p in apache.dump_includes(dump.stdout)]
    problems = []
    r = apache.load(str(root), problems)
    assert r.read_order == theirs
    assert f"/etc/apache2/conf-enabled/php{PHP}-fpm.conf" in theirs


@needs_apache
def test_apache_vhosts_roots_and_names(tmp_path):
    root = apache_tree(tmp_path / "root", corpus("apache"))
    problems = []
    got = by_address(apache.read(str(root), problems))
    assert {a: (g["roots"], g["names"]) for a, g in got.items()} == APACHE_EXPECTED
    assert problems == ["/etc/apache2/sites-enabled/hostile.conf:12: ${SITE_ROOT_NOT_DEFINED} is set by a "
                        "variable Apache does not define here; not guessed (set root = in the pool's section)"]
    # every name Apache itself lists (DUMP_VHOSTS) that passes PHP somewhere is ours too
    dump = real_apache(root, "-t", "-D", "DUMP_VHOSTS").stdout
    listed = set(re.findall(r"(\S+) \(/[^()]*:\d+\)", dump)) | set(re.findall(r"(?m)^\s+alias (\S+)", dump))
    primary = {v.names[0] for v in apache.read(str(root), []) if v.names}  # ServerName first
    assert primary <= listed and {"hestia.example", "vm.example", "wild.example"} <= primary
    # every unix SetHandler Apache keeps after IfModule (ISPConfig's <IfModule mod_proxy_fcgi.c>) is ours
    kept = {a for a in _dump_config_handlers(root) if a.startswith("/")}
    assert kept and kept <= {a[5:] for a in got if a.startswith("unix:")}, kept


def _dump_config_handlers(root) -> list[str]:
    """The FastCGI handlers Apache itself keeps after IfModule/IfDefine (-D DUMP_CONFIG, mod_info)."""
    info = root / "etc/apache2/mods-enabled/info.load"
    if not info.is_symlink():
        info.symlink_to("../mods-available/info.load")
    out = real_apache(root, "-t", "-D", "DUMP_CONFIG").stdout
    return sorted(re.findall(r'(?m)^\s*SetHandler\s+"?proxy:(?:unix:)?([^|"\s]+)', out))


@needs_apache
@pytest.mark.parametrize("mod_php", [False, True])
def test_apache_ifmodule_is_evaluated_as_apache_does(tmp_path, mod_php):
    """Debian's php8.2-fpm.conf says <IfModule !mod_php8.c>, but PHP 8's module is mod_php.c:
    Apache keeps the FPM handler even with mod_php loaded. DUMP_CONFIG is the judge."""
    root = apache_tree(tmp_path / "root", corpus("apache", "blog.conf", "hestia.conf"))
    mods = root / "etc/apache2/mods-enabled"
    if mod_php:
        for m in (f"php{PHP}.load", f"php{PHP}.conf"):
            (mods / m).symlink_to(f"../mods-available/{m}")
        (mods / "mpm_event.load").unlink(missing_ok=True)
    assert real_apache(root, "-t").returncode == 0
    apache_says = _dump_config_handlers(root)
    assert apache_says == sorted([f"/run/php/php{PHP}-fpm.sock", "/run/php/php8.2-fpm-hestia.example.sock"])
    ours = sorted({v.address[5:] for v in apache.read(str(root), [])})
    assert ours == apache_says
    # a2dismod proxy_fcgi: Debian's conf (inside <IfModule proxy_fcgi_module>) goes, the
    # panel's unconditional SetHandler stays (in Apache's eyes and in ours)
    (mods / "proxy_fcgi.load").unlink()
    assert _dump_config_handlers(root) == ["/run/php/php8.2-fpm-hestia.example.sock"]
    assert sorted({v.address[5:] for v in apache.read(str(root), [])}) == _dump_config_handlers(root)


@needs_apache
def test_apache_include_loop_is_refused_in_one_line(tmp_path):
    sites = corpus("apache", "hestia.conf")
    sites["loop.conf"] = "Include sites-enabled/loop.conf\n"
    root = apache_tree(tmp_path / "root", sites)
    assert real_apache(root, "-t").returncode != 0
    problems = []
    found = apache.read(str(root), problems)
    assert "unix:/run/php/php8.2-fpm-hestia.example.sock" in {v.address for v in found}
    assert any(p.startswith("/etc/apache2/sites-enabled/loop.conf:1: Include loop (") for p in problems), problems


def test_addresses():
    canon = lambda p: p.replace("/var/run/", "/run/")  # noqa: E731 (what /var/run -> /run does)
    assert same_address(parse_address("/var/run/php/a.sock"), parse_address("unix:/run/php/a.sock"), canon)
    assert same_address(parse_address("9000"), parse_address("127.0.0.1:9000"), canon)
    assert same_address(parse_address("127.0.0.1:9000"), parse_address("localhost:9000"), canon)
    assert same_address(parse_address("[::1]:9000"), parse_address("[::1]:9000"), canon)
    assert not same_address(parse_address("127.0.0.1:9000"), parse_address("127.0.0.1:9001"), canon)
    assert not same_address(parse_address("10.0.0.2:9000"), parse_address("127.0.0.1:9000"), canon)
    assert not same_address(parse_address("/run/php/a.sock"), parse_address("127.0.0.1:9000"), canon)
    assert parse_address("php-handler") is None


# --- end to end: pools with no chdir, doc_root or open_basedir, as a new admin sets them up

def _pools_without_roots(root):
    from apptrees import nextcloud, wordpress
    from systree import make_tree, pool_conf

    tcp = pool_conf("plain", hat="plain").replace("listen = /run/php/plain.sock", "listen = 127.0.0.1:9001")
    make_tree(root, {"blog": pool_conf("blog", hat="blog"), "cloud": pool_conf("cloud", hat="cloud"),
                     "plain": tcp, "idle": pool_conf("idle")})
    wordpress(root, "/var/www/blog")
    nextcloud(root, "/var/www/cloud")
    (root / "var/www/plain").mkdir(parents=True)
    (root / "var/www/plain/index.php").write_text("<?php echo 1;\n")
    (root / "var/run").mkdir(parents=True, exist_ok=True)
    return root


PLAIN_NGINX = """server {
    listen 80;
    server_name plain.example;
    root /var/www/plain;
    location ~ \\.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass 127.0.0.1:9001;
    }
}
"""
GONE_NGINX = """server {
    listen 80;
    server_name old.example;
    root /var/www/blog/wp-content/uploads;
    location ~ \\.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/old.sock;
    }
}
"""
NESTED_NGINX = """server {
    listen 80;
    server_name shop.example;
    location /shop/ {
        alias /var/www/blog/shop/;
        location ~ \\.php$ { include fastcgi.conf; fastcgi_pass 127.0.0.1:9001; }
    }
}
"""


@needs_nginx
def test_nginx_end_to_end_roots_apps_generate_status_check(tmp_path, cli):
    root = _pools_without_roots(tmp_path / "root")
    nginx_tree(root, {**corpus("nginx", "blog", "cloud"), "plain": PLAIN_NGINX, "gone": GONE_NGINX})
    assert real_nginx(root, "-t")[0].returncode == 0
    proc = cli("generate", root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 pool(s) ready, 0 problem(s)" in proc.stdout, proc.stdout
    assert "pool idle: no root" in proc.stdout  # no hat asked for, no vhost: skipped, as before
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    assert rows["blog"]["site_root"] == ["/var/www/blog"]
    assert rows["blog"]["vhosts"] == ["blog.example"]
    assert rows["blog"]["root_origin"] == "from nginx /etc/nginx/sites-enabled/blog:5"
    assert [a.split()[0] for a in rows["blog"]["apps"]] == ["wordpress"]
    assert rows["cloud"]["site_root"] == ["/var/www/cloud"] and rows["cloud"]["apps"][0].startswith("nextcloud")
    assert rows["plain"]["site_root"] == ["/var/www/plain"] and rows["plain"]["vhosts"] == ["plain.example"]
    assert rows["idle"]["site_root"] == [] and rows["idle"]["vhosts"] == []
    text = cli("status", root=root).stdout
    assert "VHOSTS" in text and "blog.example" in text
    check = cli("check", root=root).stdout.splitlines()
    assert ("/etc/nginx/sites-enabled/gone:7: nginx old.example passes PHP to unix:/run/php/old.sock, where "
            "no pool listens (pools listen on: /run/php/blog.sock, /run/php/cloud.sock, /run/php/idle.sock, "
            "127.0.0.1:9001); fix the address or the pool's listen") in check
    assert any(line.startswith("note: ") and "pool idle (/run/php/idle.sock): no nginx vhost passes PHP to it"
               in line for line in check), check


@needs_nginx
def test_a_vhost_passing_another_pools_site_to_a_pool_is_refused_and_explained(tmp_path, cli):
    root = _pools_without_roots(tmp_path / "root")
    (root / "var/www/blog/shop").mkdir()
    nginx_tree(root, {**corpus("nginx", "blog"), "plain": PLAIN_NGINX, "shop": NESTED_NGINX})
    assert real_nginx(root, "-t")[0].returncode == 0
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    # a pool served by several vhosts gets all their roots
    assert rows["plain"]["site_root"] == ["/var/www/blog/shop", "/var/www/plain"]
    assert rows["plain"]["vhosts"] == ["plain.example", "shop.example"]
    proc = cli("generate", root=root)
    # the pool whose vhost reaches into blog's site pays, not blog (its own config is right)
    assert proc.returncode == 1 and ("pool plain: its root /var/www/blog/shop (from nginx "
                                     "/etc/nginx/sites-enabled/plain:4, nginx /etc/nginx/sites-enabled/shop:5) "
                                     "is inside pool blog's site /var/www/blog") in proc.stderr, proc.stderr
    assert "pool blog:" not in proc.stderr
    blog = (root / "etc/apparmor.d/php-fpm.d/blog").read_text()
    assert '"/var/www/blog/**" r,' in blog and "core-only hat" not in blog
    assert "core-only hat" in (root / "etc/apparmor.d/php-fpm.d/plain").read_text()
    check = cli("check", root=root).stdout.splitlines()
    assert ("/etc/nginx/sites-enabled/shop:5: nginx shop.example passes PHP below /var/www/blog/shop to pool "
            "plain, but that is inside pool blog's site /var/www/blog: its code would run in plain's hat") in check


@needs_nginx
def test_root_in_the_tools_config_still_wins_and_vhosts_are_still_shown(tmp_path, cli):
    root = _pools_without_roots(tmp_path / "root")
    nginx_tree(root, corpus("nginx", "blog"))
    (root / "srv/blog").mkdir(parents=True)
    conf = root / "etc/php-fpm-apparmor/php-fpm-apparmor.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[blog]\nroot = /srv/blog\n")
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    assert rows["blog"]["site_root"] == ["/srv/blog"] and rows["blog"]["root_origin"] == "root = in [blog]"
    assert rows["blog"]["vhosts"] == ["blog.example"]
    # ... and check says the vhost's files lie outside that root
    assert ("/etc/nginx/sites-enabled/blog:5: nginx blog.example passes PHP below /var/www/blog to pool "
            "blog, outside its site /srv/blog (root = in [blog]): its hat would deny those files"
            in cli("check", root=root).stdout)


HESTIA_APACHE = corpus("apache", "hestia.conf")["hestia.conf"]


def _hestia(name: str, docroot: str, sock: str) -> str:
    return HESTIA_APACHE.replace("/home/alice/web/hestia.example/public_html", docroot).replace(
        "/run/php/php8.2-fpm-hestia.example.sock", sock).replace("hestia.example", name)


@needs_apache
def test_apache_end_to_end_debian_fpm_conf_and_panel_vhosts(tmp_path, cli):
    from systree import pool_conf
    root = _pools_without_roots(tmp_path / "root")
    www = pool_conf("www").replace("listen = /run/php/www.sock", f"listen = /run/php/php{PHP}-fpm.sock")
    (root / "etc/php/8.2/fpm/pool.d/www.conf").write_text(www)
    (root / "var/www/html").mkdir(parents=True)
    plain = ("<VirtualHost *:80>\nServerName plain.example\nDocumentRoot /var/www/plain\n"
             "ProxyPassMatch ^/(.*\\.php(/.*)?)$ fcgi://127.0.0.1:9001/var/www/plain/$1\n</VirtualHost>\n")
    apache_tree(root, {"blog.conf": _hestia("blog.example", "/var/www/blog", "/run/php/blog.sock"),
                       "cloud.conf": _hestia("cloud.example", "/var/www/cloud", "/run/php/cloud.sock"),
                       "plain.conf": plain})
    assert real_apache(root, "-t").returncode == 0
    proc = cli("generate", root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 pool(s) ready, 0 problem(s)" in proc.stdout
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    # the Hestia stats Alias does not exist here: only the DocumentRoot is a root
    assert rows["blog"]["site_root"] == ["/var/www/blog"] and rows["blog"]["vhosts"] == ["blog.example"]
    assert [a.split()[0] for a in rows["blog"]["apps"]] == ["wordpress"]
    assert rows["cloud"]["apps"][0].startswith("nextcloud") and rows["cloud"]["vhosts"] == ["cloud.example"]
    assert rows["plain"]["site_root"] == ["/var/www/plain"]
    assert rows["plain"]["root_origin"] == "from apache /etc/apache2/sites-enabled/plain.conf:4"
    # Debian's php8.2-fpm.conf serves the vhosts without a handler: here the default one
    assert rows["www"]["site_root"] == ["/var/www/html"]
    assert rows["www"]["root_origin"] == "from apache /etc/apache2/sites-enabled/000-default.conf:12"


def test_webserver_path_unit_verifies_and_watches_the_sites(tmp_path):
    """systemd-analyze verify on the path/service pair: an edited site regenerates."""
    from pathlib import Path
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze missing")
    repo = Path(__file__).resolve().parents[1]
    units = tmp_path / "usr/lib/systemd/system"  # where the package installs them
    units.mkdir(parents=True)
    for name in ("php-fpm-apparmor-webserver.path", "php-fpm-apparmor-webserver.service"):
        shutil.copy(repo / "systemd" / name, units / name)
    for pattern in ("*.target", "*.slice"):
        for unit in Path("/usr/lib/systemd/system").glob(pattern):
            if not (units / unit.name).exists():
                shutil.copy(unit, units / unit.name, follow_symlinks=True)
    exe = tmp_path / "usr/bin/php-fpm-apparmor"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={tmp_path}",
                          "php-fpm-apparmor-webserver.path", "php-fpm-apparmor-webserver.service"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    path = (units / "php-fpm-apparmor-webserver.path").read_text()
    for watched in ("/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "/etc/apache2/sites-enabled",
                    "/etc/apache2/conf-enabled", "/etc/apache2/conf-available", "/etc/apache2/apache2.conf"):
        assert f"PathChanged={watched}\n" in path
    service = (units / "php-fpm-apparmor-webserver.service").read_text()
    assert "ExecStart=/usr/bin/php-fpm-apparmor generate --quiet\n" in service
    install = (repo / "debian/php-fpm-apparmor.install").read_text()
    assert re.search(r"^systemd/php-fpm-apparmor-webserver\.path (usr/)?lib/systemd/system/$", install, re.M)


@needs_nginx
def test_demo_nginx_is_valid_and_status_shows_its_vhosts(tmp_path, cli):
    from pathlib import Path
    tree = tmp_path / "demo"
    shutil.copytree(Path(__file__).resolve().parents[1] / "demo", tree, symlinks=True)
    proc, _ = real_nginx(tree, "-t")
    assert proc.returncode == 0, proc.stderr
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=tree).stdout)}
    assert {p: r["vhosts"] for p, r in rows.items()} == {
        "web1": ["web1.example"], "blog": ["blog.example"], "cloud": ["cloud.example"], "plain": []}
    assert rows["cloud"]["root_origin"] == "from nginx /etc/nginx/sites-enabled/cloud:8"
    assert rows["web1"]["root_origin"] == "root = in [8.1/web1]"  # the tool's config still wins


@needs_nginx
def test_nginx_include_bomb_stops_with_one_line(tmp_path):
    """Each level includes the next 200 times: 200^3 directives would never finish."""
    sites = corpus("nginx", "blog")
    for level, nxt in (("zz1", "zz2"), ("zz2", "zz3")):
        sites[level] = f"include /etc/nginx/sites-available/{nxt};\n" * 200
    sites["zz3"] = "# nothing\n" + "types_hash_max_size 2048;\n" * 200
    root = nginx_tree(tmp_path / "root", sites)
    problems = []
    found = nginx.read(str(root), problems)
    assert "unix:/run/php/blog.sock" in {v.address for v in found}  # read before the bomb
    assert any("more than 1000000 directives after expanding includes" in p for p in problems), problems


@needs_nginx
@needs_apache
def test_live_system_reads_nginx_T_and_agrees_with_apache_dump_includes():
    """On / the readers use the installed nginx -T and apache2ctl (Debian's stock configs here)."""
    problems = []
    tree, files = nginx.load("/", problems)
    dump = subprocess.run(["nginx", "-T"], capture_output=True, text=True)
    if dump.returncode != 0:
        pytest.skip(f"nginx -T fails on this host: {dump.stderr.strip()[-200:]}")
    assert list(files) == list(nginx.split_dump(dump.stdout)[1])
    r = apache.load("/", problems)
    theirs = apache.dump_includes(subprocess.run(["apache2ctl", "-t", "-D", "DUMP_INCLUDES"],
                                                 capture_output=True, text=True).stdout)
    assert r.read_order == theirs
    assert problems == []


@needs_nginx
def test_a_control_character_in_a_root_is_refused_with_its_line(tmp_path, cli):
    from systree import make_tree, pool_conf
    root = make_tree(tmp_path / "root", {"blog": pool_conf("blog", hat="blog")})
    (root / "var/www/bl\nog").mkdir(parents=True)
    site = corpus("nginx", "blog")["blog"].replace("root /var/www/blog;", 'root "/var/www/bl\\nog";')
    nginx_tree(root, {"blog": site})
    proc = cli("generate", root=root)
    assert proc.returncode == 1
    assert ("/etc/nginx/sites-enabled/blog:5: root '/var/www/bl\\nog' contains a control character"
            in proc.stderr), proc.stderr
    # The pool sets apparmor_hat: it gets the core-only hat, nothing of the refused root.
    hat = (root / "etc/apparmor.d/php-fpm.d/blog").read_text()
    rules = [line for line in hat.splitlines() if not line.lstrip().startswith("#")]
    assert generate.CORE_ONLY in hat and not any("/var/www/bl" in line for line in rules)


@needs_nginx
def test_roots_with_spaces_quotes_and_braces_compile_and_a_variable_root_is_a_warning(tmp_path, cli):
    """generate validates every hat with the real apparmor_parser: the hostile names survive it."""
    from systree import make_tree, pool_conf
    root = make_tree(tmp_path / "root", {n: pool_conf(n, hat=n) for n in ("quoted", "spaced")}
                     | {"wild": pool_conf("wild")})
    for d in ('var/www/it"s; {here}', "var/www/my site"):
        (root / d).mkdir(parents=True)
        (root / d / "index.php").write_text("<?php\n")
    nginx_tree(root, corpus("nginx", "hostile"))
    proc = cli("generate", root=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 pool(s) ready, 0 problem(s)" in proc.stdout
    text = (root / "etc/apparmor.d/php-fpm.d/quoted").read_text()
    assert '"/var/www/it\\"s; \\{here\\}/**" r,' in text
    assert '"/var/www/my site/**" r,' in (root / "etc/apparmor.d/php-fpm.d/spaced").read_text()
    assert ("warning: /etc/nginx/sites-enabled/hostile:23: root /var/www/$sub is set by a variable"
            in proc.stderr)
    # the pool behind the variable root is told why it has none
    assert "pool wild: no root: set root = in the pool's section" in proc.stdout
    assert "(/etc/nginx/sites-enabled/hostile:23: root /var/www/$sub is set by a variable" in proc.stdout


def test_sites_without_the_main_config_and_var_run_sockets(tmp_path, cli):
    """A tree with only sites-enabled (no nginx.conf, no apache2.conf, no /var/run link),
    sockets spelled /var/run/php/... as older tutorials do: read as Debian's main files would."""
    from systree import make_tree, pool_conf
    from apptrees import wordpress
    root = make_tree(tmp_path / "root", {"www": pool_conf("www", hat="www").replace(
        "listen = /run/php/www.sock", "listen = /run/php/php8.2-fpm.sock")})
    wordpress(root, "/var/www/wordpress")
    site = corpus("nginx", "blog")["blog"].replace("/var/www/blog", "/var/www/wordpress").replace(
        "unix:/run/php/blog.sock", "unix:/var/run/php/php8.2-fpm.sock")
    (root / "etc/nginx/sites-enabled").mkdir(parents=True)
    (root / "etc/nginx/sites-enabled/wordpress").write_text(site)
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    assert rows["www"]["site_root"] == ["/var/www/wordpress"] and rows["www"]["vhosts"] == ["blog.example"]
    assert rows["www"]["apps"][0].startswith("wordpress")
    shutil.rmtree(root / "etc/nginx")
    (root / "etc/apache2/sites-enabled").mkdir(parents=True)
    (root / "etc/apache2/sites-enabled/wp.conf").write_text(_hestia("wp.example", "/var/www/wordpress",
                                                                    "/var/run/php/php8.2-fpm.sock"))
    rows = {r["pool"]: r for r in json.loads(cli("--json", "status", root=root).stdout)}
    assert rows["www"]["site_root"] == ["/var/www/wordpress"] and rows["www"]["vhosts"] == ["wp.example"]


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_PIECES = st.sampled_from(["server", "location", "{", "}", ";", "root", "alias", "fastcgi_pass", "set",
                           "include", "upstream", "if", '"', "'", "\\", "$x", "${x}", "#", "\n", " ",
                           "unix:/run/php/a.sock", "/var/www/a", "fastcgi_param", "SCRIPT_FILENAME",
                           "$document_root$fastcgi_script_name", "http", "<VirtualHost *:80>",
                           "</VirtualHost>", "<Directory /a>", "</Directory>", "SetHandler",
                           "\"proxy:unix:/run/php/a.sock|fcgi://x\"", "ProxyPassMatch", "DocumentRoot",
                           "Include", "<IfModule x>", "</IfModule>", "Define", "<Proxy balancer://b>"])


def _both_nginx_readers(text: str):
    import old_nginx  # the tokenizer before the one-match-per-token one: the oracle

    new_problems, old_problems = [], []
    return (nginx.parse(text, "f", new_problems), new_problems), (old_nginx.parse(text, "f", old_problems), old_problems)


def test_nginx_reads_the_corpus_and_debians_files_as_before():
    """The corpus' panel vhosts and Debian's own /etc/nginx: the same directives, lines and
    problems as the tokenizer before (tests/old_nginx.py)."""
    files = [f for f in sorted((CORPUS / "nginx").rglob("*")) + sorted(Path("/etc/nginx").rglob("*"))
             if f.is_file()]
    assert len(files) > 10
    for f in files:
        new, old = _both_nginx_readers(f.read_text(errors="replace"))
        assert new == old, f


_NGINX_BITS = st.sampled_from([" ", "\t", "\n", "\r", ";", "{", "}", '"', "'", "\\", "#", "$", "${", "a", "b}",
                               "é", "\\\n", "x#y", "'a\\'b'", '"a\\"b"', "\x0b", "\xa0", "a$", "x\"y"])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(_NGINX_BITS, _PIECES), max_size=40))
def test_nginx_reads_any_text_as_before(parts):
    """Unclosed quotes, a backslash that ends the file, a comment past a \\r, blocks
    without a name: what the faster tokenizer reads is what the one before read."""
    text = "".join(parts)
    new, old = _both_nginx_readers(text)
    assert new == old, repr(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab\\$ \t\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\u00e9")), max_size=30))
def test_apache_words_without_quotes_are_its_split(text):
    """A line without quotes (most of a panel's vhost) is split by str.split(), which must
    give ap_getword_conf's whitespace-separated words as the quote-aware pattern does,
    whatever Unicode calls a space."""
    assert apache.words(text) == [m.group(3) for m in apache._WORD.finditer(text)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=60))
def test_readers_never_crash_on_any_text(tmp_path, parts):
    text = " ".join(parts)
    problems = []
    nginx.parse(text, "f", problems)
    apache.parse(text, "f", problems)
    assert all(isinstance(p, str) and "\n" not in p.split(": ", 1)[0] for p in problems)
    tree = [nginx.Directive("http", [], "f", 1, nginx.parse(text, "f", problems))]
    for v in nginx.vhosts(tree, problems):
        assert isinstance(v.address, str)
    r = apache.Reader(Files(str(tmp_path), problems), problems)
    r._walk(apache.parse(text, "f", problems), ["f"], r.main, None)
    apache._vhosts(r, problems)
    # and through the whole reader, files on disk included
    (tmp_path / "etc/nginx").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/nginx/nginx.conf").write_text(f"http {{ {text} }}", errors="surrogateescape")
    (tmp_path / "etc/apache2").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc/apache2/apache2.conf").write_text(text, errors="surrogateescape")
    web = webserver.read(str(tmp_path))
    assert all("\n" not in p for p in web.problems)


@needs_nginx
def test_fastcgi_that_is_not_php_is_only_a_note(tmp_path):
    """fcgiwrap (cgit, git-http-backend) and other FastCGI servers are not pools: no false alarm."""
    from types import SimpleNamespace
    sites = {"git": "server { listen 80; server_name git.example; root /usr/share/cgit;\n"
                    " location / { include fastcgi_params; fastcgi_param SCRIPT_FILENAME "
                    "/usr/lib/cgit/cgit.cgi; fastcgi_pass unix:/run/fcgiwrap.socket; }\n"
                    " location ~ \\.php$ { include fastcgi.conf; fastcgi_pass unix:/run/php/gone.sock; } }\n"}
    root = nginx_tree(tmp_path / "root", sites)
    (root / "etc/apache2/sites-enabled").mkdir(parents=True)
    (root / "etc/apache2/sites-enabled/app.conf").write_text(
        "<VirtualHost *:80>\nServerName app.example\nDocumentRoot /srv/app\n"
        "ProxyPass /app/ fcgi://127.0.0.1:4000/\n</VirtualHost>\n")
    web = webserver.read(str(root))
    result = SimpleNamespace(web=web, entries=[])
    lines = webserver.findings(result, str(root))
    assert sorted(lines) == sorted([
        "note: /etc/nginx/sites-enabled/git:2: nginx git.example passes FastCGI to unix:/run/fcgiwrap.socket, "
        "where no pool listens: not PHP, it seems (fcgiwrap, another application server)",
        "/etc/nginx/sites-enabled/git:3: nginx git.example passes PHP to unix:/run/php/gone.sock, where no "
        "pool listens (pools listen on: none); fix the address or the pool's listen",
        "note: /etc/apache2/sites-enabled/app.conf:4: apache app.example passes FastCGI to 127.0.0.1:4000, "
        "where no pool listens: not PHP, it seems (fcgiwrap, another application server)"])


@needs_nginx
def test_a_vhost_root_above_another_pools_site_is_reported(tmp_path, cli):
    """`root /var/www;` passing everything to one pool reaches every other pool's site."""
    root = _pools_without_roots(tmp_path / "root")
    catchall = PLAIN_NGINX.replace("root /var/www/plain;", "root /var/www;").replace(
        "server_name plain.example;", "server_name _;")
    nginx_tree(root, {**corpus("nginx", "blog"), "catchall": catchall})
    assert real_nginx(root, "-t")[0].returncode == 0
    check = cli("check", root=root).stdout.splitlines()
    assert ("/etc/nginx/sites-enabled/catchall:4: nginx _ passes PHP below /var/www to pool plain, and pool "
            "blog's site /var/www/blog is inside it: that code is reachable there and would run in plain's "
            "hat") in check, check
    status = cli("status", root=root)
    # /var/www is a parent of sites, never a root: plain gets none from it, and says why
    assert ("/etc/nginx/sites-enabled/catchall:4: nginx root /var/www is a system directory or a parent of "
            "sites, not pool plain's site") in status.stdout


@needs_apache
def test_apache_include_of_a_directory_reads_it_recursively_like_apache(tmp_path):
    root = apache_tree(tmp_path / "root", corpus("apache", "blog.conf"))
    etc = root / "etc/apache2"
    (etc / "extra/sub").mkdir(parents=True)
    (etc / "extra/a.conf").write_text("Define SITE /srv/sub\n")
    (etc / "extra/sub/sub.conf").write_text(
        "<VirtualHost *:80>\nServerName sub.example\nDocumentRoot ${SITE}\n"
        "ProxyPassMatch ^/(.*\\.php)$ unix:/run/php/sub.sock|fcgi://localhost${SITE}/$1\n</VirtualHost>\n")
    with open(etc / "apache2.conf", "a") as f:
        f.write("Include extra\n")
    assert real_apache(root, "-t").returncode == 0
    theirs = [p.replace(str(root), "", 1) for p in
              apache.dump_includes(real_apache(root, "-t", "-D", "DUMP_INCLUDES").stdout)]
    problems = []
    assert apache.load(str(root), problems).read_order == theirs
    sub = [v for v in apache.read(str(root), problems) if v.names == ["sub.example"]]
    assert [(v.address, v.roots) for v in sub] == [
        ("unix:/run/php/sub.sock", [("/srv/sub", "/etc/apache2/extra/sub/sub.conf:4")])]  # Define'd
    assert problems == []


@needs_apache
def test_apache_macro_bodies_are_not_taken_for_vhosts(tmp_path):
    sites = corpus("apache", "hestia.conf")
    sites["macro.conf"] = ("<Macro Site $name>\n<VirtualHost *:80>\nServerName $name.example\n"
                           "DocumentRoot /var/www/$name\n<FilesMatch \\.php$>\n"
                           "SetHandler \"proxy:unix:/run/php/$name.sock|fcgi://localhost\"\n</FilesMatch>\n"
                           "</VirtualHost>\n</Macro>\n")
    root = apache_tree(tmp_path / "root", sites)
    problems = []
    found = apache.read(str(root), problems)
    assert not any("$name" in v.address for v in found)
    assert problems == ["/etc/apache2/sites-enabled/macro.conf:1: <Macro Site> is not expanded here; "
                        "set root = for the pools its vhosts serve"]
