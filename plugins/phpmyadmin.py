"""phpMyAdmin as Debian packages it (and as an upstream tarball in a web root).

Debian's `phpmyadmin` puts the code in /usr/share/phpmyadmin (root-owned, never a site root
the core would infer: it is a system directory), the config in /etc/phpmyadmin, the
blowfish secret in /var/lib/phpmyadmin and its temp dir (Twig's compiled templates, the
upload dir) in /var/lib/phpmyadmin/tmp, owned by www-data. The pool an admin writes for it
has ``chdir = /usr/share/phpmyadmin`` and the open_basedir of Debian's apache.conf. So:

- roots: this plugin claims /usr/share/phpmyadmin for that pool (the core would take
  /var/lib/phpmyadmin from open_basedir and then refuse the writable temp dir inside it);
- detect: libraries/vendor_config.php + libraries/classes/Version.php in a root;
- rules: read the config dir and the secret, write only the temp dir;
- exceptions: Twig compiles templates to PHP in tempDir/twig and includes them;
- check: a temp dir inside the site root is web-reachable code.

This is the plugin guide's worked example (docs/plugin-guide.md).
"""

from __future__ import annotations

import posixpath
import re

from php_fpm_apparmor.api import (App, DataDir, Expectation, FileRule, WriteException, clean_version, hookimpl,
                                  is_within, lit, open_regular, pool_names, under, unsafe_path)

__version__ = "1.0"
NAME = "phpmyadmin"
DEBIAN_ROOT = "/usr/share/phpmyadmin"
DEBIAN_CONFIG_DIR = "/etc/phpmyadmin"
DEBIAN_VAR = "/var/lib/phpmyadmin"
MARKER = "libraries/vendor_config.php"
VERSION_FILE = "libraries/classes/Version.php"
# Files Debian's pool serves besides the code: symlinked JS libraries, the changelog.
SHARED_READ = ("/usr/share/javascript/**", "/usr/share/doc/phpmyadmin/**")
MAX_READ = 64 * 1024


def _read(path, limit: int = MAX_READ) -> str:
    try:
        with open_regular(path) as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def _vendor_value(text: str, key: str) -> str | None:
    """A literal string from vendor_config.php's returned array ('tempDir' => '/x/')."""
    m = re.search(r"['\"]" + re.escape(key) + r"['\"]\s*=>\s*'([^'\\\n]*)'", text)
    return m.group(1) if m else None


def _is_pma(site, root: str) -> bool:
    return site.disk(root, MARKER).is_file() and site.disk(root, VERSION_FILE).is_file()


@hookimpl
def php_fpm_apparmor_roots(site):
    """Debian's /usr/share/phpmyadmin, when the pool points there (chdir, doc_root or
    open_basedir) and the package's files are there."""
    if not pool_names(site, DEBIAN_ROOT) or not _is_pma(site, DEBIAN_ROOT):
        return []
    # Keep any real site root the core found; drop phpMyAdmin's own data and config dirs,
    # which open_basedir lists but which are not code.
    own = (DEBIAN_VAR, DEBIAN_CONFIG_DIR, "/usr/share/doc/phpmyadmin")
    return [DEBIAN_ROOT] + [r for r in site.roots if not any(is_within(r, d) for d in own)]


@hookimpl
def php_fpm_apparmor_detect(site):  # no `found`: asked once per site
    apps = []
    for root in site.roots:
        if not _is_pma(site, root):
            continue
        version = re.search(r"VERSION\s*=\s*'([0-9][0-9A-Za-z.+~-]*)'", _read(site.disk(root, VERSION_FILE)))
        vendor = _read(site.disk(root, MARKER))
        info = {"temp": None, "config_dir": None}
        temp = _vendor_value(vendor, "tempDir")
        if temp is not None and temp.startswith("/"):
            info["temp"] = temp.rstrip("/")
        elif "ROOT_PATH . 'tmp'" in vendor or temp is None:
            info["temp"] = root + "/tmp"  # upstream's default: ROOT_PATH/tmp/
        config = _vendor_value(vendor, "configFile")
        # Only the package's vendor_config.php (root's) opens /etc/phpmyadmin: a site's own
        # copy naming it would read Debian's database password (config-db.php).
        if root == DEBIAN_ROOT and config and posixpath.dirname(config) == DEBIAN_CONFIG_DIR:
            info["config_dir"] = DEBIAN_CONFIG_DIR
        apps.append(App(NAME, root, version=clean_version(version.group(1)) if version else None,
                        plugin=NAME, info=info))
    return apps


