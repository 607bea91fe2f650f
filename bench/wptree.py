"""A shared WordPress host as a system tree, for the scale benchmarks (issue 10).

N ISPConfig-style pools (/var/www/clients/clientC/webI/web, chdir + open_basedir), one
WordPress in every pool from its marker files (version.php, wp-settings.php, an upstream
wp-config.php, wp-content/), every third also with WebP Express + WP Super Cache
(tests/apptrees.py builds those two the way the plugin tests do).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "src"))
sys.path.insert(0, str(HERE.parents[0] / "tests"))

import apptrees  # noqa: E402
from bench_pools import POOL  # noqa: E402

VERSION_PHP = "<?php\n$wp_version = '6.4.3';\n$wp_db_version = 56657;\n"


def web(i: int) -> str:
    return f"/var/www/clients/client{i // 10}/web{i}/web"


def wordpress(sysroot: Path, root: str) -> Path:
    disk = sysroot / root.lstrip("/")
    (disk / "wp-includes").mkdir(parents=True, exist_ok=True)
    (disk / "wp-includes/version.php").write_text(VERSION_PHP)
    (disk / "wp-settings.php").write_text("<?php\n// WordPress bootstrap\n")
    (disk / "index.php").write_text("<?php\nrequire __DIR__ . '/wp-blog-header.php';\n")
    for sub in ("uploads", "plugins", "themes", "languages"):
        (disk / "wp-content" / sub).mkdir(parents=True, exist_ok=True)
    (disk / "wp-config.php").write_text(apptrees.UPSTREAM_CONFIG.format(
        name=Path(root).parent.name, extra="define( 'DISALLOW_FILE_MODS', true );"))
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


NGINX_SITE = """server {{
    listen 80;
    server_name web{i}.example www.web{i}.example;
    root {root};
    index index.php;
    location / {{ try_files $uri $uri/ /index.php?$args; }}
    location ~ \\.php$ {{
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/var/lib/php{version}-fpm/web{i}.sock;
    }}
}}
"""


def nginx(root: Path, n: int, version: str = "8.2") -> Path:
    """Debian's /etc/nginx in the tree with one enabled site per pool, each passing PHP to its
    pool's socket through Debian's fastcgi-php.conf snippet (as a panel writes them)."""
    import webtrees

    return webtrees.nginx_tree(root, {f"web{i}.vhost": NGINX_SITE.format(i=i, root=web(i), version=version)
                                      for i in range(n)})


def fpm_test(root: Path, version: str = "8.2") -> list[str]:
    """php-fpm's own config test on the same pools (its paths made relative to the tree)."""
    return [f"/usr/sbin/php-fpm{version}", "-t", "-y", str(root / f"etc/php/{version}/fpm/php-fpm.conf"),
            "-c", str(root / f"etc/php/{version}/fpm/php.ini")]
