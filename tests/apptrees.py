"""Realistic application trees for the app-plugin tests, plus a static judge for the
plugins' EXPECTATIONS tables.

WordPress is Debian's own `wordpress` package (dpkg-deb -x of the cached or downloaded
.deb, else a copy of /usr/share/wordpress); WebP Express, WP Super Cache and Nextcloud are
built from their real marker files and headers (a few files each, not whole releases).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from php_fpm_apparmor import validate

needs_parser = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to other users (chown): as root")
WP_CACHE_DIR = Path(tempfile.gettempdir(), "php-fpm-apparmor-test-wordpress")


# --- WordPress from Debian's package ----------------------------------------------------

def _wordpress_deb() -> str | None:
    debs = sorted(glob.glob("/var/cache/apt/archives/wordpress_*_all.deb"))
    if debs:
        return debs[-1]
    dl = WP_CACHE_DIR / "deb"
    dl.mkdir(parents=True, exist_ok=True)
    debs = sorted(dl.glob("wordpress_*_all.deb"))
    if debs:
        return str(debs[-1])
    try:
        subprocess.run(["apt-get", "download", "wordpress"], cwd=dl, capture_output=True,
                       timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    debs = sorted(dl.glob("wordpress_*_all.deb"))
    return str(debs[-1]) if debs else None


def wordpress_source() -> Path | None:
    """A pristine WordPress tree (Debian's), extracted once per machine."""
    tree = WP_CACHE_DIR / "tree/usr/share/wordpress"
    if (tree / "wp-includes/version.php").is_file():
        return tree
    deb = _wordpress_deb()
    if deb:
        WP_CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="wp-", dir=WP_CACHE_DIR))
        subprocess.run(["dpkg-deb", "-x", deb, str(tmp)], check=True, timeout=300)
        if (tmp / "usr/share/wordpress/wp-includes/version.php").is_file():
            try:
                os.rename(tmp, WP_CACHE_DIR / "tree")
            except OSError:  # a parallel run won
                shutil.rmtree(tmp, ignore_errors=True)
            return tree
    if Path("/usr/share/wordpress/wp-includes/version.php").is_file():
        return Path("/usr/share/wordpress")
    return None


def _link_or_copy(src: Path):
    """Hard links from our private extracted copy (fast: 3,000 files per test), copies
    otherwise. Tests replace files (unlink + write), never write through a link."""
    if WP_CACHE_DIR in src.parents:
        def link(a, b):
            try:
                os.link(a, b)
            except OSError:
                shutil.copy2(a, b)
        return link
    return shutil.copy2


UPSTREAM_CONFIG = """<?php
/** The base configuration for WordPress (upstream wp-config-sample.php layout) */
define( 'DB_NAME', 'blog' );
define( 'DB_USER', 'blog' );
define( 'DB_PASSWORD', 'secret-{name}' );
define( 'DB_HOST', 'localhost' );
$table_prefix = 'wp_';
{extra}
/* That's all, stop editing! Happy publishing. */
if ( ! defined( 'ABSPATH' ) ) {{
	define( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
"""


def wordpress(sysroot: Path, root: str = "/var/www/blog", *, debian_config: bool = False,
              config_up: bool = False, disallow: bool = True, extra: str = "",
              content_dir: str | None = None) -> Path:
    """A WordPress at `root` under `sysroot`. Returns the on-disk root.

    debian_config keeps Debian's wp-config.php (WP_CONTENT_DIR in /var/lib/wordpress);
    otherwise an upstream-style wp-config.php is written (one level up with config_up).
    """
    src = wordpress_source()
    if src is None:
        raise RuntimeError("no WordPress tree: install the wordpress package")
    disk = sysroot / root.lstrip("/")
    disk.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, disk, symlinks=True, copy_function=_link_or_copy(src))
    if debian_config:
        content = sysroot / "var/lib/wordpress/wp-content"
        for sub in ("uploads", "plugins", "themes", "languages"):
            (content / sub).mkdir(parents=True, exist_ok=True)
        (sysroot / "etc/wordpress").mkdir(parents=True, exist_ok=True)
        (sysroot / "etc/wordpress/config-blog.example.org.php").write_text(
            "<?php\ndefine('DB_NAME', 'blog');\ndefine('DISALLOW_FILE_MODS', true);\n")
        return disk
    (disk / "wp-config.php").unlink()
    lines = [extra]
    if disallow:
        lines.append("define( 'DISALLOW_FILE_MODS', true );")
    if content_dir:
        lines.append(f"define( 'WP_CONTENT_DIR', '{content_dir}' );")
        (sysroot / content_dir.lstrip("/") / "uploads").mkdir(parents=True, exist_ok=True)
        shutil.copytree(disk / "wp-content/plugins", sysroot / content_dir.lstrip("/") / "plugins",
                        symlinks=True)
    text = UPSTREAM_CONFIG.format(name=Path(root).name, extra="\n".join(lines))
    target = disk.parent / "wp-config.php" if config_up else disk / "wp-config.php"
    target.write_text(text)
    (disk / "wp-content/uploads/2026/11").mkdir(parents=True, exist_ok=True)
    return disk