def _temp(site, app) -> str | None:
    temp = app.info.get("temp")
    if not temp:
        return None
    try:
        temp = site.canonical(temp)
    except Exception:  # a symlink loop: no temp dir rather than a wrong one
        return None
    # vendor_config.php is root's (Debian) or the site's (upstream). The site's may name a
    # temp dir in its own tree only: elsewhere it would make another user's directory this
    # pool's, writable and excepted for code. Root's must still not name a system directory
    # or a top-level one.
    if is_within(temp, app.root):
        return temp
    if app.root != DEBIAN_ROOT or unsafe_path(temp):
        return None
    return temp


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    why = "phpMyAdmin: "
    rules = [FileRule(path=p, perms="r", why=why + "JavaScript libraries and docs Debian symlinks in")
             for p in SHARED_READ]
    if app.info.get("config_dir"):
        rules.append(FileRule(path=under(app.info["config_dir"], "/{,**}"), perms="r",
                              why=why + "config.inc.php, config-db.php and conf.d/"))
    if app.root == DEBIAN_ROOT:
        rules.append(FileRule(path=under(DEBIAN_VAR, "/*.inc.php"), perms="r",
                              why=why + "blowfish_secret.inc.php and the setup's config.inc.php"))
    temp = _temp(site, app)
    if temp:
        rules += [FileRule(path=under(temp, "/"), perms="r", why=why + "temp dir (tempDir)"),
                  FileRule(path=under(temp, "/**"), perms="rwk", owner=True,
                           why=why + "Twig template cache and uploads (tempDir)")]
        if not any(is_within(temp, r) for r in site.roots):  # Debian's /var/lib/phpmyadmin/tmp
            rules.append(DataDir(path=temp, why=why + "tempDir is the pool's own"))
    return rules


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    temp = _temp(site, app)
    if not temp:
        return []
    return [WriteException(path=under(temp, "/**"),
                           why="Twig compiles phpMyAdmin's templates to PHP in tempDir/twig and includes them")]


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    temp = _temp(site, app)
    if temp and is_within(temp, app.root):
        return [f"phpMyAdmin's tempDir {temp} is inside its web root: the compiled templates in it can "
                f"be requested; set 'tempDir' in libraries/vendor_config.php or config.inc.php "
                f"($cfg['TempDir']) to a directory outside {app.root}"]
    if app.info.get("temp") and not temp:
        return [f"phpMyAdmin's tempDir {app.info['temp']} is not usable (outside this copy's tree, "
                f"named by the site's own vendor_config.php; or a system or top-level directory): "
                f"phpMyAdmin runs without a template cache (a copy in a web root may keep it only in "
                f"its own tree; Debian's package keeps it in /var/lib/phpmyadmin/tmp)"]
    return []


# {root}: the phpMyAdmin root; {other}: another pool's site root.
EXPECTATIONS = [
    Expectation("read", "{root}/index.php", "allow", "serve phpMyAdmin"),
    Expectation("read", "{root}/libraries/classes/Version.php", "allow", "load its classes"),
    Expectation("read", "/etc/phpmyadmin/config.inc.php", "allow", "read its configuration"),
    Expectation("read", "/etc/phpmyadmin/conf.d/local.php", "allow", "read local configuration"),
    Expectation("read", "/var/lib/phpmyadmin/blowfish_secret.inc.php", "allow", "cookie encryption secret"),
    Expectation("write", "/var/lib/phpmyadmin/tmp/twig/3c/3c1e.php", "allow", "Twig template cache"),
    Expectation("write", "/var/lib/phpmyadmin/tmp/upload.sql", "allow", "import files"),
    Expectation("write", "{root}/index.php", "deny", "replace its code"),
    Expectation("write", "{root}/libraries/cache/routes.cache.php", "deny", "rewrite its routes"),
    Expectation("write", "/etc/phpmyadmin/config.inc.php", "deny", "change its configuration"),
    Expectation("write", "/var/lib/phpmyadmin/blowfish_secret.inc.php", "deny", "replace the secret"),
    Expectation("read", "/etc/shadow", "deny", "read system secrets"),
    Expectation("read", "{other}/index.php", "deny", "read another pool's site"),
    Expectation("write", "{other}/index.php", "deny", "write another pool's site"),
]
