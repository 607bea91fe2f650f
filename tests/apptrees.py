"""Realistic application trees for the app-plugin tests, plus a static judge for the
plugins' EXPECTATIONS tables.

WordPress is Debian's own `wordpress` package (dpkg-deb -x of the cached or downloaded
.deb, else a copy of /usr/share/wordpress); WebP Express, WP Super Cache and Nextcloud are
built from their real marker files and headers (a few files each, not whole releases).
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from php_fpm_apparmor import apps as apps_mod
from php_fpm_apparmor import validate
from php_fpm_apparmor import evaluate, plugins as plugins_mod, policy as policy_mod, render
from php_fpm_apparmor.sites import Site

needs_parser = pytest.mark.skipif(validate.parser() is None, reason="apparmor_parser not installed")
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


# --- sites and pools without the pool reader -------------------------------------------

def fake_pool(name: str, ini: dict | None = None, env: dict | None = None, listen=None):
    ini = dict(ini or {})
    return SimpleNamespace(
        name=name, version="8.2", config_file=f"/etc/php/8.2/fpm/pool.d/{name}.conf",
        hat=name, user="www-data", group="www-data", listen=listen or f"/run/php/{name}.sock",
        access_log=None, slowlog=None, chroot=None, chdir=None, directives={}, origins={},
        env=dict({"PATH": "/usr/local/bin:/usr/bin:/bin"} if env is None else env), php_values={},
        php_admin_values={}, ini=lambda key: ini.get(key))


def site(sysroot: Path, name: str, roots, settings: dict | None = None, **pool) -> Site:
    return Site(pool=fake_pool(name, **pool), hat=name,
                roots=[str(r) for r in roots], sysroot=str(sysroot), settings=dict(settings or {}))


def first_party():
    """The plugins exactly as installed (entry points), third parties switched off."""
    os.environ["PHP_FPM_APPARMOR_NO_EXTERNAL_PLUGINS"] = "1"
    return plugins_mod.load()


def build(s: Site, plugins=None):
    """(detected apps, PoolPolicy, rendered text) for one site, through the real core."""
    plugins = plugins or first_party()
    found = apps_mod.detect(s, plugins)
    pol = policy_mod.build(s, found, plugins)
    return found, pol, render.render(pol)


# --- the static judge for EXPECTATIONS rows ----------------------------------------------

SHELLS = ("/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash")
PATH = ("/usr/local/bin", "/usr/bin", "/bin")


def _resolve(word: str, sysroot: str) -> str:
    if word.startswith("/"):
        return word
    for d in PATH:
        if Path(sysroot, d.lstrip("/"), word).exists() or Path(d, word).exists():
            return f"{d}/{word}"
    return f"/usr/bin/{word}"


def _commands(script: str):
    """Simple commands of a `sh -c` string: words, redirections dropped."""
    for part in script.replace("&&", ";").replace("||", ";").replace("|", ";").split(";"):
        words = [w for w in shlex.split(part) if not any(c in w for c in "<>")]
        if words:
            yield words


def may_exec(profiles: dict, name: str, argv, sysroot: str = "/", depth: int = 0) -> bool:
    """Would the program `argv` run from profile `name`, and everything it starts?"""
    if depth > 6 or name not in profiles:
        return False
    t = evaluate.exec_transition(profiles[name], argv[0])
    if t is None:
        return False
    mode, target = t
    nxt = name if "i" in mode.lower() and "p" not in mode.lower() and "c" not in mode.lower() \
        else target
    if nxt not in profiles:
        return False
    base = os.path.basename(argv[0])
    if argv[0] in SHELLS and len(argv) > 2 and argv[1] == "-c":
        return all(may_exec(profiles, nxt, [_resolve(w[0], sysroot)] + w[1:], sysroot, depth + 1)
                   for w in _commands(argv[2]))
    if base in ("nice", "stdbuf", "timeout"):
        rest = [a for a in argv[1:] if not a.startswith("-") and not a.lstrip("-").isdigit()]
        if rest:
            return may_exec(profiles, nxt, [_resolve(rest[0], sysroot)] + rest[1:], sysroot, depth + 1)
    return True


def shared_profiles(sendmail_cmds=()) -> dict:
    """The children every pool shares (php-fpm.d/_shared), parsed like a pool's file."""
    from php_fpm_apparmor import policy, render
    text = render.render_shared(policy.shared_profiles(list(sendmail_cmds)))
    return {k: v for k, v in evaluate.parse(text).items() if k != "php-fpm"}


def judge(text: str, hat: str, exp, sysroot: str = "/") -> bool:
    """True if the rendered policy allows the (resolved) expectation's operation."""
    profiles = evaluate.parse(text)
    profiles.update(shared_profiles())
    name = f"php-fpm//{hat}"
    if exp.op in ("read", "write"):
        return evaluate.allows(profiles[name], exp.op, exp.target)
    if exp.op == "exec":
        return may_exec(profiles, name, list(exp.argv or (exp.target,)), sysroot)
    if exp.op == "mail":  # mail() runs sendmail_path through /bin/sh -c
        return may_exec(profiles, name, ["/bin/sh", "-c", f"{exp.target} -t -i"], sysroot)
    raise ValueError(exp.op)


def many_files(root: Path, count: int = 100_000, per_dir: int = 1000) -> None:
    """A big site: `count` small files in nested directories (detection must ignore them)."""
    for i in range(count):
        d = root / "wp-content/uploads/bulk" / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.jpg").touch()


# --- the generator's own checks on one or more built sites ------------------------------

def plugin_only(pol):
    """A copy of the policy without the core's rules: what the app plugins alone contribute."""
    import copy

    pol = copy.copy(pol)
    pol.master = []
    pol.profiles = [_strip(p) for p in pol.profiles]
    return pol


def _strip(profile):
    import dataclasses

    return dataclasses.replace(profile, rules=[r for r in profile.rules if r.source != "core"])


def invariant_problems(*built, core: bool = True) -> list[str]:
    """The generator's invariants (forbidden writes, other pools' roots) over (site, policy,
    text) triples judged together, as `generate` does for a whole system (core=False: the
    plugins' rules alone)."""
    from php_fpm_apparmor import generate, invariants

    if not core:
        built = [(s, plugin_only(p), None) for s, p, _ in built]
        built = [(s, p, render.render(p)) for s, p, _ in built]
    entries = [generate.Entry(pool=s.pool, hat=s.hat, site=s, policy=p, text=t) for s, p, t in built]
    plan = generate.Plan(built[0][0].sysroot, entries=entries)
    invariants.check_plan(plan)
    return [e.problem for e in entries if e.problem]


def compile_error(text: str, hat: str, sysroot) -> str | None:
    """apparmor_parser's verdict on the pool file inside a php-fpm parent (None = compiles)."""
    from php_fpm_apparmor import validate

    return validate.compile_pools({hat: text}, validate.search_dirs(str(sysroot)))[hat]