# --- phpMyAdmin from Debian's package ---------------------------------------------------

PMA_CACHE_DIR = Path(tempfile.gettempdir(), "php-fpm-apparmor-test-phpmyadmin")
# The open_basedir Debian's /etc/phpmyadmin/apache.conf gives mod_php: an admin's pool copies it.
PMA_OPEN_BASEDIR = ("/usr/share/phpmyadmin/:/usr/share/doc/phpmyadmin/:/etc/phpmyadmin/:"
                    "/var/lib/phpmyadmin/:/usr/share/php/:/usr/share/javascript/")


def phpmyadmin_source() -> Path | None:
    """Debian's phpmyadmin package unpacked (dpkg-deb -x), once per machine; None offline."""
    tree = PMA_CACHE_DIR / "tree"
    if (tree / "usr/share/phpmyadmin/libraries/vendor_config.php").is_file():
        return tree
    dl = PMA_CACHE_DIR / "deb"
    dl.mkdir(parents=True, exist_ok=True)
    debs = sorted(glob.glob("/var/cache/apt/archives/phpmyadmin_*_all.deb")) or sorted(map(str, dl.glob("phpmyadmin_*_all.deb")))
    if not debs:
        try:
            subprocess.run(["apt-get", "download", "phpmyadmin"], cwd=dl, capture_output=True,
                           timeout=300, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        debs = sorted(map(str, dl.glob("phpmyadmin_*_all.deb")))
    if not debs:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="pma-", dir=PMA_CACHE_DIR))
    subprocess.run(["dpkg-deb", "-x", debs[-1], str(tmp)], check=True, timeout=300)
    try:
        os.rename(tmp, tree)
    except OSError:  # a parallel run won
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def phpmyadmin(sysroot: Path) -> Path:
    """Debian's phpMyAdmin installed below `sysroot` as dpkg would lay it out, plus the
    files its maintainer scripts create (blowfish secret, config-db.php)."""
    src = phpmyadmin_source()
    if src is None:
        raise RuntimeError("no phpmyadmin package: apt-get download phpmyadmin failed")
    for part in ("usr/share/phpmyadmin", "usr/share/doc/phpmyadmin", "etc/phpmyadmin", "var/lib/phpmyadmin"):
        if (src / part).exists():
            (sysroot / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src / part, sysroot / part, symlinks=True, dirs_exist_ok=True)
    (sysroot / "var/lib/phpmyadmin/blowfish_secret.inc.php").write_text(
        "<?php\n$cfg['blowfish_secret'] = 'abcdefghijklmnopqrstuvwxyz012345';\n")
    (sysroot / "etc/phpmyadmin/config-db.php").write_text("<?php\n$dbuser='phpmyadmin';\n$dbname='phpmyadmin';\n")
    (sysroot / "usr/share/javascript/jquery").mkdir(parents=True, exist_ok=True)
    return sysroot / "usr/share/phpmyadmin"


WEBP_EXPRESS_HEADER = """<?php
/**
 * Plugin Name: WebP Express
 * Plugin URI: https://github.com/rosell-dk/webp-express
 * Description: Serve autogenerated WebP images instead of jpeg/png to browsers that supports WebP.
 * Version: 0.25.15
 * Author: Bjørn Rosell
 * License: GPL2
 * Network: true
 */
if (!defined('ABSPATH')) exit; // Exit if accessed directly
define('WEBPEXPRESS_PLUGIN', __FILE__);
"""

WP_SUPER_CACHE_HEADER = """<?php
/*
 * Plugin Name: WP Super Cache
 * Plugin URI: https://wordpress.org/plugins/wp-super-cache/
 * Description: Very fast caching plugin for WordPress.
 * Version: 1.12.4
 * Author: Automattic
 * License: GPL2+
 * Text Domain: wp-super-cache
 */
"""

WP_CACHE_CONFIG = """<?php
/*
WP-Cache Config Sample File

See wp-cache.php for author details.
*/

if ( ! defined('WPCACHEHOME') )
	define( 'WPCACHEHOME', WP_PLUGIN_DIR . '/wp-super-cache/' );

$cache_compression = 0; // Super cache compression
$cache_enabled = true;
$super_cache_enabled = true;
$cache_max_time = 3600; //in seconds
$cache_path = WP_CONTENT_DIR . '/cache/';
$file_prefix = 'wp-cache-';
$ossdlcdn = 0;
$cache_rejected_uri = array('wp-.*\\\\.php', 'index\\\\.php');

// Disable the file locking system.
// If you are experiencing problems with clearing or creating cache files
// uncommenting this may help.
$wp_cache_mutex_disabled = 1;
"""


