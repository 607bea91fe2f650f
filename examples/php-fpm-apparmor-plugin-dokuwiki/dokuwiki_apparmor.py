"""php-fpm-apparmor app plugin for DokuWiki (an example third-party plugin package).

DokuWiki keeps everything in files: pages, media, revisions and caches below data/, and
with the default "plain" auth backend its users and ACLs in conf/users.auth.php and
conf/acl.auth.php (PHP-named files with a die() header, rewritten on every registration,
password change or ACL edit). So the pool may write data/ (never code there) and those two
files (declared exceptions); conf/local.php only with `config_writes = yes`.
"""

from __future__ import annotations

import re

from php_fpm_apparmor.api import (API_VERSION, App, Expectation, FileRule, WriteException, clean_version,
                                  hookimpl, lit, never_code, under)

__version__ = "1.0"
NAME = "dokuwiki"
_major, _minor = (int(x) for x in API_VERSION.split(".")[:2])
if _major != 1 or _minor < 2:  # written for API 1.2 (never_code, open_regular; see the compatibility rule)
    raise ImportError(f"dokuwiki_apparmor needs php-fpm-apparmor API 1.x, x >= 2, not {API_VERSION}")
from php_fpm_apparmor.api import open_regular  # noqa: E402  (API 1.2: after the check says so)

AUTH_FILES = ("conf/users.auth.php", "conf/acl.auth.php")


@hookimpl
def php_fpm_apparmor_detect(site):
    apps = []
    for root in site.roots:
        if site.disk(root, "doku.php").is_file() and site.disk(root, "inc/init.php").is_file():
            try:  # open_regular: a FIFO named VERSION must not block the generator
                with open_regular(site.disk(root, "VERSION")) as f:
                    head = f.read(100).decode("utf-8", "replace")
            except OSError:
                head = ""
            m = re.match(r"\s*([0-9]{4}-[0-9]{2}-[0-9]{2}[a-z]?)", head)
            apps.append(App(NAME, root, version=clean_version(m.group(1)) if m else None))
    return apps


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    data = app.root + "/data"
    rules = [FileRule(path=under(data, "/"), perms="r", why="DokuWiki data dir"),
             FileRule(path=under(data, "/**"), perms="rwk", owner=True,
                      why="pages, media, revisions, caches, locks")]
    rules += never_code(data, why="never PHP or server config in data/")
    rules += [FileRule(path=lit(f"{app.root}/{f}"), perms="rw", why="plain auth backend (users, ACL)")
              for f in AUTH_FILES]
    if site.flag("config_writes"):
        rules.append(FileRule(path=lit(app.root + "/conf/local.php"), perms="rw",
                              why="configuration manager (config_writes = yes)"))
    return rules


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    out = [WriteException(path=lit(f"{app.root}/{f}"),
                          why="DokuWiki's plain auth rewrites it (registration, passwords, ACL); "
                              "it starts with a die() header")
           for f in AUTH_FILES]
    if site.flag("config_writes"):
        out.append(WriteException(path=lit(app.root + "/conf/local.php"),
                                  why="the configuration manager saves settings as PHP"))
    return out


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    try:
        with open_regular(site.disk(app.root, "conf/local.php")) as f:
            local = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return []
    if "savedir" in local:
        return ["conf/local.php moves savedir: this plugin only knows data/ below the root; "
                "add the new dir as write = in the pool's section of php-fpm-apparmor.conf"]
    return []


EXPECTATIONS = [
    Expectation("read", "{root}/doku.php", "allow", "serve the wiki"),
    Expectation("write", "{root}/data/pages/start.txt", "allow", "save a page"),
    Expectation("write", "{root}/data/media/wiki/cat.jpg", "allow", "upload an image"),
    Expectation("write", "{root}/data/cache/a/abc.xhtml", "allow", "render cache"),
    Expectation("write", "{root}/conf/users.auth.php", "allow", "register a user"),
    Expectation("write", "{root}/data/pages/shell.php", "deny", "drop PHP into data"),
    Expectation("write", "{root}/data/media/.htaccess", "deny", "reconfigure the web server"),
    Expectation("write", "{root}/doku.php", "deny", "replace the code"),
    Expectation("write", "{root}/conf/local.php", "deny", "change the configuration"),
    Expectation("read", "{other}/index.php", "deny", "read another pool's site"),
]
