"""Hosts as a new admin sets them up from Debian's defaults (issue 13's held-back check):
pools with no chdir, doc_root or open_basedir, the real nginx/Apache accepting each config."""

from __future__ import annotations

import shutil

import pytest

import apptrees as at
from php_fpm_apparmor import generate, testing, webserver
from systree import make_tree
from webtrees import apache_tree, nginx_tree, real_apache, real_nginx

WWW_CONF = ("[www]\nuser = www-data\ngroup = www-data\nlisten = /run/php/php8.2-fpm.sock\n"
            "listen.owner = www-data\nlisten.group = www-data\npm = dynamic\npm.max_children = 5\n"
            "pm.start_servers = 2\npm.min_spare_servers = 1\npm.max_spare_servers = 3\napparmor_hat = www\n")

# Debian's default site with the PHP block uncommented, plus the tutorials' phpMyAdmin alias.
NGINX_DEFAULT = r"""server {
	listen 80 default_server;
	root /var/www/html;
	index index.php index.html;
	server_name _;
	location / {
		try_files $uri $uri/ =404;
	}
	location ~ \.php$ {
		include snippets/fastcgi-php.conf;
		fastcgi_pass unix:/run/php/php8.2-fpm.sock;
	}
	location /phpmyadmin {
		alias /usr/share/phpmyadmin/;
		index index.php;
		location ~ \.php$ {
			include fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $request_filename;
			fastcgi_pass unix:/var/run/php/php8.2-fpm.sock;
		}
	}
}
"""

# `a2enconf php8.2-fpm` and Debian's phpmyadmin package's Alias (its apache.conf).
APACHE_PMA = """Alias /phpmyadmin /usr/share/phpmyadmin
<Directory /usr/share/phpmyadmin>
    Options SymLinksIfOwnerMatch
    DirectoryIndex index.php
</Directory>
"""

needs_pma = pytest.mark.skipif(at.phpmyadmin_source() is None, reason="phpmyadmin package not available")


def _host(tmp_path):
    root = make_tree(tmp_path / "root", {"www": WWW_CONF}, sites=False)
    (root / "var/www/html").mkdir(parents=True)
    (root / "var/www/html/index.php").write_text("<?php phpinfo();\n")
    at.phpmyadmin(root)
    return root


def _www(root):
    result = generate.plan(str(root), testing.plugins())
    [e] = result.entries
    return result, e


def _vhost_findings(root, result):
    return [f for f in webserver.findings(result, str(root)) if "phpmyadmin" in f]


@needs_pma
@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_nginx_phpmyadmin_alias_on_debians_default_pool(tmp_path):
    """The alias names Debian's /usr/share/phpmyadmin: the plugin claims it for the pool the
    vhost passes it to (before, it was left out and the hat denied phpMyAdmin's files)."""
    root = nginx_tree(_host(tmp_path), {"default": NGINX_DEFAULT})
    proc, _ = real_nginx(root, "-t")
    assert proc.returncode == 0, proc.stderr
    result, e = _www(root)
    assert e.site.roots == ["/usr/share/phpmyadmin", "/var/www/html"]
    assert e.site.origin == "claimed by plugin phpmyadmin"
    assert [a.name for a in e.policy.apps] == ["phpmyadmin"]
    assert _vhost_findings(root, result) == []


@needs_pma
@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_nginx_phpmyadmin_alias_pool_generates(tmp_path):
    root = nginx_tree(_host(tmp_path), {"default": NGINX_DEFAULT})
    _, e = _www(root)
    assert not e.problem, e.problem


@needs_pma
@pytest.mark.skipif(not shutil.which("apache2ctl"), reason="apache2 not installed")
def test_apache_phpmyadmin_alias_with_a2enconf_php_fpm(tmp_path):
    root = _host(tmp_path)
    apache_tree(root, {})
    (root / "etc/apache2/conf-available/phpmyadmin.conf").write_text(APACHE_PMA)
    (root / "etc/apache2/conf-enabled/phpmyadmin.conf").symlink_to("../conf-available/phpmyadmin.conf")
    icons = root / "usr/share/apache2/icons"  # Debian's alias.conf: Alias /icons/ ...: no PHP there
    icons.mkdir(parents=True)
    (icons / "apache_pb.png").write_bytes(b"\x89PNG")
    proc = real_apache(root, "-t")
    assert proc.returncode == 0, proc.stderr
    result, e = _www(root)
    assert e.site.roots == ["/usr/share/phpmyadmin", "/var/www/html"]
    assert e.site.web_roots == ["/var/www/html", "/usr/share/phpmyadmin"]
    assert [a.name for a in e.policy.apps] == ["phpmyadmin"]
    assert _vhost_findings(root, result) == []


@needs_pma
@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_an_alias_to_phpmyadmin_for_another_pool_claims_nothing_for_www(tmp_path):
    """Only the pool the vhost passes the alias to gets it."""
    root = _host(tmp_path)
    text = NGINX_DEFAULT.replace("fastcgi_pass unix:/var/run/php/php8.2-fpm.sock;", "fastcgi_pass unix:/run/php/pma.sock;")
    nginx_tree(root, {"default": text})
    result, e = _www(root)
    assert e.site.roots == ["/var/www/html"]
    assert e.policy.apps == []


DEPLOYER_NGINX = r"""server {
    listen 80;
    server_name app.example.org;
    root /var/www/app/current/public;
    location ~ \.php$ {
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }
}
"""


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_a_deploy_tools_current_symlink_root_is_pinned_and_check_says_so(tmp_path, cli):
    """Deployer/Capistrano: the hat names releases/5; check tells what to do when it moves."""
    root = make_tree(tmp_path / "root", {"www": WWW_CONF}, sites=False)
    public = root / "var/www/app/releases/5/public"
    public.mkdir(parents=True)
    (public / "index.php").write_text("<?php echo 1;\n")
    (root / "var/www/app/current").symlink_to("releases/5")
    nginx_tree(root, {"default": None, "app": DEPLOYER_NGINX})
    assert real_nginx(root, "-t")[0].returncode == 0
    _, e = _www(root)
    assert not e.problem, e.problem
    assert e.site.roots == ["/var/www/app/releases/5/public"]
    out = cli("check", root=root).stdout
    assert ("note: pool www: root /var/www/app/current/public is a symlink to /var/www/app/releases/5/public, "
            "and the hat allows /var/www/app/releases/5/public only: when the link moves (a deploy), run "
            "php-fpm-apparmor generate after each switch, or set root = /var/www/app in the pool's section "
            "of /etc/php-fpm-apparmor/php-fpm-apparmor.conf") in out, out