def webp_express(wp_root: Path, content: Path | None = None, with_index: bool = True) -> Path:
    content = content or wp_root / "wp-content"
    plugin = content / "plugins/webp-express"
    binaries = plugin / "vendor/rosell-dk/webp-convert/src/Convert/Converters/Binaries"
    binaries.mkdir(parents=True, exist_ok=True)
    (plugin / "webp-express.php").write_text(WEBP_EXPRESS_HEADER)
    bundled = binaries / "cwebp-120-linux-x86-64"
    bundled.write_bytes(b"\x7fELF stand-in")
    bundled.chmod(0o755)
    (plugin / "test").mkdir(exist_ok=True)
    (plugin / "test/test.png").write_bytes(b"\x89PNG\r\n")
    config = content / "webp-express/config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.a1b2c3.json").write_text("{}")
    if with_index:
        (config / "index.php").write_text("<?php\nif (!defined('ABSPATH')) { http_response_code(403); die(); }\n")
    (content / "webp-express/webp-images/doc-root").mkdir(parents=True, exist_ok=True)
    return plugin


def wp_super_cache(wp_root: Path, content: Path | None = None, wp_config: Path | None = None) -> Path:
    content = content or wp_root / "wp-content"
    plugin = content / "plugins/wp-super-cache"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "wp-cache.php").write_text(WP_SUPER_CACHE_HEADER)
    (content / "wp-cache-config.php").write_text(WP_CACHE_CONFIG)
    (content / "advanced-cache.php").write_text("<?php\n// WP SUPER CACHE 1.2\n")
    (content / "cache/supercache").mkdir(parents=True, exist_ok=True)
    cfg = wp_config or wp_root / "wp-config.php"
    if cfg.is_file():
        text = cfg.read_text()
        cfg.unlink()  # never write through a hard link into the shared WordPress copy
        cfg.write_text(text.replace("<?php\n", "<?php\ndefine( 'WP_CACHE', true ); // Added by WP-Cache Manager\n", 1))
    return plugin


# --- Nextcloud from its marker files ----------------------------------------------------

NC_VERSION = """<?php
$OC_Version = array(30,0,4,1);
$OC_VersionString = '30.0.4';
$OC_Edition = '';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array (
  'nextcloud' =>
  array (
    '29.0' => true,
    '30.0' => true,
  ),
  'owncloud' =>
  array (
    '10.13' => true,
  ),
);
$OC_Build = '2024-12-19T14:56:30+00:00 7c3b8bd1a29cd2ab38e02e3c6cb5f0d30caf14bc';
$vendor = 'nextcloud';
"""

NC_CONFIG = """<?php
$CONFIG = array (
  'instanceid' => 'oc1234abcd',
  'passwordsalt' => 'salt',
  'secret' => 'secret',
  'trusted_domains' =>
  array (
    0 => 'cloud.example.org',
  ),
  'datadirectory' => '{data}',
  'dbtype' => 'mysql',
  'version' => '30.0.4.1',
  'overwrite.cli.url' => 'https://cloud.example.org',
  'apps_paths' =>
  array (
    0 =>
    array (
      'path' => OC::$SERVERROOT . '/apps',
      'url' => '/apps',
      'writable' => false,
    ),
    1 =>
    array (
      'path' => OC::$SERVERROOT . '/custom_apps',
      'url' => '/custom_apps',
      'writable' => true,
    ),
  ),
{extra}  'installed' => true,
);
"""


def nextcloud(sysroot: Path, root: str = "/var/www/cloud", data: str = "/srv/nextcloud-data",
              extra: str = "", vendor: str = "nextcloud") -> Path:
    disk = sysroot / root.lstrip("/")
    for sub in ("config", "apps/files/appinfo", "custom_apps", "lib/private", "core"):
        (disk / sub).mkdir(parents=True, exist_ok=True)
    (disk / "version.php").write_text(NC_VERSION.replace("'nextcloud';", f"'{vendor}';"))
    (disk / "occ").write_text("#!/usr/bin/env php\n<?php\nrequire_once __DIR__ . '/console.php';\n")
    (disk / "index.php").write_text("<?php\nrequire_once __DIR__ . '/lib/versioncheck.php';\n")
    (disk / "apps/files/appinfo/info.xml").write_text("<info><id>files</id></info>\n")
    (disk / "config/config.php").write_text(NC_CONFIG.format(data=data, extra=extra))
    d = sysroot / data.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    (d / ".ocdata").write_text("")
    return disk


# --- sites, plugins, the static judge: the shipped helpers ----------------------------------

from php_fpm_apparmor import testing  # noqa: E402
from php_fpm_apparmor.sites import Site  # noqa: E402,F401
from php_fpm_apparmor.testing import (Built, compile_error, fake_pool, judge, may_exec, plugin_only,  # noqa: E402
                                      shared_profiles, site)
from php_fpm_apparmor.testing import plugins as _plugins  # noqa: E402
from php_fpm_apparmor.testing import problems as invariant_problems  # noqa: E402


def build(s, plugins=None) -> tuple:
    """(apps, PoolPolicy, text) of one site through the real core (testing.build)."""
    return tuple(testing.build(s, plugins))


def first_party():
    """The plugins exactly as installed (entry points), third parties left out; nothing
    in the environment changes."""
    return _plugins()


def many_files(root: Path, count: int = 100_000, per_dir: int = 1000) -> None:
    """A big site: `count` small files in nested directories (detection must ignore them)."""
    for i in range(count):
        d = root / "wp-content/uploads/bulk" / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.jpg").touch()


# --- the generator's own checks on one or more built sites ------------------------------
