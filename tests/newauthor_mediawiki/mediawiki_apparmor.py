"""php-fpm-apparmor app plugin for MediaWiki, written by a new plugin author from the
installed package and docs/plugin-guide.md alone (the kit's acceptance test, issue 11).

What MediaWiki does at run time (from its sources: includes/Defines.php, the installer's
LocalSettings.php, includes/shell/limit.sh, Shellbox's UnboxedExecutor):
- the code lives in $IP (the site root); the installer writes LocalSettings.php there;
- uploads, thumbnails and FSFileBackend locks go to $wgUploadDirectory ("$IP/images");
  nothing in it is ever code, and it is served by the web server;
- $wgCacheDirectory (unset by default; often "$IP/cache") holds the localisation cache
  (CDB files) and the file cache;
- thumbnails are made by ImageMagick: proc_open() of a command string, i.e. `/bin/sh -c`,
  which runs `/bin/bash $IP/includes/shell/limit.sh '<convert ...>' '<limits>'` when
  shell limits are set (the default), and limit.sh evals the convert command.
"""

from __future__ import annotations

import re

from php_fpm_apparmor.api import (API_VERSION, App, ExecRule, Expectation, FileRule, IncludeRule,
                                  clean_version, find_binaries, hookimpl, lit, never_code, read_php,
                                  under, unsafe_path, is_within, temp_dir, UNKNOWN)

__version__ = "0.1"
NAME = "mediawiki"
# Written for API 1.1 (never_code): runs on any 1.M with M >= 1 (the compatibility rule).
_major, _minor = (int(x) for x in API_VERSION.split("."))
if _major != 1 or _minor < 1:
    raise ImportError(f"mediawiki_apparmor needs php-fpm-apparmor API 1.1 or a later 1.x, not {API_VERSION}")

SHELL = "sh"      # the core's /bin/sh child, where proc_open("...") lands
CHILD = "thumb"   # ours: php-fpm//<hat>_thumb runs limit.sh and convert
# "$IP/x", "{$IP}/x" and $IP . '/x': read_php has no way to know $IP (the root).
IP_VALUE = re.compile(r"""^\s*(\$wg\w+)\s*=\s*(?:"(?:\$IP|\{\$IP\})(/[^"$\\]*)"|\$IP\s*\.\s*'(/[^'\\]*)')\s*;""",
                      re.M)


def _ip_assigns(text: str) -> dict:
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in IP_VALUE.finditer(text)}


def _setting(site, root, facts, ip, name, default):
    """A directory setting of LocalSettings.php as a system path, or None if unusable."""
    value = facts.assigns.get(name, default)
    if name in ip:
        value = root + ip[name]
    if value is None or value is UNKNOWN or value is False:
        return None if value is not default else default
    if not isinstance(value, str) or not value.startswith("/") or unsafe_path(value):
        return None
    return value.rstrip("/")


@hookimpl
def php_fpm_apparmor_detect(site, found):
    apps = []
    for root in site.roots:
        defines = site.disk(root, "includes/Defines.php")
        if not (defines.is_file() and site.disk(root, "api.php").is_file()):
            continue
        version = clean_version(read_php(defines, root + "/includes/Defines.php").define("MW_VERSION"))
        info = {"uploads": root + "/images", "cache": None, "convert": None}
        local = site.disk(root, "LocalSettings.php")
        if local.is_file():
            facts = read_php(local, root + "/LocalSettings.php")
            try:
                ip = _ip_assigns(local.read_text(errors="replace"))
            except OSError:
                ip = {}
            info["uploads"] = _setting(site, root, facts, ip, "$wgUploadDirectory", root + "/images")
            info["cache"] = _setting(site, root, facts, ip, "$wgCacheDirectory", None)
            if facts.assigns.get("$wgUseImageMagick") is True:
                cmd = facts.assigns.get("$wgImageMagickConvertCommand", "/usr/bin/convert")
                info["convert"] = cmd if isinstance(cmd, str) and cmd.startswith("/") else None
        apps.append(App(NAME, root, version=version, info=info))
    return apps


