"""A shared WordPress host as a system tree, for the scale benchmarks (issue 10).

N ISPConfig-style pools (/var/www/clients/clientC/webI/web, chdir + open_basedir), one
WordPress in every pool from its marker files (Debian's real version.php and
wp-config-sample.php filled in, wp-settings.php, wp-content/), every third also with WebP
Express + WP Super Cache (tests/apptrees.py builds those two the way the plugin tests do);
with nginx(), one vhost per pool in the shape ISPConfig writes.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "src"))
sys.path.insert(0, str(HERE.parents[0] / "tests"))

import apptrees  # noqa: E402
from bench_pools import POOL  # noqa: E402

# The files a site's detection reads, at their real size: Debian's wordpress package's
# version.php and wp-config-sample.php (doc comments and all: 1 KB and 3 KB, where a
# two-line stand-in hid most of the lexing), else short stand-ins.
DEBIAN_WP = Path("/usr/share/wordpress")
VERSION_PHP = "<?php\n$wp_version = '6.4.3';\n$wp_db_version = 56657;\n"


def _version_php() -> str:
    real = DEBIAN_WP / "wp-includes/version.php"
    return real.read_text() if real.is_file() else VERSION_PHP


def _config_php(name: str) -> str:
    sample = DEBIAN_WP / "wp-config-sample.php"
    if not sample.is_file():
        return apptrees.UPSTREAM_CONFIG.format(name=name, extra="define( 'DISALLOW_FILE_MODS', true );")
    text = sample.read_text()
    for key, value in (("database_name_here", name), ("username_here", name), ("password_here", f"secret-{name}")):
        text = text.replace(key, value)
    for k in range(8):  # the salts WordPress's installer writes: 64 characters each
        text = text.replace("put your unique phrase here", hashlib.sha256(f"{name}{k}".encode()).hexdigest(), 1)
    stop = "/* That's all, stop editing!"
    return text.replace(stop, "define( 'DISALLOW_FILE_MODS', true );\n\n" + stop, 1)


def web(i: int) -> str:
    return f"/var/www/clients/client{i // 10}/web{i}/web"


def wordpress(sysroot: Path, root: str) -> Path:
    disk = sysroot / root.lstrip("/")
    (disk / "wp-includes").mkdir(parents=True, exist_ok=True)
    (disk / "wp-includes/version.php").write_text(_version_php())
    (disk / "wp-settings.php").write_text("<?php\n// WordPress bootstrap\n")
    (disk / "index.php").write_text("<?php\nrequire __DIR__ . '/wp-blog-header.php';\n")
    for sub in ("uploads", "plugins", "themes", "languages"):
        (disk / "wp-content" / sub).mkdir(parents=True, exist_ok=True)
    (disk / "wp-config.php").write_text(_config_php(Path(root).parent.name))
    return disk


def build(root: Path, n: int, version: str = "8.2", app: str = "wordpress") -> Path:
    """The tree; `app` "nextcloud" puts Nextcloud in every pool instead, "none" a plain PHP
    site with 40 subdirectories (what the plugins look through and find nothing in)."""
    etc = root / "etc"
    pool_d = etc / f"php/{version}/fpm/pool.d"
    pool_d.mkdir(parents=True)
    (etc / f"php/{version}/fpm/php-fpm.conf").write_text(
        f"[global]\npid = /run/php/php{version}-fpm.pid\nerror_log = /var/log/php{version}-fpm.log\n"
        f"include=/etc/php/{version}/fpm/pool.d/*.conf\n")
    ini = Path(f"/etc/php/{version}/fpm/php.ini")
    (etc / f"php/{version}/fpm/php.ini").write_text(ini.read_text() if ini.exists() else "[PHP]\n")
    (root / "usr/sbin").mkdir(parents=True)
    (root / f"usr/sbin/php-fpm{version}").touch()
    (root / "etc/apparmor.d/php-fpm.d").mkdir(parents=True)
    passwd = ["root:x:0:0::/root:/bin/sh", "www-data:x:33:33::/var/www:/usr/sbin/nologin"]
    group = ["root:x:0:", "www-data:x:33:"]
    for i in range(n):
        c = i // 10
        passwd.append(f"web{i}:x:{5000 + i}:{5000 + c}::/var/www/web{i}:/bin/false")
        if i % 10 == 0:
            group.append(f"client{c}:x:{5000 + c}:")
        # chdir to the web root (ISPConfig's own chdir = / says nothing about the site)
        (pool_d / f"web{i}.conf").write_text(POOL.format(i=i, c=c).replace("chdir = /\n", f"chdir = {web(i)}\n"))
        base = root / web(i).lstrip("/")
        (base.parent / "tmp").mkdir(parents=True, exist_ok=True)
        (base.parent / "private").mkdir(exist_ok=True)
        if app == "nextcloud":
            apptrees.nextcloud(root, web(i), data=f"{base.parent}/private/data")
        elif app == "none":
            for d in range(40):
                (base / f"dir{d}").mkdir(parents=True)
            (base / "index.php").write_text("<?php\necho 'hello';\n")
        else:
            disk = wordpress(root, web(i))
            if i % 3 == 0:
                apptrees.webp_express(disk)
                apptrees.wp_super_cache(disk)
    (etc / "passwd").write_text("\n".join(passwd) + "\n")
    (etc / "group").write_text("\n".join(group) + "\n")
    return root


def add_pool(root: Path, i: int, version: str = "8.2") -> None:
    """Pool web<i> (a new customer: its user, its WordPress) added to a built tree."""
    c = i // 10
    etc = root / "etc"
    with open(etc / "passwd", "a") as f:
        f.write(f"web{i}:x:{5000 + i}:{5000 + c}::/var/www/web{i}:/bin/false\n")
    with open(etc / "group", "a") as f:
        f.write(f"client{c}:x:{5000 + c}:\n")
    (etc / f"php/{version}/fpm/pool.d/web{i}.conf").write_text(
        POOL.format(i=i, c=c).replace("chdir = /\n", f"chdir = {web(i)}\n"))
    base = root / web(i).lstrip("/")
    (base.parent / "tmp").mkdir(parents=True, exist_ok=True)
    (base.parent / "private").mkdir(exist_ok=True)
    wordpress(root, web(i))


# The shape ISPConfig 3 writes for a site (nginx_vhost.conf.master): about 90 lines, its
# error pages, stats and ACME locations, PHP through a named location with Debian's
# fastcgi_params (a ten-line stand-in hid most of the reading).
ERROR_PAGES = "".join(f"""
    error_page {code} /error/{code}.html;
    location = /error/{code}.html {{{{
        internal;
        auth_basic off;
    }}}}""" for code in (400, 401, 403, 404, 405, 500, 502, 503))
NGINX_SITE = """server {{
    listen *:80;
    listen [::]:80;
    listen *:443 ssl http2;
    listen [::]:443 ssl http2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate /var/www/clients/client{c}/web{i}/ssl/web{i}.example-le.crt;
    ssl_certificate_key /var/www/clients/client{c}/web{i}/ssl/web{i}.example-le.key;

    server_name web{i}.example www.web{i}.example;

    root   {root}/;
    disable_symlinks if_not_owner from=$document_root;

    if ($scheme != "https") {{
        rewrite ^ https://$http_host$request_uri? permanent;
    }}

    index index.html index.htm index.php index.cgi index.pl index.xhtml standard_index.html;
""" + ERROR_PAGES + """
    recursive_error_pages on;

    error_log /var/log/ispconfig/httpd/web{i}.example/error.log;
    access_log /var/log/ispconfig/httpd/web{i}.example/access.log combined;

    location ~ /\\. {{
        deny all;
    }}

    location ^~ /.well-known/acme-challenge/ {{
        access_log off;
        log_not_found off;
        auth_basic off;
        root /usr/local/ispconfig/interface/acme/;
        try_files $uri $uri/ =404;
    }}

    location = /favicon.ico {{
        log_not_found off;
        access_log off;
        expires max;
        add_header Cache-Control "public, must-revalidate, proxy-revalidate";
    }}

    location = /robots.txt {{
        allow all;
        log_not_found off;
        access_log off;
    }}

    location /stats/ {{
        index index.html index.php;
        auth_basic "Members Only";
        auth_basic_user_file /var/www/clients/client{c}/web{i}/web//stats/.htpasswd_stats;
        add_header Content-Security-Policy "default-src * 'self' 'unsafe-inline' 'unsafe-eval' data:;";
    }}

    location ^~ /awstats-icon {{
        alias /usr/share/awstats/icon;
    }}

    location ~ \\.php$ {{
        try_files /web{i}-php-not-found.htm @php;
    }}

    location @php {{
        try_files $uri =404;
        include /etc/nginx/fastcgi_params;
        fastcgi_pass unix:/var/lib/php{version}-fpm/web{i}.sock;
        fastcgi_index index.php;
        fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
        #fastcgi_param PATH_INFO $fastcgi_script_name;
        fastcgi_intercept_errors on;
    }}

    location / {{
        try_files $uri $uri/ /index.php?$args;
    }}
}}
"""


def nginx(root: Path, n: int, version: str = "8.2") -> Path:
    """Debian's /etc/nginx in the tree with one enabled site per pool, each passing PHP to its
    pool's socket as ISPConfig writes them."""
    import webtrees

    return webtrees.nginx_tree(root, {f"web{i}.vhost": NGINX_SITE.format(i=i, c=i // 10, root=web(i), version=version)
                                      for i in range(n)})


# The shape ISPConfig 3 writes for a site on Apache (apache_ispconfig.vhost.master, PHP-FPM
# mode): about 90 lines, the handler in the site's <Directory> inside <IfModule>.
APACHE_SITE = """<Directory /var/www/web{i}.example>
		AllowOverride None
		Require all denied
</Directory>

<VirtualHost *:80>

		DocumentRoot {root}

		ServerName web{i}.example
		ServerAlias www.web{i}.example
		ServerAdmin webmaster@web{i}.example

		ErrorLog /var/log/ispconfig/httpd/web{i}.example/error.log

		Alias /error/ "{root}/error/"
""" + "".join(f"\t\tErrorDocument {code} /error/{code}.html\n"
              for code in (400, 401, 403, 404, 405, 500, 502, 503)) + """
		<IfModule mod_ssl.c>
		</IfModule>

		<Directory {root}>
				# Clear PHP settings of this website
				<FilesMatch ".+\\.ph(p[345]?|t|tml)$">
						SetHandler None
				</FilesMatch>
				Options +SymlinksIfOwnerMatch
				AllowOverride All
				Require all granted
		</Directory>

		# suexec enabled
		<IfModule mod_suexec.c>
			SuexecUserGroup web{i} client{c}
		</IfModule>

		# add support for apache mpm_itk
		<IfModule mpm_itk_module>
			AssignUserId web{i} client{c}
		</IfModule>

		<IfModule mod_dav_fs.c>
		# Do not execute PHP files in webdav directory
			<Directory /var/www/clients/client{c}/web{i}/webdav>
				<ifModule mod_security2.c>
					SecRuleRemoveById 960015
					SecRuleRemoveById 960032
				</ifModule>
				<FilesMatch "\\.ph(p3?|tml)$">
					SetHandler None
				</FilesMatch>
			</Directory>
			DavLockDB /var/www/clients/client{c}/web{i}/tmp/DavLock
			# DO NOT REMOVE THE COMMENTS!
			# WEBDAV BEGIN
			# WEBDAV END
		</IfModule>

		<IfModule mod_proxy_fcgi.c>
			<Directory {root}>
				<FilesMatch "\\.php[345]?$">
					SetHandler "proxy:unix:/var/lib/php{version}-fpm/web{i}.sock|fcgi://localhost"
				</FilesMatch>
			</Directory>
		</IfModule>

		<IfModule mod_rewrite.c>
			RewriteEngine on
			RewriteCond %{{REQUEST_URI}} ^/\\.well-known/acme-challenge/
			RewriteRule ^ - [END]
		</IfModule>

</VirtualHost>
"""


def apache(root: Path, n: int, version: str = "8.2") -> Path:
    """Debian's /etc/apache2 in the tree (proxy_fcgi on) with one enabled site per pool,
    each passing PHP to its pool's socket as ISPConfig writes them."""
    import webtrees

    return webtrees.apache_tree(root, {f"web{i}.example.vhost.conf": APACHE_SITE.format(
        i=i, c=i // 10, root=web(i), version=version) for i in range(n)}, confs=())


def fpm_test(root: Path, version: str = "8.2") -> list[str]:
    """php-fpm's own config test on the same pools (its paths made relative to the tree)."""
    return [f"/usr/sbin/php-fpm{version}", "-t", "-y", str(root / f"etc/php/{version}/fpm/php-fpm.conf"),
            "-c", str(root / f"etc/php/{version}/fpm/php.ini")]
