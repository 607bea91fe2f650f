"""WP Super Cache: page cache writes, including the few PHP files it really writes.

From its source (Automattic/wp-super-cache wp-cache-phase2.php, wp-cache-base.php,
wp-cache-config-sample.php):
- pages: $cache_path/supercache/<host>/<path>/index[-https].html[.gz], written as
  <uniqid>.tmp[.gz] in the same directory and renamed;
- "legacy"/dynamic caching: $cache_path/supercache/<host>/<path>/<prefix><md5>.php and
  meta-<prefix><md5>.php ($file_prefix, default "wp-cache-"), temp file $cache_path/*.tmp:
  PHP files by name, but data (they start with `<?php die(); ?>`). This is the one PHP
  write the plugin needs, declared as a named exception and kept to exactly those names;
- $cache_path/wp_cache_mutex.lock (flock), *_wp_cache_gc.txt, preload_permalink.txt,
  taxonomy_*.txt;
- settings: it rewrites wp-content/wp-cache-config.php through a tempnam() file in
  $cache_path renamed to .php, copies advanced-cache.php into wp-content, sets WP_CACHE in
  wp-config.php and writes .htaccess rules: only with the pool's `config_writes`.
"""

from __future__ import annotations

import re

from php_fpm_apparmor.api import (UNKNOWN, App, Expectation, FileRule, hookimpl, is_within, lit,
                                  plugin_header, read_php, under, unsafe_path, WriteException)

__version__ = "1.0"
NAME = "wp-super-cache"
HOST = "wordpress"
DEFAULT_PREFIX = "wp-cache-"


@hookimpl
def php_fpm_apparmor_detect(site, found):
    apps = []
    known = {a.root for a in found if a.name == NAME}  # an earlier detection round's: not redone
    for wp in found:
        if wp.name != HOST or wp.root in known:
            continue
        main = site.disk(wp.info["plugins"], "wp-super-cache/wp-cache.php")
        if not main.is_file() or plugin_header(main, "Plugin Name") is None:
            continue
        apps.append(App(NAME, wp.root, version=plugin_header(main, "Version"), plugin=NAME,
                        info=_settings(site, wp.info)))
    return apps


def _settings(site, wp: dict) -> dict:
    content = wp["content"]
    info = dict(wp)
    info["cache_config"] = content + "/wp-cache-config.php"
    info["advanced_cache"] = content + "/advanced-cache.php"
    problems = []
    cache_path, prefix = content + "/cache", DEFAULT_PREFIX
    facts = read_php(site.disk(info["cache_config"]), info["cache_config"],
                     abspath=wp["abspath"],
                     constants={"WP_CONTENT_DIR": content, "WPCACHEHOME": ""})
    problems += facts.problems
    if facts.exists:
        value = facts.assigns.get("$cache_path")
        if isinstance(value, str) and value.startswith("/"):
            # only inside wp-content (WordPress judged whose it is) or the site: named_path()'s
            # ownership question never arises, and a symlink out of them is refused below
            canon = site.canonical(value.rstrip("/"))
            why = unsafe_path(canon)
            if why:
                problems.append(f"{facts.where('$cache_path')}: $cache_path {value!r} is {why}: "
                                f"ignored, using {cache_path}")
            elif not (is_within(canon, content) or any(is_within(canon, r) for r in site.roots)):
                problems.append(f"{facts.where('$cache_path')}: $cache_path {value!r} is outside "
                                f"the site and wp-content: ignored, using {cache_path}")
            else:
                cache_path = canon
        elif value is UNKNOWN:
            problems.append(f"{facts.where('$cache_path')}: $cache_path is computed at run time; "
                            f"assuming {cache_path}")
        value = facts.assigns.get("$file_prefix")
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
            prefix = value
        elif value is not None:
            problems.append(f"{facts.where('$file_prefix')}: unusual $file_prefix {value!r}: "
                            f"assuming {DEFAULT_PREFIX!r}")
    # The sample config (and so most sites) sets $wp_cache_mutex_disabled = 1: no lock file.
    mutex = facts.assigns.get("$wp_cache_mutex_disabled") not in (1, True, "1")
    info.update(cache=cache_path, prefix=prefix, problems=problems, mutex=mutex,
                configured=facts.exists, wp_cache=_wp_cache_on(site, wp))
    return info


def _wp_cache_on(site, wp) -> bool:
    if "wp_cache" in wp:  # the WordPress plugin read wp-config.php already
        return wp["wp_cache"] is True
    if not wp.get("config"):  # another plugin's WordPress
        return False
    facts = read_php(site.disk(wp["config"]), wp["config"], abspath=wp["abspath"])
    return facts.defines.get("WP_CACHE") in (True, 1, "1", "true")


def _file(path, perms, why, owner=True):
    return FileRule(path=path, perms=perms, owner=owner, source=NAME, why=why)


def _php_cache_files(info) -> str:
    # {,meta-}wp-cache-<md5>.php in the per-URL supercache directories, nothing else.
    return under(info["cache"], "/supercache/**/{,meta-}" + info["prefix"] + "[0-9a-f]*.php")


