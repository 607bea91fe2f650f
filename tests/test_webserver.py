"""Web server configs -> each pool's site: the real nginx and Apache judge the corpus, our
readers must agree with them (include expansion) and find the vhosts, roots and names."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from php_fpm_apparmor import apache, nginx, webserver
from php_fpm_apparmor.webserver import Files, parse_address, same_address
from webtrees import apache_tree, corpus, nginx_dump_files, nginx_tree, real_apache, real_nginx

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
    assert reader.read_order == list(theirs), (reader.read_order, list(theirs))
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


APACHE_EXPECTED = {
    # Debian's conf-available/php8.2-fpm.conf: every vhost without a handler of its own
    "unix:/run/php/php8.2-fpm.sock": ({"/var/www/html", "/var/www/blog"}, {"blog.example", "www.blog.example"}),
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
    assert "/etc/apache2/conf-enabled/php8.2-fpm.conf" in theirs


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


@needs_apache
def test_apache_with_mod_php_leaves_debian_fpm_conf_inactive(tmp_path):
    """<IfModule !mod_php8.c> in php8.2-fpm.conf: with mod_php loaded Apache runs PHP itself."""
    root = apache_tree(tmp_path / "root", corpus("apache", "blog.conf"))
    mods = root / "etc/apache2/mods-enabled"
    for m in ("php8.2.load", "php8.2.conf"):
        (mods / m).symlink_to(f"../mods-available/{m}")
    assert real_apache(root, "-t").returncode == 0
    assert apache.read(str(root), []) == []


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