def _writable(path, why):
    # A writable tree that could receive code is refused by the generator: never_code().
    return [FileRule(path=under(path, "/"), perms="r", why=why),
            FileRule(path=under(path, "/**"), perms="rwk", owner=True, why=why)] + never_code(path)


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    rules = []
    if app.info.get("uploads"):
        rules += _writable(app.info["uploads"], "uploads, thumbnails, file backend locks")
    if app.info.get("cache"):
        rules += _writable(app.info["cache"], "$wgCacheDirectory: localisation and file cache")
    convert = find_binaries(site, ["convert"]) if app.info.get("convert") else []
    bash = find_binaries(site, ["bash"])
    if convert and bash:
        rules.append(ExecRule(path=lit(bash[0]), mode="Px", target=CHILD, profile=SHELL,
                              why="thumbnails: Shellbox runs limit.sh under bash"))
        rules += [
            IncludeRule(name="abstractions/base", profile=CHILD, why="libraries convert links"),
            FileRule(path=lit(app.root + "/includes/shell/limit.sh"), perms="r", profile=CHILD,
                     why="MediaWiki's resource limit wrapper"),
            ExecRule(path=lit(bash[0]), mode="ix", profile=CHILD, why="limit.sh itself"),
            ExecRule(path=lit(convert[0]), mode="ix", profile=CHILD, why="ImageMagick convert"),
            FileRule(path="/etc/ImageMagick-6/**", perms="r", profile=CHILD, why="ImageMagick policy"),
            FileRule(path="/usr/share/ImageMagick-6/**", perms="r", profile=CHILD, why="ImageMagick data"),
            FileRule(path=under(temp_dir(site), "/**"), perms="rw", owner=True, profile=CHILD,
                     why="convert's temporary files"),
        ] + never_code(temp_dir(site), CHILD)
        if app.info.get("uploads"):
            rules += [FileRule(path=under(app.info["uploads"], "/**"), perms="r", profile=CHILD,
                               why="source images"),
                      FileRule(path=under(app.info["uploads"], "/thumb/**"), perms="rw", profile=CHILD,
                               owner=True, why="thumbnails")]
            rules += never_code(app.info["uploads"] + "/thumb", CHILD)
    return rules


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    out = []
    if not site.disk(app.root, "LocalSettings.php").is_file():
        out.append("note: LocalSettings.php is missing: the web installer cannot write it "
                   "(place the downloaded file in the root by hand)")
    cache = app.info.get("cache")
    if cache and is_within(cache, app.root):
        out.append(f"$wgCacheDirectory {cache} is inside the web root: move it out of it "
                   "(e.g. /var/cache/mediawiki) or deny it in the web server")
    return out


EXPECTATIONS = [
    Expectation("read", "{root}/LocalSettings.php", "allow", "read its configuration"),
    Expectation("write", "{root}/images/a/ab/Photo.jpg", "allow", "store an upload"),
    Expectation("write", "{root}/images/thumb/a/ab/Photo.jpg/120px-Photo.jpg", "allow", "a thumbnail"),
    Expectation("write", "{root}/images/lockdir/abc.lock", "allow", "file backend locks"),
    Expectation("write", "{root}/cache/l10n_cache-en.cdb", "allow", "localisation cache"),
    Expectation("write", "{root}/LocalSettings.php", "deny", "rewrite its own configuration"),
    Expectation("write", "{root}/index.php", "deny", "replace its code"),
    Expectation("write", "{root}/images/shell.php", "deny", "drop PHP into the uploads"),
    Expectation("write", "{root}/images/a/ab/x.PHP", "deny", "drop PHP in another case"),
    Expectation("write", "{root}/images/.htaccess", "deny", "turn the upload dir into code"),
    Expectation("write", "{root}/cache/evil.phar", "deny", "a phar in the cache"),
    Expectation("read", "{other}/index.php", "deny", "read another pool's site"),
    Expectation("exec", "/bin/sh", "allow", "make a thumbnail",
                ("/bin/sh", "-c", "/usr/bin/bash {root}/includes/shell/limit.sh "
                                  "'/usr/bin/convert x.jpg y.jpg'")),
    Expectation("exec", "/bin/sh", "deny", "run a binary dropped in the uploads",
                ("/bin/sh", "-c", "{root}/images/a/ab/evil")),
]