@hookimpl
def php_fpm_apparmor_rules(site, app):
    if app.name != NAME:
        return []
    info = app.info
    cache = info["cache"]
    rules = [
        _file(under(cache, "/"), "w", "cache root"),
        _file(under(cache, "/**/"), "w", "per-host, per-URL cache directories"),
        _file(under(cache, "/*.tmp"), "rw", "pages are written to a temp file first"),
        _file(under(cache, "/supercache/**.tmp"), "rw", "temp file before the rename"),
        _file(under(cache, "/supercache/**.tmp.gz"), "rw", "compressed temp file"),
        _file(under(cache, "/supercache/**/index*.html"), "rw", "static page cache"),
        _file(under(cache, "/supercache/**/index*.html.gz"), "rw", "compressed static page cache"),
        _file(under(cache, "/**/index.html"), "w", "blank index.html against directory listing"),
        _file(_php_cache_files(info), "rw",
              "dynamic/legacy cache and meta files (data behind <?php die(); ?>)"),
        _file(under(cache, "/*.txt"), "rw", "garbage collection and preload state"),
    ]
    if info["mutex"]:
        rules += [_file(under(cache, "/wp_cache_mutex.lock"), "rwk", "writer lock"),
                  _file(under(cache, "/blogs/*/wp_cache_mutex.lock"), "rwk",
                        "writer lock (multisite)")]
    if not any(is_within(cache, r) for r in site.roots) and not is_within(cache, info["content"]):
        rules.append(_file(under(cache, "/**"), "r", "cache outside the site root", owner=False))
    if site.flag("config_writes"):
        rules += [_file(lit(p), "rw", why) for p, why in _config_paths(info)]
        rules.append(_file(under(cache, "/[0-9a-f]*"), "rw",
                           "settings are rewritten through a tempnam() file renamed to .php"))
    return rules


def _config_paths(info):
    out = [(info["cache_config"], "settings page rewrites wp-cache-config.php"),
           (info["advanced_cache"], "enabling caching installs advanced-cache.php"),
           (info["cache"] + "/.htaccess", "Options -Indexes in the cache (Apache)"),
           (info["abspath"] + ".htaccess", "mod_rewrite rules that serve cached pages (Apache)")]
    if info.get("config"):
        out.append((info["config"], "enabling caching sets WP_CACHE in wp-config.php"))
    return out


@hookimpl
def php_fpm_apparmor_exceptions(site, app):
    if app.name != NAME:
        return []
    info = app.info
    out = [WriteException(_php_cache_files(info),
                          "WP Super Cache stores dynamic pages and their metadata as "
                          f"{info['prefix']}<md5>.php / meta-{info['prefix']}<md5>.php (data "
                          "guarded by <?php die(); ?>): only those names, only under supercache/",
                          NAME)]
    if site.flag("config_writes"):
        out += [WriteException(lit(p), why, NAME) for p, why in _config_paths(info)]
        out.append(WriteException(under(info["cache"], "/[0-9a-f]*"),
                                  "wp_cache_replace_line() writes the new settings to a "
                                  "tempnam() file and renames it to .php", NAME))
    return out


@hookimpl
def php_fpm_apparmor_check(site, app):
    if app.name != NAME:
        return []
    info = app.info
    out = list(info["problems"])
    if not site.flag("config_writes"):
        out.append(f"note: {info['cache_config']}: WP Super Cache settings cannot be changed from the "
                   "dashboard while config_writes is off for this pool (it rewrites this file); "
                   "turn it on while configuring, then off again")
    if not info["configured"] or not info["wp_cache"]:
        out.append(f"note: {app.root}: WP Super Cache is installed but not set up (no "
                   "wp-cache-config.php or WP_CACHE not true): pages are not cached")
    return out


EXPECTATIONS = [
    Expectation("write", "{content}/cache/supercache/example.org/2026/11/hello/index-https.html",
                "allow", "cache a page"),
    Expectation("write", "{content}/cache/supercache/example.org/2026/11/hello/"
                "index-https.html.gz", "allow", "cache a compressed page"),
    Expectation("write", "{content}/cache/supercache/example.org/hello/"
                "wp-cache-0123456789abcdef0123456789abcdef.php", "allow", "cache a dynamic page"),
    Expectation("write", "{content}/cache/supercache/example.org/hello/"
                "meta-wp-cache-0123456789abcdef0123456789abcdef.php", "allow",
                "store the page's headers"),
    Expectation("write", "{content}/cache/1234567890.12345678.tmp", "allow", "temp file"),
    Expectation("write", "{content}/cache/example.org_wp_cache_gc.txt", "allow",
                "garbage collection state"),
    Expectation("write", "{content}/cache/supercache/example.org/hello/shell.php", "deny",
                "any other PHP in the cache"),
    Expectation("write", "{content}/cache/shell.php", "deny", "PHP at the cache root"),
    Expectation("write", "{content}/cache/supercache/example.org/.htaccess", "deny",
                ".htaccess in the cache"),
    Expectation("write", "{content}/wp-cache-config.php", "deny",
                "settings are read-only without config_writes"),
    Expectation("write", "{content}/advanced-cache.php", "deny", "its drop-in is PHP"),
    Expectation("write", "{root}/wp-config.php", "deny", "WP_CACHE edits need config_writes"),
]
